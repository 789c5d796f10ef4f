/**
 * The control plane off the sync hot path: verified credentials cached ≤ 1 s (revocations in this
 * process at once, elsewhere within the TTL), `lastUsedAt` written at most once a minute and
 * never awaited, and a locked control-plane file waited for asynchronously (no frozen event loop).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { SignJWT } from 'jose';
import { afterEach, expect, test, vi } from 'vitest';
import { createApp, createSecretBox, migrate, createPrismaClient, silentLogger, createApiPubSub } from '../src/index.ts';
import type { Logger, ServiceDeps } from '../src/index.ts';
import { createAccessToken, G3, serveApp, setupDatabase } from './data-plane-fixtures.ts';
import { manualClock, siteId } from './helpers.ts';

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function start(opts: { busyTimeoutMs?: number; logger?: Logger } = {}) {
  const clock = manualClock();
  const dir = mkdtempSync(join(tmpdir(), 'offsync-hotpath-'));
  const file = join(dir, 'control.db');
  await migrate({ provider: 'sqlite', file });
  const deps: ServiceDeps = {
    prisma: createPrismaClient({ provider: 'sqlite', file }, opts.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: opts.busyTimeoutMs }),
    provider: 'sqlite',
    pubsub: createApiPubSub(),
    secretBox: createSecretBox(randomBytes(32)),
    clock,
    logger: opts.logger ?? silentLogger,
    dataDir: join(dir, 'data'),
    publicUrl: 'http://127.0.0.1:4000',
    billingPeriodStartDay: 1,
    metricsThrottleMs: 50,
  };
  const app = createApp({ ...deps, sync: { cacheTtlMs: 0, now: clock.now } });
  const t = await serveApp(app, deps.dataDir, () => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => t.dispose());
  const db = await setupDatabase(t);
  const site = siteId();
  const statusOf = async (credential: string, s: string = site): Promise<number> => {
    const r = await fetch(`${t.origin}/v2/cloudsync/databases/${db.databaseId}/${s}/status`, { headers: { ...G3, authorization: `Bearer ${credential}` } });
    await r.arrayBuffer();
    return r.status;
  };
  const lastUsedAt = async (): Promise<number | undefined> => (await deps.prisma.apiKey.findUnique({ where: { id: db.apiKeyId } }))?.lastUsedAt?.getTime();
  return { t, clock, file, deps, statusOf, lastUsedAt, ...db };
}

test('revocations: through the API at once (this process); behind its back (another process) within the 1 s TTL', async () => {
  const s = await start();
  expect(await s.statusOf(s.apiKey)).toBe(200);
  await s.t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: s.apiKeyId });
  expect(await s.statusOf(s.apiKey)).toBe(401);

  // Access token revoked through GraphQL: refused on the very next request.
  const token = await createAccessToken(s.t, s.databaseId, 'u-1');
  const tokenSite = siteId();
  expect(await s.statusOf(token, tokenSite)).toBe(200);
  const { database } = await s.t.gql<{ database: { auth: { accessTokens: Array<{ id: string }> } } }>('query($id: ID!) { database(id: $id) { auth { accessTokens { id } } } }', { id: s.databaseId });
  const tokenId = database.auth.accessTokens[0]?.id;
  await s.t.gql('mutation($id: ID!) { revokeAccessToken(id: $id) { id } }', { id: tokenId });
  expect(await s.statusOf(token, tokenSite)).toBe(401);

  // Another process revokes (a direct write: no invalidation here): the cache answers for < 1 s.
  const k2 = await s.t.gql<{ createApiKey: { secret: string; apiKey: { id: string } } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "k2") { secret apiKey { id } } }', { d: s.databaseId });
  const key2 = k2.createApiKey.secret;
  expect(await s.statusOf(key2)).toBe(200);
  await s.deps.prisma.apiKey.update({ where: { id: k2.createApiKey.apiKey.id }, data: { revokedAt: new Date(s.clock.now()) } });
  s.clock.advance(900);
  expect(await s.statusOf(key2)).toBe(200);
  s.clock.advance(100);
  expect(await s.statusOf(key2)).toBe(401);
});

test('a cached credential never outlives its own expiry; refusals are not cached; a JWT provider change drops cached JWTs', async () => {
  const s = await start();
  const r = await s.t.gql<{ createAccessToken: { token: string } }>(
    'mutation($d: ID!, $e: DateTime) { createAccessToken(databaseId: $d, userId: "u-exp", name: "t", expiresAt: $e) { token } }',
    { d: s.databaseId, e: new Date(s.clock.now() + 300).toISOString() },
  );
  const site = siteId();
  expect(await s.statusOf(r.createAccessToken.token, site)).toBe(200);
  s.clock.advance(300);
  expect(await s.statusOf(r.createAccessToken.token, site)).toBe(401);

  // A JWT refused (no provider yet) is accepted as soon as the provider is configured.
  const secret = randomBytes(32).toString('hex');
  const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u-jwt').setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  const jwtSite = siteId();
  expect(await s.statusOf(jwt, jwtSite)).toBe(401);
  await s.t.app.services.auth.configureJwtProvider(s.databaseId, { method: 'HS256', secret });
  expect(await s.statusOf(jwt, jwtSite)).toBe(200);
  await s.t.app.services.auth.removeJwtProvider(s.databaseId);
  expect(await s.statusOf(jwt, jwtSite)).toBe(401);
});

test('lastUsedAt of an API key: written at most once a minute per key (fake clock), without holding the request', async () => {
  const s = await start();
  const t0 = s.clock.now();
  expect(await s.statusOf(s.apiKey)).toBe(200);
  await vi.waitFor(async () => expect(await s.lastUsedAt()).toBe(t0), { timeout: 10_000 });
  for (const step of [2_000, 20_000, 37_000]) {
    s.clock.advance(step); // past the 1 s cache: the key is verified again
    expect(await s.statusOf(s.apiKey)).toBe(200);
  }
  // Reads of the control plane in the same order as the writes would have been: nothing written.
  await s.t.gql('{ projects { id } }');
  expect(await s.lastUsedAt()).toBe(t0);
  s.clock.advance(1_000); // t0 + 60 s
  const t1 = s.clock.now();
  expect(await s.statusOf(s.apiKey)).toBe(200);
  await vi.waitFor(async () => expect(await s.lastUsedAt()).toBe(t1), { timeout: 10_000 });
});

test('a locked control-plane file does not freeze the server: sync status and GraphQL answer, writes wait asynchronously', async () => {
  const errors: string[] = [];
  const logger: Logger = { info() {}, warn() {}, error: (m) => errors.push(m) };
  const s = await start({ busyTimeoutMs: 30_000, logger });
  const t0 = s.clock.now();
  expect(await s.statusOf(s.apiKey)).toBe(200);
  await vi.waitFor(async () => expect(await s.lastUsedAt()).toBe(t0), { timeout: 10_000 });

  // Another connection (think: another process, a backup tool) holds the write lock.
  const locker = new Database(s.file);
  locker.exec('BEGIN IMMEDIATE');
  let written = false;
  const write = s.deps.prisma.apiKey.updateMany({ where: { id: s.apiKeyId }, data: { name: 'device' } }).then((r) => {
    written = true;
    return r.count;
  });
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const began = performance.now();
  try {
    s.clock.advance(500); // cached credential
    expect(await s.statusOf(s.apiKey)).toBe(200);
    s.clock.advance(1_500); // cache expired: verified again (a read), lastUsedAt not due, device writes wait
    expect(await s.statusOf(s.apiKey)).toBe(200);
    const projects = await s.t.gql<{ projects: unknown[] }>('{ projects { id } }');
    expect(projects.projects).toHaveLength(1);
    // A synchronous busy wait would have frozen everything for the 30 s busy timeout.
    expect(performance.now() - began).toBeLessThan(10_000);
    expect(lag.max / 1e6).toBeLessThan(10_000);
    expect(written).toBe(false);
  } finally {
    lag.disable();
    locker.exec('ROLLBACK');
    locker.close();
  }
  // Released: the waiting write goes through; nothing failed meanwhile.
  expect(await write).toBe(1);
  expect(errors).toEqual([]);
  expect(await s.lastUsedAt()).toBe(t0);
});

test('past the busy timeout a write fails (and is logged by its caller); the request path is not held', async () => {
  const errors: string[] = [];
  const s = await start({ busyTimeoutMs: 200, logger: { info() {}, warn() {}, error: (m) => errors.push(m) } });
  const locker = new Database(s.file);
  locker.exec('BEGIN IMMEDIATE');
  try {
    await expect(s.deps.prisma.apiKey.updateMany({ where: { id: s.apiKeyId }, data: { name: 'x' } })).rejects.toThrow();
    // lastUsedAt is due (first use): its write fails in the background, the request is answered.
    expect(await s.statusOf(s.apiKey)).toBe(200);
    await vi.waitFor(() => expect(errors).toContain('auth: lastUsedAt update failed'), { timeout: 10_000 });
  } finally {
    locker.exec('ROLLBACK');
    locker.close();
  }
});
