/**
 * Live `changes` subscriptions end with their credential (docs/PROTOCOL.md "Live subscriptions end
 * with their credential"), over a real graphql-ws client on an ephemeral port: for each trigger —
 * revokeApiKey, revokeAccessToken, expiry (injected clock), removeDevice, disableOffSync, setRlsMode
 * — an open subscription ends with its documented `extensions.code` within 2 s, never receives the
 * row written right after the trigger, and its device-authenticated socket closes with 4401 when
 * the credential itself ended; a subscription of another credential (or device, or database)
 * keeps streaming. A revocation that publishes no event (a write straight to the control-plane
 * database) is caught by the periodic re-validation.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { SyncEngine } from '@offsync/core';
import { openReplica } from '@offsync/core/testing';
import { liveSessionsOf } from '../src/domains/sync/index.ts';
import {
  createApp,
  createSecretBox,
  migrate,
  createPrismaClient,
  silentLogger,
  systemClock,
  createApiPubSub,
  createRedisPubSub,
} from '../src/index.ts';
import { CHANGES } from './graphql-sync-fixture.ts';
import { serveApp, setupDatabase, TestDevice, TODOS_RLS_DDL } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { createTestDeps, createTestTarget, manualClock } from './helpers.ts';

const clock = manualClock(Date.now());
let t: RunningApp;
let wsUrl: string;

const serve = serveApp;

beforeAll(async () => {
  const { deps, dataDir, cleanup } = await createTestDeps('sqlite', { clock });
  const running = await serve(createApp({ ...deps, sync: { cacheTtlMs: 0 } }), dataDir, cleanup);
  t = running;
  wsUrl = running.ws;
});
afterAll(async () => {
  await t.dispose();
});

interface Batch { payload: string | null; changes: number; cursor: { dbVersion: number; seq: number }; final: boolean }
interface WireError { message: string; extensions?: { code?: string } }

/**
 * A device's `changes` subscription on its own graphql-ws socket (authenticated by its credential
 * for the database), applying every batch to its replica; records the terminal error and the
 * socket's close event.
 */
class LiveDevice {
  readonly engine: SyncEngine = openReplica(TODOS_RLS_DDL, ['todos']);
  readonly site = Buffer.from(this.engine.siteId).toString('hex');
  readonly batches: Batch[] = [];
  error: WireError[] | undefined;
  endedAt: number | undefined;
  closed: { code: number; reason: string } | undefined;
  readonly #client: Client;
  #waiters: Array<() => void> = [];

  constructor(readonly databaseId: string, credential: string, url: string = wsUrl) {
    this.#client = createClient({
      url,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${credential}`, databaseId },
      retryAttempts: 0,
      lazy: false,
      on: {
        closed: (e) => {
          const ev = e as { code: number; reason: string };
          this.closed = { code: ev.code, reason: String(ev.reason) };
          this.#wake();
        },
      },
      onNonLazyError: () => {},
    });
    this.#client.subscribe<{ changes: Batch }>(
      { query: CHANGES, variables: { db: databaseId, site: this.site } },
      {
        next: (r) => {
          if (r.errors !== undefined) {
            this.#fail(r.errors as WireError[]);
            return;
          }
          const b = r.data?.changes;
          if (b === undefined) return;
          this.batches.push(b);
          if (b.payload !== null) this.engine.applyPayload(new Uint8Array(Buffer.from(b.payload, 'base64')));
          this.#wake();
        },
        error: (e) => this.#fail(Array.isArray(e) ? (e as WireError[]) : [{ message: String((e as { reason?: string }).reason ?? e) }]),
        complete: () => this.#wake(),
      },
    );
  }

  #fail(errors: WireError[]): void {
    this.error ??= errors;
    this.endedAt ??= Date.now();
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  has(id: string): boolean {
    return this.engine.driver.prepare('SELECT 1 FROM todos WHERE id = ?').get(id) !== undefined;
  }

  get code(): string | undefined {
    return this.error?.[0]?.extensions?.code;
  }

  /** Waits until `pred` holds, re-checked on every event of this device; fails after `ms`. */
  async until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; error=${JSON.stringify(this.error)} closed=${JSON.stringify(this.closed)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, Math.min(left, 100));
      });
    }
  }

  /** Caught up (the replay's final batch arrived): the subscription is live. */
  async live(): Promise<void> {
    await this.until(() => this.batches.some((b) => b.final), 'the first final batch');
  }

  async close(): Promise<void> {
    await this.#client.dispose();
  }
}

/** A writer device of its own API key (never revoked in a test). */
async function writer(databaseId: string, on: RunningApp = t): Promise<TestDevice> {
  const k = await on.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "writer") { secret } }', { d: databaseId });
  return new TestDevice(on, databaseId, k.createApiKey.secret);
}

async function write(w: TestDevice, id: string): Promise<void> {
  w.exec("INSERT INTO todos (id, user_id, title) VALUES (?, 'u', 'x')", id);
  const r = await w.upload();
  expect(r.status).toBe(200);
}

async function accessToken(databaseId: string, userId: string, expiresAt?: Date): Promise<{ id: string; token: string }> {
  const r = await t.gql<{ createAccessToken: { token: string; accessToken: { id: string } } }>(
    'mutation($d: ID!, $u: String!, $e: DateTime) { createAccessToken(databaseId: $d, userId: $u, name: "t", expiresAt: $e) { token accessToken { id } } }',
    { d: databaseId, u: userId, e: expiresAt?.toISOString() ?? null },
  );
  return { id: r.createAccessToken.accessToken.id, token: r.createAccessToken.token };
}

/**
 * The common shape of every trigger: `victim` and `bystander` are live; `trigger()` runs; a row
 * is written right after it returns. The victim ends with `code` within 2 s and never gets the
 * row; the bystander gets it.
 */
async function expectEnds(o: { victim: LiveDevice; bystander: LiveDevice; w: TestDevice; code: string; closeCode?: number; trigger(): Promise<void> }): Promise<void> {
  await Promise.all([o.victim.live(), o.bystander.live()]);
  await write(o.w, 'before');
  await o.victim.until(() => o.victim.has('before'), 'the row written before the trigger');
  await o.bystander.until(() => o.bystander.has('before'), 'the row written before the trigger');
  const batchesBefore = o.victim.batches.length;

  const t0 = Date.now();
  await o.trigger();
  await write(o.w, 'after');

  await o.victim.until(() => o.victim.error !== undefined, `the ${o.code} error`, 2_000);
  expect(o.victim.code).toBe(o.code);
  expect((o.victim.endedAt ?? Infinity) - t0).toBeLessThan(2_000);
  await o.bystander.until(() => o.bystander.has('after'), 'the row written after the trigger');
  expect(o.victim.has('after')).toBe(false);
  expect(o.victim.batches.length).toBe(batchesBefore);
  expect(o.bystander.error).toBeUndefined();
  if (o.closeCode !== undefined) {
    await o.victim.until(() => o.victim.closed !== undefined, 'the socket close');
    expect(o.victim.closed).toEqual({ code: o.closeCode, reason: o.code });
  }
  expect(o.bystander.closed).toBeUndefined();
}

test('revokeApiKey ends the subscriptions of that key (CREDENTIAL_REVOKED, socket closed 4401); another key keeps streaming', async () => {
  const db = await setupDatabase(t);
  const other = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "other") { secret } }', { d: db.databaseId });
  const victim = new LiveDevice(db.databaseId, db.apiKey);
  const bystander = new LiveDevice(db.databaseId, other.createApiKey.secret);
  await expectEnds({
    victim, bystander, w: await writer(db.databaseId), code: 'CREDENTIAL_REVOKED', closeCode: 4401,
    trigger: async () => void (await t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: db.apiKeyId })),
  });
  await closeAll(victim, bystander);
});

test('revokeAccessToken ends the subscriptions of that token (CREDENTIAL_REVOKED, 4401); another user’s token keeps streaming', async () => {
  const db = await setupDatabase(t);
  const alice = await accessToken(db.databaseId, 'alice');
  const bob = await accessToken(db.databaseId, 'bob');
  const victim = new LiveDevice(db.databaseId, alice.token);
  const bystander = new LiveDevice(db.databaseId, bob.token);
  await expectEnds({
    victim, bystander, w: await writer(db.databaseId), code: 'CREDENTIAL_REVOKED', closeCode: 4401,
    trigger: async () => void (await t.gql('mutation($id: ID!) { revokeAccessToken(id: $id) { id } }', { id: alice.id })),
  });
  await closeAll(victim, bystander);
});

test('an access token that expires (injected clock) ends its subscriptions (CREDENTIAL_EXPIRED, 4401); a token without expiry keeps streaming', async () => {
  const db = await setupDatabase(t);
  const short = await accessToken(db.databaseId, 'carol', new Date(clock.now() + 60_000));
  const lasting = await accessToken(db.databaseId, 'dave');
  const victim = new LiveDevice(db.databaseId, short.token);
  const bystander = new LiveDevice(db.databaseId, lasting.token);
  await expectEnds({
    victim, bystander, w: await writer(db.databaseId), code: 'CREDENTIAL_EXPIRED', closeCode: 4401,
    // Expiry has no event: the stream checks expiresAt against the clock before every batch, and
    // the periodic re-validation (every second) ends it and closes the socket.
    trigger: async () => {
      clock.advance(60_001);
    },
  });
  await closeAll(victim, bystander);
});

test('removeDevice ends that device’s subscription (DEVICE_REMOVED, socket stays open); another device of the same key keeps streaming', async () => {
  const db = await setupDatabase(t);
  const victim = new LiveDevice(db.databaseId, db.apiKey);
  const bystander = new LiveDevice(db.databaseId, db.apiKey);
  await expectEnds({
    victim, bystander, w: await writer(db.databaseId), code: 'DEVICE_REMOVED',
    trigger: async () => {
      // The device row is written when the subscription opens (recordDevice, fire and forget).
      await waitForDevice(db.databaseId, victim.site);
      await t.gql('mutation($d: ID!, $s: String!) { removeDevice(databaseId: $d, siteId: $s) }', { d: db.databaseId, s: victim.site });
    },
  });
  expect(victim.closed).toBeUndefined();
  await closeAll(victim, bystander);
});

test('disableOffSync ends every subscription of the database (SYNC_DISABLED); a subscription of another database keeps streaming', async () => {
  const db = await setupDatabase(t);
  const elsewhere = await setupDatabase(t);
  const victim = new LiveDevice(db.databaseId, db.apiKey);
  const bystander = new LiveDevice(elsewhere.databaseId, elsewhere.apiKey);
  const w = await writer(db.databaseId);
  const w2 = await writer(elsewhere.databaseId);
  await Promise.all([victim.live(), bystander.live()]);
  await write(w, 'before');
  await victim.until(() => victim.has('before'), 'the row before');
  const t0 = Date.now();
  await t.gql('mutation($d: ID!) { disableOffSync(databaseId: $d) { id } }', { d: db.databaseId });
  await victim.until(() => victim.error !== undefined, 'SYNC_DISABLED', 2_000);
  expect(victim.code).toBe('SYNC_DISABLED');
  expect((victim.endedAt ?? Infinity) - t0).toBeLessThan(2_000);
  expect(victim.closed).toBeUndefined(); // the credential still holds
  await write(w2, 'elsewhere');
  await bystander.until(() => bystander.has('elsewhere'), 'the other database’s row');
  expect(bystander.error).toBeUndefined();
  await closeAll(victim, bystander);
});

test('setRlsMode ends the users’ subscriptions of the database (RLS_MODE_CHANGED); an API key (RLS bypassed) keeps streaming', async () => {
  const db = await setupDatabase(t);
  const erin = await accessToken(db.databaseId, 'erin');
  const victim = new LiveDevice(db.databaseId, erin.token);
  const bystander = new LiveDevice(db.databaseId, db.apiKey);
  await expectEnds({
    victim, bystander, w: await writer(db.databaseId), code: 'RLS_MODE_CHANGED',
    trigger: async () => void (await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d: db.databaseId })),
  });
  expect(victim.closed).toBeUndefined();
  await closeAll(victim, bystander);
});

test('a revocation that published no event is caught by the periodic re-validation (CREDENTIAL_REVOKED, 4401)', async () => {
  const db = await setupDatabase(t);
  const other = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "other") { secret } }', { d: db.databaseId });
  const victim = new LiveDevice(db.databaseId, db.apiKey);
  const bystander = new LiveDevice(db.databaseId, other.createApiKey.secret);
  await Promise.all([victim.live(), bystander.live()]);
  // Straight to the control-plane database: no `syncAccessEnded` event.
  await t.app.services.prisma.apiKey.update({ where: { id: db.apiKeyId }, data: { revokedAt: new Date(clock.now()) } });
  await victim.until(() => victim.error !== undefined && victim.closed !== undefined, 'the end by re-validation', 5_000);
  expect(victim.code).toBe('CREDENTIAL_REVOKED');
  expect(victim.closed).toEqual({ code: 4401, reason: 'CREDENTIAL_REVOKED' });
  const w = await writer(db.databaseId);
  await write(w, 'still-live');
  await bystander.until(() => bystander.has('still-live'), 'the bystander’s row');
  await closeAll(victim, bystander);
});

test('across processes: a key revoked on instance 1 ends its subscription on instance 2 within 2 s (Redis pub/sub when TEST_REDIS_URL is set)', async () => {
  // Two apps over one control-plane file and one DATA_DIR, each with its own pub/sub connections
  // to one Redis (TEST_REDIS_URL); without Redis, one in-memory bus shared by both.
  const cp = await createTestTarget('sqlite');
  await migrate(cp.target);
  const dataDir = mkdtempSync(join(tmpdir(), 'offsync-revocation-'));
  const serverKey = randomBytes(32);
  const redisUrl = process.env['TEST_REDIS_URL'] || undefined;
  const prefix = `offsync-test-${randomBytes(6).toString('hex')}:`;
  const shared = redisUrl === undefined ? createApiPubSub() : undefined;
  const start = async (): Promise<RunningApp & { ws: string }> => {
    const bus = redisUrl === undefined ? undefined : await createRedisPubSub({ url: redisUrl, prefix });
    const app = createApp({
      prisma: createPrismaClient(cp.target), provider: 'sqlite', pubsub: bus?.pubsub ?? shared ?? createApiPubSub(), secretBox: createSecretBox(serverKey),
      clock: systemClock, logger: silentLogger, dataDir, publicUrl: 'http://127.0.0.1:4000', billingPeriodStartDay: 1, metricsThrottleMs: 50,
      sync: { cacheTtlMs: 0 },
    });
    return serveApp(app, dataDir, async () => { await bus?.close(); }, { sharedControlPlane: true });
  };
  const one = await start();
  const two = await start();
  two.adminKey = one.adminKey; // one control plane: the key the first instance created
  try {
    const db = await setupDatabase(one);
    const other = await one.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "other") { secret } }', { d: db.databaseId });
    const victim = new LiveDevice(db.databaseId, db.apiKey, two.ws);
    const bystander = new LiveDevice(db.databaseId, other.createApiKey.secret, two.ws);
    await expectEnds({
      victim, bystander, w: await writer(db.databaseId, one), code: 'CREDENTIAL_REVOKED', closeCode: 4401,
      trigger: async () => void (await one.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: db.apiKeyId })),
    });
    await closeAllOn(two, victim, bystander);
  } finally {
    await one.dispose();
    await two.dispose();
    await cp.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** Disposes the clients; every session of their sockets leaves the registry (no leak of idle streams). */
async function closeAll(...devices: LiveDevice[]): Promise<void> {
  await closeAllOn(t, ...devices);
}

async function closeAllOn(on: RunningApp, ...devices: LiveDevice[]): Promise<void> {
  await Promise.all(devices.map((d) => d.close()));
  const registry = liveSessionsOf(on.app.services);
  const deadline = Date.now() + 5_000;
  while (registry.size() > 0) {
    if (Date.now() > deadline) throw new Error(`${registry.size()} live sessions left`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForDevice(databaseId: string, siteId: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await t.app.services.devices.getDevice(databaseId, siteId)) === null) {
    if (Date.now() > deadline) throw new Error('device never recorded');
    await new Promise((r) => setTimeout(r, 20));
  }
}
