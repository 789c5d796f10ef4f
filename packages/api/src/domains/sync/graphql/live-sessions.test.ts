/**
 * The live-session registry on its own: injected timer, clock and checks (no server). What ends
 * which session on an event and on a re-validation round, that a failing check ends nothing, and
 * that the timer and the pub/sub subscription exist only while sessions do.
 */
import { expect, test } from 'vitest';
import { createApiPubSub } from '../../../pubsub.ts';
import type { Principal } from '../sync-deps.ts';
import { CHECK_CHUNK, LiveSessions, liveEndError } from './live-sessions.ts';
import type { LiveEndCode, LiveSessionChecks, LiveSessionInit } from './live-sessions.ts';

const DB = 'db_1';
const SITE_A = 'a'.repeat(32);
const SITE_B = 'b'.repeat(32);
const key = (id: string): Principal => ({ kind: 'apiKey', userId: null, claims: {}, credentialId: `apiKey:${id}` });
const token = (id: string, expiresAt?: number): Principal => ({ kind: 'accessToken', userId: `u-${id}`, claims: {}, credentialId: `accessToken:${id}`, ...(expiresAt === undefined ? {} : { expiresAt }) });

/** Mutable control-plane state behind the fake checks. */
function world() {
  const state = { enabled: true, exists: true, rlsMode: 'BYPASS', valid: new Set<string>(), devices: new Set<string>(), fail: false, calls: 0, asked: { credentials: [] as number[], devices: [] as number[] } };
  const checks: LiveSessionChecks = {
    async database() {
      state.calls++;
      if (state.fail) throw new Error('control plane down');
      return state.exists ? { enabled: state.enabled, rlsMode: state.rlsMode } : null;
    },
    async credentials(_db, ids) {
      state.asked.credentials.push(ids.length);
      return new Set(ids.filter((id) => state.valid.has(id)));
    },
    async devices(_db, sites) {
      state.asked.devices.push(sites.length);
      return new Set(sites.filter((s) => state.devices.has(s)));
    },
  };
  return { state, checks };
}

function setup() {
  const { state, checks } = world();
  let now = 1_000;
  const timer = { running: 0, fn: undefined as (() => void) | undefined, ms: 0 };
  const errors: unknown[] = [];
  const pubsub = createApiPubSub();
  const registry = new LiveSessions(pubsub, {
    checks,
    now: () => now,
    every: (ms, fn) => {
      timer.running++;
      timer.fn = fn;
      timer.ms = ms;
      return () => {
        timer.running--;
        timer.fn = undefined;
      };
    },
    onError: (e) => errors.push(e),
  });
  const ended = new Map<string, LiveEndCode>();
  const open = (name: string, init: Omit<LiveSessionInit, 'end' | 'databaseId'> & { databaseId?: string }) =>
    registry.register({ databaseId: DB, ...init, end: (code) => ended.set(name, code) });
  return { state, registry, timer, errors, pubsub, ended, open, advance: (ms: number) => void (now += ms) };
}

/** Pub/sub delivery runs on microtasks: let them run. */
const delivered = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('events (through the pub/sub) end exactly the sessions they name', async () => {
  const s = setup();
  s.open('key1-a', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  s.open('key1-socket', { scope: 'socket', principal: key('k1') });
  s.open('key2-b', { scope: 'subscription', siteId: SITE_B, principal: key('k2') });
  s.open('tok-b', { scope: 'subscription', siteId: SITE_B, principal: token('t1') });
  s.open('other-db', { scope: 'subscription', siteId: SITE_A, principal: key('k1'), databaseId: 'db_2' });

  s.pubsub.publish('syncAccessEnded', DB, { databaseId: DB, reason: 'CREDENTIAL_REVOKED', credentialId: 'apiKey:k1', at: '' });
  await delivered();
  expect(Object.fromEntries(s.ended)).toEqual({ 'key1-a': 'CREDENTIAL_REVOKED', 'key1-socket': 'CREDENTIAL_REVOKED' });

  s.pubsub.publish('syncAccessEnded', DB, { databaseId: DB, reason: 'RLS_MODE_CHANGED', at: '' });
  await delivered();
  expect(s.ended.get('tok-b')).toBe('RLS_MODE_CHANGED');
  expect(s.ended.has('key2-b')).toBe(false); // API keys bypass RLS

  s.pubsub.publish('syncAccessEnded', DB, { databaseId: DB, reason: 'DEVICE_REMOVED', siteId: SITE_A, at: '' });
  await delivered();
  expect(s.ended.has('key2-b')).toBe(false); // another site
  s.pubsub.publish('syncAccessEnded', DB, { databaseId: DB, reason: 'SYNC_DISABLED', at: '' });
  await delivered();
  expect(s.ended.get('key2-b')).toBe('SYNC_DISABLED');
  expect(s.ended.has('other-db')).toBe(false);
  expect(s.registry.size(DB)).toBe(0);
  expect(s.registry.size('db_2')).toBe(1);
});

test('a device-removed event ends the subscriptions of that site only, never a socket', () => {
  const s = setup();
  s.open('a', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  s.open('socket', { scope: 'socket', principal: key('k1') });
  s.registry.apply({ databaseId: DB, reason: 'DEVICE_REMOVED', siteId: SITE_A, at: '' });
  s.registry.apply({ databaseId: DB, reason: 'SYNC_DISABLED', at: '' });
  expect(Object.fromEntries(s.ended)).toEqual({ a: 'DEVICE_REMOVED' });
});

test('re-validation: expiry by the injected clock, revoked credentials, disabled sync, RLS mode and device removal', async () => {
  const s = setup();
  s.state.valid = new Set(['apiKey:k1', 'apiKey:k2', 'accessToken:t1', 'accessToken:t2']);
  s.state.devices = new Set([SITE_A, SITE_B]);
  s.open('t1-expiring', { scope: 'subscription', siteId: SITE_A, principal: token('t1', 5_000) });
  s.open('t1-socket', { scope: 'socket', principal: token('t1', 5_000) });
  s.open('t2', { scope: 'subscription', siteId: SITE_B, principal: token('t2') });
  s.open('k1', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  s.open('k2', { scope: 'subscription', siteId: SITE_B, principal: key('k2') });

  await s.registry.check();
  expect(s.ended.size).toBe(0);

  s.advance(4_000); // now = 5000 = expiresAt
  expect(s.registry.expired(token('t1', 5_000))).toBe(true);
  await s.registry.check();
  expect(Object.fromEntries(s.ended)).toEqual({ 't1-expiring': 'CREDENTIAL_EXPIRED', 't1-socket': 'CREDENTIAL_EXPIRED' });

  s.state.valid.delete('apiKey:k1');
  await s.registry.check();
  expect(s.ended.get('k1')).toBe('CREDENTIAL_REVOKED');

  s.state.rlsMode = 'ENFORCE'; // differs from what the first round saw
  await s.registry.check();
  expect(s.ended.get('t2')).toBe('RLS_MODE_CHANGED');
  expect(s.ended.has('k2')).toBe(false);

  s.state.devices.delete(SITE_B); // k2's device was seen by earlier rounds
  await s.registry.check();
  expect(s.ended.get('k2')).toBe('DEVICE_REMOVED');
  expect(s.registry.size()).toBe(0);
});

test('re-validation: a database disabled or deleted ends its subscriptions but not its sockets', async () => {
  const s = setup();
  s.state.valid = new Set(['apiKey:k1']);
  s.open('sub', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  s.open('socket', { scope: 'socket', principal: key('k1') });
  s.state.enabled = false;
  await s.registry.check();
  expect(Object.fromEntries(s.ended)).toEqual({ sub: 'SYNC_DISABLED' });
  s.open('sub2', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  s.state.enabled = true;
  s.state.exists = false;
  await s.registry.check();
  expect(s.ended.get('sub2')).toBe('SYNC_DISABLED');
  expect(s.ended.has('socket')).toBe(false);
});

test('re-validation: a site never seen registered is not taken for a removed device; a failing check ends nothing', async () => {
  const s = setup();
  s.state.valid = new Set(['apiKey:k1']);
  s.open('a', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  await s.registry.check();
  await s.registry.check();
  expect(s.ended.size).toBe(0);

  s.state.fail = true;
  s.state.valid.clear();
  await s.registry.check();
  expect(s.ended.size).toBe(0);
  expect(s.errors).toHaveLength(1);
  s.state.fail = false;
  await s.registry.check();
  expect(s.ended.get('a')).toBe('CREDENTIAL_REVOKED');
});

test('the timer runs while sessions are open, once; rounds do not overlap', async () => {
  const s = setup();
  expect(s.timer.running).toBe(0);
  const close1 = s.open('a', { scope: 'subscription', siteId: SITE_A, principal: key('k1') });
  const close2 = s.open('b', { scope: 'socket', principal: key('k1') });
  expect(s.timer).toMatchObject({ running: 1, ms: 1000 });
  s.state.valid = new Set(['apiKey:k1']);
  const calls = s.state.calls;
  s.timer.fn?.();
  s.timer.fn?.(); // while the first round runs: no second round
  await s.registry.check();
  expect(s.state.calls).toBe(calls + 1);
  close1();
  expect(s.timer.running).toBe(1);
  close2();
  expect(s.timer.running).toBe(0);
  expect(s.registry.size()).toBe(0);
  expect(s.ended.size).toBe(0); // unregistering is not ending
});

test('liveEndError carries the code as extensions.code', () => {
  const e = liveEndError('CREDENTIAL_REVOKED');
  expect(e.code).toBe('CREDENTIAL_REVOKED');
  expect(e.message).toMatch(/revoked/);
});

test('re-validation checks many sites and credentials in chunks, every one of them each round', async () => {
  const s = setup();
  const n = 2 * CHECK_CHUNK + 7;
  const site = (i: number): string => i.toString(16).padStart(32, '0');
  s.state.valid = new Set(Array.from({ length: n }, (_, i) => `apiKey:k${i}`));
  s.state.devices = new Set(Array.from({ length: n }, (_, i) => site(i)));
  for (let i = 0; i < n; i++) s.open(`s${i}`, { scope: 'subscription', siteId: site(i), principal: key(`k${i}`) });
  await s.registry.check();
  expect(s.ended.size).toBe(0);
  expect(s.state.asked.devices).toEqual([CHECK_CHUNK, CHECK_CHUNK, 7]);
  expect(s.state.asked.credentials).toEqual([CHECK_CHUNK, CHECK_CHUNK, 7]);
  // The last site of the last chunk and one of the first: both found by the next round.
  s.state.devices.delete(site(n - 1));
  s.state.valid.delete('apiKey:k3');
  await s.registry.check();
  expect(Object.fromEntries(s.ended)).toEqual({ [`s${n - 1}`]: 'DEVICE_REMOVED', s3: 'CREDENTIAL_REVOKED' });
  expect(s.registry.size()).toBe(n - 2);
});
