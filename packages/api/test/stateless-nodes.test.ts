/**
 * Stateless nodes (docs/ARCHITECTURE.md "Scaling out"): THREE OffSync instances (three
 * `createApp`s on one control-plane file and one DATA_DIR, each with its own pub/sub and shared
 * sync store on one Redis) behind a round-robin HTTP proxy written here (node:http, loopback).
 * The proxy sends every request of a device — API calls, artifact PUTs and GETs — to another
 * node than its previous one. Devices of every generation upload through URLs (G2a, G2b, G3,
 * payloads > 128 KiB), upload chunked G3 batches whose chunks, slots and re-sends land on
 * different nodes, and drain multi-page downloads following G3 continuation cursors. Nothing
 * answers 410 `artifact_used`, no page is sent twice (change rows received = needed), every
 * upload merges exactly once, and every device converges. A cursor that is forged, of another
 * database or site, or sent with another base is refused: the download restarts at the
 * device's durable cursor and never skips a page.
 *
 * Redis: TEST_REDIS_URL when set, else an in-process fake (test/fake-redis.ts) shared by the
 * three nodes. Never skipped.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createRedisSharedStore, RedisSharedStore } from '../src/domains/sync/index.ts';
import type { SharedStore } from '../src/domains/sync/index.ts';
import {
  createApp,
  createSecretBox,
  migrate,
  createPrismaClient,
  silentLogger,
  systemClock,
  createApiPubSub,
  createRedisApiEventTarget,
  createRedisPubSub,
} from '../src/index.ts';
import type { App, RedisPubSub } from '../src/index.ts';
import { decodePayload } from '@offsync/core';
import { FakeRedisBroker } from './fake-redis.ts';
import { createTestTarget } from './helpers.ts';
import type { TestTarget } from './helpers.ts';
import { call, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device, Reply } from './sync-fixtures/devices.ts';
import { TODOS_DDL } from './sync-fixtures/server.ts';

const REDIS_URL = process.env['TEST_REDIS_URL'] || undefined;
const PREFIX = `offsync-test-${randomBytes(6).toString('hex')}:`;
const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };

/** `n` rows with incompressible titles (payloads are compressed): 300 rows ≈ 180 KiB. */
function insertRows(d: Device, n: number, prefix: string): void {
  d.driver.transaction(() => {
    const st = d.driver.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
    for (let i = 0; i < n; i++) st.run(`${prefix}${String(i).padStart(6, '0')}`, randomBytes(600).toString('base64'));
  });
}

interface Node { app: App; bus: RedisPubSub; store: SharedStore; port: number }
interface Hop { device: string | undefined; node: number; method: string; path: string; status: number }

/** One Redis for the three nodes: each node gets its own connections (pub/sub and store). */
async function connect(broker: FakeRedisBroker | undefined): Promise<{ bus: RedisPubSub; store: SharedStore }> {
  if (broker === undefined) {
    const url = REDIS_URL as string;
    return { bus: await createRedisPubSub({ url, prefix: PREFIX }), store: await createRedisSharedStore({ url, prefix: PREFIX }) };
  }
  const eventTarget = createRedisApiEventTarget({ publishClient: broker.client(), subscribeClient: broker.client(), prefix: PREFIX });
  return {
    bus: { pubsub: createApiPubSub({ eventTarget }), eventTarget, close: () => eventTarget.close() },
    store: new RedisSharedStore(broker.client(), { prefix: `${PREFIX}sync:` }),
  };
}

/**
 * A round-robin reverse proxy on loopback. A request carrying `x-test-device` goes to the node
 * after the one that served that device's previous request; others go round robin.
 */
function startProxy(ports: readonly number[]): Promise<{ server: Server; origin: string; hops: Hop[]; start(device: string, node: number): void }> {
  const hops: Hop[] = [];
  const last = new Map<string, number>();
  let rr = 0;
  const server = createServer((req, res) => {
    const device = typeof req.headers['x-test-device'] === 'string' ? req.headers['x-test-device'] : undefined;
    const node = device === undefined ? rr++ % ports.length : ((last.get(device) ?? -1) + 1) % ports.length;
    if (device !== undefined) last.set(device, node);
    const up = request({ host: '127.0.0.1', port: ports[node], method: req.method, path: req.url, headers: req.headers }, (r) => {
      hops.push({ device, node, method: req.method ?? '', path: (req.url ?? '').split('?')[0] ?? '', status: r.statusCode ?? 0 });
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    resolve({ server, origin, hops, start: (d, n) => last.set(d, (n + ports.length - 1) % ports.length) });
  }));
}

const keysOf = (bytes: Uint8Array): string[] => decodePayload(bytes).changes.map((c) => `${Buffer.from(c.pk).toString('hex')}/${c.col}/${c.dbVersion}/${c.seq}`);

describe(`three stateless nodes behind a round-robin proxy (${REDIS_URL === undefined ? 'in-process fake Redis' : 'Redis'})`, () => {
  let cp: TestTarget;
  let dataDir: string;
  let broker: FakeRedisBroker | undefined;
  const nodes: Node[] = [];
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let databaseId: string;
  let apiKey: string;
  let otherDb: string;
  let otherKey: string;

  beforeAll(async () => {
    broker = REDIS_URL === undefined ? new FakeRedisBroker() : undefined;
    cp = await createTestTarget('sqlite');
    await migrate(cp.target);
    dataDir = mkdtempSync(join(tmpdir(), 'offsync-data-'));
    // Nodes of one deployment share the server key (secrets, artifact URLs).
    const serverKey = randomBytes(32);
    const artifactSecret = new Uint8Array(randomBytes(32));
    for (let i = 0; i < 3; i++) {
      const { bus, store } = await connect(broker);
      const app = createApp({
        prisma: createPrismaClient(cp.target),
        provider: 'sqlite',
        pubsub: bus.pubsub,
        secretBox: createSecretBox(serverKey),
        clock: systemClock,
        logger: silentLogger,
        dataDir,
        publicUrl: 'http://127.0.0.1:4000',
        billingPeriodStartDay: 1,
        metricsThrottleMs: 50,
        sync: {
          artifactSecret,
          sharedStore: store,
          cacheTtlMs: 0,
          // Small pages: multi-page downloads; no inline chunks: every G3 page is an artifact GET.
          pageBytes: 32 * 1024,
          inlineDownloadBytes: 1000,
          inlineChunksBytes: 0,
          rateLimitPerSecond: 10_000,
          rateLimitBurst: 10_000,
        },
      });
      await new Promise<void>((ok) => app.server.listen(0, '127.0.0.1', ok));
      nodes.push({ app, bus, store, port: (app.server.address() as AddressInfo).port });
    }
    proxy = await startProxy(nodes.map((n) => n.port));
    const s = nodes[0]?.app.services;
    if (s === undefined) throw new Error('no node');
    const project = await s.projects.createProject({ name: 'p', kind: 'SQLITE' });
    for (const name of ['todos', 'other']) {
      const id = (await s.databases.createDatabase({ projectId: project.id, name })).id;
      const file = new Database(sqliteDatabasePath(dataDir, id));
      file.exec(TODOS_DDL);
      file.close();
      await s.tables.deployTables(id, ['todos']);
      await s.databases.setOffSync(id, true);
      const key = (await s.auth.createApiKey(id, 'devices')).secret;
      if (name === 'todos') [databaseId, apiKey] = [id, key];
      else [otherDb, otherKey] = [id, key];
    }
  }, 60_000);

  afterAll(async () => {
    await new Promise<void>((ok) => (proxy === undefined ? ok() : proxy.server.close(() => ok())));
    for (const n of nodes) {
      await n.app.dispose();
      await n.bus.close();
      await n.store.close();
    }
    if (REDIS_URL !== undefined) {
      const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      const keys = await admin.keys(`${PREFIX}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    }
    await cp?.drop();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  /** A device speaking one generation through the proxy; every request names it to the proxy. */
  class Peer {
    readonly d: Device = newDevice();
    readonly site = siteHex(this.d);
    readonly name: string;
    /** Change rows received in download packages. */
    received: string[] = [];
    replies: Reply[] = [];
    constructor(readonly gen: 'G2a' | 'G2b' | 'G3', readonly db: string, readonly key: string, index: number) {
      this.name = `${gen}-${index}`;
      proxy.start(this.name, index % 3);
    }
    get base(): string {
      return this.gen === 'G2a' ? `${proxy.origin}/v2/cloudsync/${this.db}.sqlite/${this.site}` : `${proxy.origin}/v2/cloudsync/databases/${this.db}/${this.site}`;
    }
    async call(method: string, url: string, opts: { json?: unknown; body?: Uint8Array; auth?: boolean } = {}): Promise<Reply> {
      const headers: Record<string, string> = { 'x-test-device': this.name, ...(this.gen === 'G3' ? G3 : {}) };
      const r = await call(method, url, { key: opts.auth === false ? null : this.key, headers, ...(opts.json === undefined ? {} : { json: opts.json }), ...(opts.body === undefined ? {} : { body: opts.body }) });
      this.replies.push(r);
      return r;
    }
    /** `GET upload` → `PUT` (no credential) → the upload URL. */
    async slot(payload: Uint8Array): Promise<string> {
      const r = await this.call('GET', `${this.base}/upload`);
      expect(r.status).toBe(200);
      const url = this.gen === 'G2a' ? r.text : (r.json() as { url: string }).url;
      expect(url.startsWith(`${proxy.origin}/v2/cloudsync/_artifacts/`)).toBe(true);
      expect((await this.call('PUT', url, { body: payload, auth: false })).status).toBe(200);
      return url;
    }
    /** One URL upload of every local change. */
    async uploadByUrl(): Promise<Reply> {
      const payload = ownPayload(this.d);
      if (payload === null) throw new Error('nothing to upload');
      expect(payload.length).toBeGreaterThan(128 * 1024);
      const url = await this.slot(payload);
      return this.call('POST', `${this.base}/apply`, { json: { url, dbVersionMin: this.gen === 'G2a' ? 0 : 1, dbVersionMax: this.d.dbVersion() } });
    }
    /** One G3 batch of every local change in `n` chunks (by URL or inline), re-sending chunk 1 once. */
    async uploadChunked(n: number, byUrl: boolean): Promise<Reply> {
      const changes = [...this.d.changes({ localOnly: true })];
      const window = { dbVersionMin: 1, dbVersionMax: this.d.dbVersion() };
      const batchId = `batch-${this.name}`;
      const size = Math.ceil(changes.length / n);
      let last: Reply | undefined;
      for (let i = 0; i < n; i++) {
        const payload = this.d.encodeChanges(changes.slice(i * size, (i + 1) * size));
        if (payload === null) throw new Error('empty chunk');
        const body = byUrl ? { url: await this.slot(payload) } : { blob: Buffer.from(payload).toString('base64') };
        const fields = { ...body, ...window, batchId, chunkIndex: i, isFinal: i === n - 1 };
        last = await this.call('POST', `${this.base}/apply`, { json: fields });
        expect(last.status).toBe(200);
        // A re-send of an inline chunk (its reply was "lost") reaches yet another node: acknowledged, not merged twice.
        if (i === 1 && !byUrl) expect((await this.call('POST', `${this.base}/apply`, { json: fields })).status).toBe(200);
      }
      return last as Reply;
    }
    /** G2a/G2b: one page per check (URL), last-row cursor. */
    async drainSinglePages(): Promise<number> {
      let cursor = { dbVersion: 0, seq: 0 };
      let pages = 0;
      for (;;) {
        const r = await this.call('POST', `${this.base}/check`, { json: cursor });
        expect(r.status).toBe(200);
        if (r.text === '') return pages;
        const url = this.gen === 'G2a' ? r.text : (r.json() as { url: string }).url;
        const pkg = await this.call('GET', url, { auth: false });
        expect(pkg.status).toBe(200);
        this.received.push(...keysOf(pkg.bytes));
        cursor = this.d.applyPayload(pkg.bytes).last ?? cursor;
        expect(++pages).toBeLessThan(500);
      }
    }
    /** G3: batches of ≤ 2 chunk URLs, following `nextCursor` (each continuation lands on another node). */
    async drainG3(): Promise<{ batches: number; continuations: number }> {
      let durable = { dbVersion: 0, seq: 0 };
      let cursor = 0;
      let batches = 0;
      let continuations = 0;
      for (;;) {
        const r = await this.call('POST', `${this.base}/check`, { json: { ...durable, cursor, maxChunks: 2 } });
        expect(r.status).toBe(200);
        if (r.text === '') return { batches, continuations };
        if (cursor !== 0) continuations++;
        const data = (r.json() as { data: { chunks?: Array<{ url?: string }>; payload?: string; final: boolean; nextCursor?: number; watermark?: number } }).data;
        const pkgs: Uint8Array[] = [];
        if (data.payload !== undefined) pkgs.push(new Uint8Array(Buffer.from(data.payload, 'base64')));
        for (const c of data.chunks ?? []) {
          const pkg = await this.call('GET', c.url ?? '', { auth: false });
          expect(pkg.status).toBe(200);
          pkgs.push(pkg.bytes);
        }
        for (const p of pkgs) {
          this.received.push(...keysOf(p));
          this.d.applyPayload(p);
        }
        if (data.final) {
          durable = { dbVersion: data.watermark ?? 0, seq: 0 };
          cursor = 0;
        } else cursor = data.nextCursor ?? 0;
        expect(++batches).toBeLessThan(500);
      }
    }
  }

  test('URL uploads, chunked G3 batches and multi-page downloads, every request on another node: no 410, no re-sent page, each batch once, convergence', async () => {
    const uploads = nodes.map((n) => vi.spyOn(n.app.sync, 'upload'));
    const peers = [
      new Peer('G2a', databaseId, apiKey, 0),
      new Peer('G2b', databaseId, apiKey, 1),
      new Peer('G3', databaseId, apiKey, 2),
      new Peer('G3', databaseId, apiKey, 3),
      new Peer('G3', databaseId, apiKey, 4),
    ];
    peers.forEach((p, i) => insertRows(p.d, 300, `p${i}-`));
    const own = new Map(peers.map((p) => [p.site, [...p.d.changes({ localOnly: true })].length]));

    // Uploads, all devices at once.
    const [g2a, g2b, g3, chunkedUrl, chunkedInline] = await Promise.all([
      peers[0]?.uploadByUrl(),
      peers[1]?.uploadByUrl(),
      peers[2]?.uploadByUrl(),
      peers[3]?.uploadChunked(3, true),
      peers[4]?.uploadChunked(3, false),
    ]);
    expect([g2a?.status, g2a?.text]).toEqual([200, '']);
    for (const [p, r] of [[peers[1], g2b], [peers[2], g3], [peers[3], chunkedUrl], [peers[4], chunkedInline]] as const) {
      expect(r?.json()).toEqual({ lastOptimisticVersion: p?.d.dbVersion(), lastConfirmedVersion: p?.d.dbVersion(), gaps: [] });
    }
    // Each device's upload merged exactly once (a chunked batch: one merge of its 3 chunks), spread over the nodes.
    const merges = uploads.flatMap((s) => s.mock.calls.map((c) => ({ site: c[1], payloads: Array.isArray(c[2]) ? c[2].length : 1 })));
    expect(merges.map((m) => m.site).sort()).toEqual(peers.map((p) => p.site).sort());
    expect(merges.find((m) => m.site === peers[3]?.site)?.payloads).toBe(3);
    expect(merges.find((m) => m.site === peers[4]?.site)?.payloads).toBe(3);
    expect(uploads.filter((s) => s.mock.calls.length > 0).length).toBeGreaterThan(1);

    // Downloads, all devices at once: G2a/G2b page by page, G3 by continuation cursors.
    const drained = await Promise.all(peers.map((p) => (p.gen === 'G3' ? p.drainG3() : p.drainSinglePages().then((pages) => ({ batches: pages, continuations: 0 })))));
    for (const [i, p] of peers.entries()) {
      // Exactly the changes of the other devices: no page re-sent, none skipped.
      const needed = [...own].filter(([site]) => site !== p.site).reduce((n, [, c]) => n + c, 0);
      expect(p.received).toHaveLength(needed);
      expect(new Set(p.received).size).toBe(needed);
      if (p.gen === 'G3') expect(drained[i]?.continuations).toBeGreaterThan(3);
    }
    // Convergence: every device holds every row.
    const all = peers[0]?.d.driver.prepare(ROWS_SQL).all();
    expect(all).toHaveLength(1500);
    for (const p of peers) expect(p.d.driver.prepare(ROWS_SQL).all()).toEqual(all);

    // Every request of a device went to another node than its previous one, and each device used all three.
    const statuses = new Map<number, number>();
    for (const p of peers) {
      const mine = proxy.hops.filter((h) => h.device === p.name);
      expect(mine.length).toBe(p.replies.length);
      expect(mine.some((h, i) => i > 0 && h.node === mine[i - 1]?.node)).toBe(false);
      expect(new Set(mine.map((h) => h.node)).size).toBe(3);
      for (const r of p.replies) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    expect([...statuses.keys()]).toEqual([200]);
    expect(proxy.hops.filter((h) => h.status === 410)).toEqual([]);
    // Nothing left in the shared store: no pending upload bytes, no open batch.
    expect(await nodes[1]?.app.syncHttp.artifacts.readStats()).toEqual({ pendingBytes: 0, pendingUploads: 0 });
    expect(await nodes[2]?.app.syncHttp.batches.stats()).toEqual({ openBatches: 0, bufferedBytes: 0 });
    for (const s of uploads) s.mockRestore();
  }, 120_000);

  test('a cursor issued on one node continues on another; forged, foreign or re-based cursors restart at the durable cursor (never skip)', async () => {
    // Enough rows in the other database for several pages.
    const writer = new Peer('G3', otherDb, otherKey, 10);
    insertRows(writer.d, 300, 'o-');
    expect((await writer.uploadByUrl()).status).toBe(200);

    const reader = new Peer('G3', databaseId, apiKey, 11);
    const check = async (p: Peer, cursor: number, durable = { dbVersion: 0, seq: 0 }) => {
      const r = await p.call('POST', `${p.base}/check`, { json: { ...durable, cursor, maxChunks: 1 } });
      expect(r.status).toBe(200);
      const data = (r.json() as { data: { chunks: Array<{ url: string; cursor: number }>; nextCursor: number; final: boolean } }).data;
      const first = data.chunks[0];
      if (first === undefined) throw new Error('no chunk');
      const pkg = await p.call('GET', first.url, { auth: false });
      return { nextCursor: data.nextCursor, final: data.final, keys: keysOf(pkg.bytes) };
    };
    const page1 = await check(reader, 0);
    const page2 = await check(reader, page1.nextCursor); // issued on one node, resolved on the next
    expect(page2.keys[0]).not.toBe(page1.keys[0]);
    expect(page2.keys.some((k) => page1.keys.includes(k))).toBe(false);
    const page3 = await check(reader, page2.nextCursor);
    expect(page3.keys.some((k) => page2.keys.includes(k))).toBe(false);

    // Every refused cursor answers the first page from the durable cursor: re-sends, never skips.
    const c = page2.nextCursor;
    const forged = [c + 1, c + 2 ** 14, c - 2 ** 14, 987_654_321, Number.MAX_SAFE_INTEGER, 2 ** 14];
    for (const bad of forged) expect((await check(reader, bad)).keys).toEqual(page1.keys);
    // The same cursor from another site of the same database…
    const stranger = new Peer('G3', databaseId, apiKey, 12);
    expect((await check(stranger, c)).keys).toEqual((await check(stranger, 0)).keys);
    // …or in another database (the first page there, not a position of this database's feed)…
    const foreign = new Peer('G3', otherDb, otherKey, 13);
    expect((await check(foreign, c)).keys).toEqual((await check(foreign, 0)).keys);
    // …or with another durable cursor than it was issued for.
    const rebased = { dbVersion: 1, seq: 0 };
    expect((await check(reader, c, rebased)).keys).toEqual((await check(reader, 0, rebased)).keys);
    // The genuine cursor still continues where it should.
    expect((await check(reader, c)).keys).toEqual(page3.keys);
  }, 60_000);
});
