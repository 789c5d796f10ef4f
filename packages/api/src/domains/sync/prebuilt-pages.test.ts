/**
 * Prebuilt `/check` pages (prebuilt-pages.ts): a non-final G3 reply has the pages of the request it
 * calls for next built while it travels; that request alone gets them (same principal, cursors,
 * limits), byte for byte what it would have been built, and never once the database changed
 * (a write of the server's own connection, a commit of another connection, a schema or policy
 * change) or the entry expired; memory stays within its caps.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { call, insertTodos, newDevice, ownPayload, siteHex } from '../../../test/sync-fixtures/devices.ts';
import type { Device } from '../../../test/sync-fixtures/devices.ts';
import { listenTestServer } from '../../../test/sync-fixtures/server.ts';
import type { TestServer } from '../../../test/sync-fixtures/server.ts';
import type { Central } from './central.ts';
import { createSyncHttpHandler } from './http/handler.ts';
import { recordPolicyChange } from './policy-history.ts';
import { PrebuiltPages } from './prebuilt-pages.ts';
import type { PageRequest } from './prebuilt-pages.ts';
import { MemorySharedStore } from './shared-store.ts';
import type { SharedStore } from './shared-store.ts';
import { allowAllSyncDeps } from './sync-deps.ts';
import type { Principal } from './sync-deps.ts';
import type { DownloadResult } from './sync.service.ts';

const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
/** Two credentials of one user (so both may use one site), with different claims. */
const PRINCIPALS: Record<string, Principal> = {
  KEYA: { kind: 'jwt', userId: 'u1', claims: { team: 'a' } },
  KEYB: { kind: 'jwt', userId: 'u1', claims: { team: 'b' } },
};
const HTTP = { pageBytes: 24_000, inlineDownloadBytes: 1000, slowStartBytes: 1500, slowStartGrowth: 4, rateLimitPerSecond: 0 };

type Srv = TestServer & { origin: string };
let on: Srv;
let off: Srv;
let seed: Device;

const listen = (prebuilt: boolean): Promise<Srv> =>
  listenTestServer({
    databases: [{ id: 'big' }],
    http: { ...HTTP, ...(prebuilt ? {} : { prebuiltPages: false }) },
    deps: { authenticate: async (_db, credential) => (credential === undefined ? null : (PRINCIPALS[credential] ?? null)) },
  });

async function upload(s: Srv, d: Device, key = 'KEYA', after = 0): Promise<void> {
  const url = (await call('GET', `${s.origin}/v2/cloudsync/big.sqlite/${siteHex(d)}/upload`, { key })).text;
  await call('PUT', url, { key: null, body: ownPayload(d, after) ?? new Uint8Array() });
  expect((await call('POST', `${s.origin}/v2/cloudsync/big.sqlite/${siteHex(d)}/apply`, { key, json: { url, dbVersionMin: after, dbVersionMax: d.dbVersion() } })).status).toBe(200);
}

beforeAll(async () => {
  seed = newDevice();
  insertTodos(seed, 400, 'row', 'a fairly long title to make pages fill up quickly ');
  on = await listen(true);
  off = await listen(false);
  await upload(on, seed);
  await upload(off, seed);
});
afterAll(async () => {
  await on.close();
  await off.close();
});

interface CheckData {
  chunks?: Array<{ payload?: string; cursor: number }>;
  payload?: string;
  final: boolean;
  nextCursor?: number;
}

async function check(s: Srv, site: string, cursor: number, key = 'KEYA'): Promise<CheckData> {
  const r = await call('POST', `${s.origin}/v2/cloudsync/databases/big/${site}/check`, { key, json: { dbVersion: 0, seq: 0, cursor, maxChunks: 1 }, headers: G3 });
  expect(r.status).toBe(200);
  return (r.json() as { data: CheckData }).data;
}

const stats = (s: Srv) => ({ ...s.handler.prebuilt?.stats });
const payloadOf = (d: CheckData): string | undefined => d.payload ?? d.chunks?.[0]?.payload;

/** A fresh site's first `/check` (the server then builds the second page ahead), after its first request claims the site. */
async function firstPage(s: Srv, key = 'KEYA'): Promise<{ site: string; next: number }> {
  const site = siteHex(newDevice());
  await call('GET', `${s.origin}/v2/cloudsync/databases/big/${site}/status`, { key, headers: G3 }); // claims the site (a write)
  const d = await check(s, site, 0, key);
  expect(d.final).toBe(false);
  await new Promise((ok) => setImmediate(ok));
  return { site, next: d.nextCursor ?? 0 };
}

describe('over HTTP', () => {
  test('every page after the first is served prebuilt, byte for byte the page built without prebuilding', async () => {
    const pages = async (s: Srv): Promise<Array<string | undefined>> => {
      const site = siteHex(newDevice());
      const out: Array<string | undefined> = [];
      let cursor = 0;
      for (;;) {
        const d = await check(s, site, cursor);
        out.push(payloadOf(d));
        if (d.final) return out;
        cursor = d.nextCursor ?? 0;
      }
    };
    const before = stats(on);
    const withPrebuilt = await pages(on);
    const without = await pages(off);
    expect(withPrebuilt.length).toBeGreaterThan(4);
    expect(withPrebuilt).toEqual(without);
    expect((stats(on).hits ?? 0) - (before.hits ?? 0)).toBe(withPrebuilt.length - 1);
    expect(stats(off)).toEqual({});
  });

  test('only the principal the page was built for gets it (same site and cursor, other claims)', async () => {
    const { site, next } = await firstPage(on);
    const before = stats(on);
    const asB = await check(on, site, next, 'KEYB');
    expect(stats(on).hits).toBe(before.hits);
    // B's reply predicts B's next request, which replaces A's unused entry (a site holds one) and
    // pauses the site: A's request is built afresh too. Both got the same bytes (no RLS here).
    expect(stats(on).superseded).toBe((before.superseded ?? 0) + 1);
    const asA = await check(on, site, next, 'KEYA');
    expect(stats(on).hits).toBe(before.hits);
    expect(payloadOf(asA)).toBe(payloadOf(asB));
  });

  test('a merge (a write of the server connection) makes the prebuilt page stale: the request gets a fresh one', async () => {
    const { site, next } = await firstPage(on);
    const before = stats(on);
    const other = newDevice();
    insertTodos(other, 3, 'late', 'new ');
    await upload(on, other);
    const fresh = await check(on, site, next);
    expect(stats(on).hits).toBe(before.hits);
    expect(stats(on).stale).toBe((before.stale ?? 0) + 1);
    expect(payloadOf(fresh)).toBeDefined();
  });

  test('a write that moves no server version (a new site claimed on the same connection) makes it stale too', async () => {
    const { site, next } = await firstPage(on);
    const before = stats(on);
    expect((await call('GET', `${on.origin}/v2/cloudsync/databases/big/${siteHex(newDevice())}/status`, { key: 'KEYA', headers: G3 })).status).toBe(200);
    await check(on, site, next);
    expect(stats(on).hits).toBe(before.hits);
    expect(stats(on).stale).toBe((before.stale ?? 0) + 1);
  });

  test('a commit of another connection (another process) makes it stale', async () => {
    const other = new Database(on.pathOf('big'));
    other.exec('CREATE TABLE IF NOT EXISTS other_program(x)');
    const { site, next } = await firstPage(on);
    const before = stats(on);
    other.exec('INSERT INTO other_program VALUES (1)');
    other.close();
    await check(on, site, next);
    expect(stats(on).hits).toBe(before.hits);
    expect(stats(on).stale).toBe((before.stale ?? 0) + 1);
  });

  test('a policy change recorded in the database, or a schema change, makes it stale', async () => {
    const engine = on.handler.service.databases.peek('big');
    expect(engine).toBeDefined();
    let { site, next } = await firstPage(on);
    let before = stats(on);
    recordPolicyChange(engine!.driver, { table: 'todos', dbVersion: engine!.dbVersion(), mode: 'ENFORCE', select: 'true' });
    await check(on, site, next);
    expect(stats(on).hits).toBe(before.hits);
    expect(stats(on).stale).toBe((before.stale ?? 0) + 1);

    ({ site, next } = await firstPage(on));
    before = stats(on);
    engine!.driver.exec('CREATE TABLE IF NOT EXISTS unrelated_schema_change(x)'); // DDL: no row changed
    await check(on, site, next);
    expect(stats(on).hits).toBe(before.hits);
    expect(stats(on).stale).toBe((before.stale ?? 0) + 1);
  });
});

describe('PrebuiltPages', () => {
  const principal: Principal = { kind: 'apiKey', userId: null, claims: {} };
  /** One site per cursor unless `site` is given (a site holds one entry at a time). */
  const request = (db: string, cursor: number, site = 'ab'.repeat(16)): PageRequest => ({
    db,
    site,
    principal,
    base: { dbVersion: 0, seq: Number.MAX_SAFE_INTEGER },
    cursor,
    maxChunks: 1,
    generation: 'G3',
    after: { dbVersion: cursor, seq: 1 },
    plan: { pageBytes: 1000 },
  });
  const result = (bytes: number): DownloadResult => ({
    pages: [{ from: { dbVersion: 0, seq: 0 }, to: { dbVersion: 1, seq: 1 }, rows: 1, bytes, payload: new Uint8Array(bytes) }],
    complete: false,
    watermark: 1,
    schemaHash: 7n,
  });
  let db: Central;
  beforeAll(async () => {
    db = await on.handler.service.open('big');
  });
  const stamp = async (): Promise<bigint> => 7n;

  test('built entries stay within the per-database and the global byte caps, oldest dropped first', async () => {
    const cache = new PrebuiltPages({ maxBytes: 5000, maxBytesPerDatabase: 3000, defer: (run) => run() });
    const build = async (n: number) => result(n);
    const at = (db: string, i: number) => request(db, i, i.toString(16).padStart(32, '0'));
    for (let i = 1; i <= 3; i++) cache.schedule(at('big', i), db, () => build(1000));
    await new Promise((ok) => setImmediate(ok));
    // 3 × (1000 + 256) > 3000: the first went.
    expect(cache.bytes).toBeLessThanOrEqual(3000);
    expect(cache.stats.dropped).toBe(1);
    expect(await cache.take(at('big', 1), db, stamp)).toBeUndefined();
    expect(await cache.take(at('big', 3), db, stamp)).toBeDefined();
    // Another database's entries count against the global cap (the key holds the database id; the state read is the same file's).
    for (let i = 4; i <= 7; i++) cache.schedule(at(`other${i}`, i), db, () => build(1000));
    await new Promise((ok) => setImmediate(ok));
    expect(cache.bytes).toBeLessThanOrEqual(5000);
    expect(await cache.take(at('big', 2), db, stamp)).toBeUndefined(); // the oldest of all went first
    // Larger than a cap alone: not kept.
    cache.schedule(at('big', 9), db, () => build(4000));
    await new Promise((ok) => setImmediate(ok));
    expect(cache.bytes).toBeLessThanOrEqual(5000);
    expect(await cache.take(at('big', 9), db, stamp)).toBeUndefined();
  });

  test('a site holds one entry; a prediction that goes unused (replaced, or never asked for) pauses its site, a used one does not', async () => {
    let now = 1000;
    const cache = new PrebuiltPages({ ttlMs: 500, wastePauseMs: 10_000, now: () => now, defer: (run) => run() });
    let builds = 0;
    const build = async () => (builds++, result(10));
    // A device that follows the predictions: every one built and taken, no pause.
    for (let i = 1; i <= 3; i++) {
      cache.schedule(request('big', i), db, build);
      expect(await cache.take(request('big', i), db, stamp)).toBeDefined();
    }
    expect(builds).toBe(3);
    // One that asks for something else: its next prediction replaces the unused one and is not built,
    // and nothing is built for that site until the pause is over, whatever it asks.
    cache.schedule(request('big', 10), db, build);
    await new Promise((ok) => setImmediate(ok));
    cache.schedule(request('big', 20), db, build);
    expect(cache.size).toBe(0);
    for (let i = 21; i < 40; i++) cache.schedule(request('big', i), db, build);
    expect(builds).toBe(4);
    expect(cache.stats).toMatchObject({ superseded: 1, paused: 19 });
    // Another site is not paused.
    cache.schedule(request('big', 50, 'cd'.repeat(16)), db, build);
    expect(builds).toBe(5);
    // Past the pause the site gets a prediction again; left untaken past its TTL, it pauses the site again.
    now += 10_001;
    cache.schedule(request('big', 60), db, build);
    expect(builds).toBe(6);
    await new Promise((ok) => setImmediate(ok)); // (built)
    now += 501;
    cache.schedule(request('big', 61), db, build); // (the sweep drops the untaken entry first)
    expect(builds).toBe(6);
    expect(cache.stats).toMatchObject({ superseded: 1, paused: 20 });
  });

  test('an entry past its TTL (counted from the start of its build) is not served, and its memory is released', async () => {
    let now = 1000;
    const cache = new PrebuiltPages({ ttlMs: 500, now: () => now, defer: (run) => run() });
    cache.schedule(request('big', 1), db, async () => result(10));
    await new Promise((ok) => setImmediate(ok));
    now += 500;
    expect(await cache.take(request('big', 1), db, stamp)).toBeDefined();
    // A build that ends after the TTL (started at 1500, taken at 2001).
    let release: (r: DownloadResult) => void = () => undefined;
    cache.schedule(request('big', 2), db, () => new Promise<DownloadResult>((ok) => (release = ok)));
    now += 501;
    const late = cache.take(request('big', 2), db, stamp);
    release(result(10));
    expect(await late).toBeUndefined();
    // A built entry nobody takes is dropped once its TTL is over.
    cache.schedule(request('big', 3), db, async () => result(10));
    await new Promise((ok) => setImmediate(ok));
    expect(cache.bytes).toBeGreaterThan(0);
    now += 501;
    expect(await cache.take(request('big', 4), db, stamp)).toBeUndefined();
    expect(cache.bytes).toBe(0);
    expect(cache.stats).toMatchObject({ hits: 1, stale: 1, dropped: 1 });
  });

  test('a planned build whose reply never finished (the client went away) is forgotten after the TTL', async () => {
    let now = 1000;
    const cache = new PrebuiltPages({ ttlMs: 500, now: () => now });
    cache.schedule(request('big', 1), db, async () => result(10), () => undefined);
    expect(cache.size).toBe(1);
    now += 501;
    expect(await cache.take(request('big', 2), db, stamp)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  test('a database closed meanwhile: nothing is built or served, and nothing throws', async () => {
    const t = await listenTestServer({ databases: [{ id: 'gone' }] });
    try {
      const gone = await t.handler.service.open('gone');
      const cache = new PrebuiltPages({ defer: (run) => run() });
      cache.schedule(request('gone', 1), gone, async () => result(10));
      await new Promise((ok) => setImmediate(ok));
      expect(cache.stats.builds).toBe(1);
      (gone as unknown as { engine: { close(): void } }).engine.close();
      expect(await cache.take(request('gone', 1), gone, stamp)).toBeUndefined();
      expect(() => cache.schedule(request('gone', 2), gone, async () => result(10))).not.toThrow();
      expect(cache.stats).toMatchObject({ builds: 1, hits: 0, stale: 1 });
      expect(cache.size).toBe(0);
    } finally {
      await t.close();
    }
  });

  test('a request waits for a build in flight instead of building again; an entry is served once', async () => {
    let release: (r: DownloadResult) => void = () => undefined;
    const cache = new PrebuiltPages({ defer: (run) => run() });
    cache.schedule(request('big', 1), db, () => new Promise<DownloadResult>((ok) => (release = ok)));
    const taken = cache.take(request('big', 1), db, stamp);
    release(result(10));
    expect((await taken)?.watermark).toBe(1);
    expect(await cache.take(request('big', 1), db, stamp)).toBeUndefined();
    expect(cache.stats).toMatchObject({ builds: 1, hits: 1 });
  });

  test('a request that differs only in maxChunks, with the same plan, is served (the 1.1.4 client counts maxChunks down); another plan is not', async () => {
    const cache = new PrebuiltPages({ defer: (run) => run() });
    cache.schedule({ ...request('big', 1), maxChunks: 16 }, db, async () => result(10));
    await new Promise((ok) => setImmediate(ok));
    expect(await cache.take({ ...request('big', 1), maxChunks: 9996 }, db, stamp)).toBeDefined();
    cache.schedule(request('big', 2), db, async () => result(10));
    await new Promise((ok) => setImmediate(ok));
    expect(await cache.take({ ...request('big', 2), plan: { pageBytes: 1000, maxPages: 2 } }, db, stamp)).toBeUndefined();
  });

  test('another schema hash to stamp, or another cursor, gets nothing', async () => {
    const cache = new PrebuiltPages({ defer: (run) => run() });
    cache.schedule(request('big', 1), db, async () => result(10));
    await new Promise((ok) => setImmediate(ok));
    expect(await cache.take(request('big', 2), db, stamp)).toBeUndefined();
    expect(await cache.take(request('big', 1), db, async () => 8n)).toBeUndefined();
    expect(cache.stats).toMatchObject({ hits: 0, stale: 1 });
  });
});

test('on by default with one node (this process holds the shared store), off with another store unless asked for', async () => {
  const mem = new MemorySharedStore();
  // Another kind of store (Redis: several nodes), made of the memory store's methods.
  const methods = ['set', 'setIfAbsent', 'get', 'take', 'delete', 'append', 'list', 'item', 'length', 'touch', 'ledgerSet', 'ledgerRemove', 'ledgerRead', 'close'] as const;
  const foreign = Object.fromEntries(methods.map((m) => [m, (mem[m] as (...a: unknown[]) => unknown).bind(mem)])) as unknown as SharedStore;
  const deps = allowAllSyncDeps({ resolveDatabase: () => undefined, authenticate: async () => null });
  const handlers = [
    createSyncHttpHandler(deps, { artifactSecret: 'test-secret-0123456789abcdef' }),
    createSyncHttpHandler(deps, { artifactSecret: 'test-secret-0123456789abcdef', sharedStore: mem }),
    createSyncHttpHandler(deps, { artifactSecret: 'test-secret-0123456789abcdef', sharedStore: foreign }),
    createSyncHttpHandler(deps, { artifactSecret: 'test-secret-0123456789abcdef', sharedStore: foreign, prebuiltPages: {} }),
    createSyncHttpHandler(deps, { artifactSecret: 'test-secret-0123456789abcdef', prebuiltPages: false }),
  ];
  expect(handlers.map((h) => h.prebuilt !== undefined)).toEqual([true, true, false, true, false]);
  for (const h of handlers) await h.dispose();
});

test('the next page is built only once the whole reply is handed to the socket, not while the client has yet to read it', async () => {
  // Pages of ~6 MB of incompressible titles: more than the socket buffers hold while the client reads nothing.
  const big = await listenTestServer({
    databases: [{ id: 'big' }],
    http: { pageBytes: 6_000_000, slowStartBytes: 6_000_000, inlineDownloadBytes: 1000, rateLimitPerSecond: 0 },
    deps: { authenticate: async (_db, credential) => (credential === undefined ? null : (PRINCIPALS[credential] ?? null)) },
  });
  try {
    const d = newDevice();
    d.driver.transaction(() => {
      const st = d.driver.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
      for (let i = 0; i < 3000; i++) st.run(`r${i}`, randomBytes(3000).toString('base64'));
    });
    await upload(big, d);
    const replies: ServerResponse[] = [];
    big.server.prependListener('request', (_req, res: ServerResponse) => void replies.push(res));
    const builds = (): number => big.handler.prebuilt?.stats.builds ?? 0;
    const body = JSON.stringify({ dbVersion: 0, seq: 0, cursor: 0, maxChunks: 1 });
    const socket = connect(Number(new URL(big.origin).port), '127.0.0.1');
    socket.pause();
    socket.write(
      `POST /v2/cloudsync/databases/big/${siteHex(newDevice())}/check HTTP/1.1\r\nhost: x\r\nauthorization: Bearer KEYA\r\ncontent-type: application/json\r\n` +
        `x-cloudsync-version: 1.1.4\r\nx-cloudsync-capabilities: check-chunks\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    // The reply is written but stuck in user space: the client reads nothing.
    await vi.waitFor(() => expect(replies[0]?.headersSent === true && replies[0].writableLength > 0).toBe(true), { timeout: 10_000, interval: 5 });
    for (let i = 0; i < 20; i++) await new Promise((ok) => setImmediate(ok));
    expect(builds()).toBe(0);
    expect(replies[0]?.writableFinished).toBe(false);
    socket.resume(); // reading: the reply drains, then the build starts
    await vi.waitFor(() => expect(builds()).toBe(1), { timeout: 10_000, interval: 5 });
    socket.destroy();
  } finally {
    await big.close();
  }
});
