/**
 * Scale-out on PostgreSQL (issue 10, "How we will know"): THREE OffSync nodes (three `createApp`s)
 * on loopback behind a round-robin proxy (sync-fixtures/cluster.ts), with a PostgreSQL control
 * plane, a POSTGRES database as the central database, and one Redis (pub/sub and the shared sync
 * store: artifact slots, G3 cursors, chunk buffers). Twenty devices sync at once and every request
 * of a device lands on another node than its previous one: G3 inline uploads, G2b URL uploads
 * (`GET upload` → `PUT` → `apply {url}`), chunked G3 batches (inline and by URL, `batchId` /
 * `chunkIndex` / `isFinal`), multi-page downloads (small pages, every G3 page an artifact GET,
 * continuation cursors). In the middle, one node is killed the way SIGKILL kills a process — its
 * listening and client sockets destroyed without a drain, and its control-plane and central
 * database connections cut, so PostgreSQL rolls back whatever it had open — and a replacement
 * starts on the same port. Devices retry what did not answer (502 from the proxy, a reset).
 *
 * Nothing acknowledged is lost (every value of an acknowledged upload is in PostgreSQL, or was
 * overwritten by a later acknowledged upload of the same device) and every device converges on
 * exactly PostgreSQL's rows.
 *
 * PostgreSQL: TEST_DATABASE_URL when set (control plane in a fresh schema, central data in a fresh
 * database), else two embedded PGlite servers (one session each: the nodes use one central
 * connection each). Redis: TEST_REDIS_URL when set, else the in-process fake shared by the nodes.
 * Never skipped.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { PgCentral, createRedisSharedStore, RedisSharedStore } from '../src/domains/sync/index.ts';
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
import type { App, DatabaseTarget, RedisPubSub } from '../src/index.ts';
import { FakeRedisBroker } from './fake-redis.ts';
import { createTestTarget } from './helpers.ts';
import type { TestTarget } from './helpers.ts';
import { startRoundRobinProxy, startSessionGate, startTcpRelay } from './sync-fixtures/cluster.ts';
import type { RoundRobinProxy, SessionGate, TcpRelay } from './sync-fixtures/cluster.ts';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { CHANGES } from './graphql-sync-fixture.ts';
import { call, newDevice, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device, Reply } from './sync-fixtures/devices.ts';
import { openTestPostgres } from './sync-fixtures/postgres.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';

const REAL_PG = process.env['TEST_DATABASE_URL'] || undefined;
const REDIS_URL = process.env['TEST_REDIS_URL'] || undefined;
const PREFIX = `offsync-test-${randomBytes(6).toString('hex')}:`;
const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
const PG_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)";

const DEVICES = 20;
const ROUNDS = 3;
const ROWS_PER_ROUND = 12;
const KILLED = 1;
/** The node is killed while it holds the n-th `apply` sent to it. */
const KILL_AT_APPLY = 6;

interface Node {
  app: App;
  bus: RedisPubSub;
  store: SharedStore;
  /** Between this node and the control plane / the central database. */
  cpRelay: TcpRelay;
  pgRelay: TcpRelay;
}

/** Which node the current request is being served by (to route its database connections through its relays). */
const servedBy = new AsyncLocalStorage<number>();

/**
 * Errors of PostgreSQL connections while checked out of a pool but not running a query (no
 * listener: without this one each would be an uncaught exception), with the node that held them.
 * Only the killed node may have any.
 */
const strayClientErrors: Array<{ node: number | undefined; message: string }> = [];

describe(`three nodes on ${REAL_PG === undefined ? 'PGlite' : 'PostgreSQL'} (control plane and central data) and ${REDIS_URL === undefined ? 'the in-process fake Redis' : 'Redis'}, one killed and restarted`, () => {
  let central: TestPostgres;
  let cp: TestTarget | undefined;
  let cpPglite: { db: PGlite; server: PGLiteSocketServer } | undefined;
  let cpTarget: Extract<DatabaseTarget, { provider: 'postgresql' }>;
  let cpAddr: { host: string; port: number };
  /** Where nodes reach the central database: PostgreSQL itself, or PGlite's session gate. */
  let pgAddr: { host: string; port: number };
  const gates: SessionGate[] = [];
  let broker: FakeRedisBroker | undefined;
  let dataDir: string;
  const serverKey = randomBytes(32);
  const artifactSecret = new Uint8Array(randomBytes(32));
  const nodes: Node[] = [];
  const zombies: Node[] = [];
  const ports: number[] = [];
  let proxy: RoundRobinProxy;
  let databaseId: string;
  let apiKey: string;

  async function connectRedis(): Promise<{ bus: RedisPubSub; store: SharedStore }> {
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

  async function startNode(index: number, port = 0): Promise<Node> {
    const cpRelay = await startTcpRelay(cpAddr.host, cpAddr.port);
    const pgRelay = await startTcpRelay(pgAddr.host, pgAddr.port);
    const { bus, store } = await connectRedis();
    const url = new URL(cpTarget.url);
    url.hostname = '127.0.0.1';
    url.port = String(cpRelay.port);
    const app = createApp({
      prisma: createPrismaClient({ ...cpTarget, url: url.toString() }),
      provider: 'postgresql',
      pubsub: bus.pubsub,
      secretBox: createSecretBox(serverKey),
      clock: systemClock,
      logger: process.env['SCALE_DEBUG'] ? { info() {}, warn() {}, error: (...a: unknown[]) => console.error(...a) } : silentLogger,
      dataDir,
      publicUrl: 'http://127.0.0.1:4000',
      billingPeriodStartDay: 1,
      metricsThrottleMs: 50,
      sync: {
        artifactSecret,
        sharedStore: store,
        cacheTtlMs: 0,
        // Small pages: multi-page downloads; no inline chunks: every G3 page is an artifact GET (on another node).
        pageBytes: 6 * 1024,
        inlineDownloadBytes: 1000,
        inlineChunksBytes: 0,
        rateLimitPerSecond: 10_000,
        rateLimitBurst: 10_000,
        postgresPoolSize: central.poolSize,
        postgresListen: central.notifies,
      },
    });
    // Everything this node serves runs "on" it: its central pool connects through its relay.
    const listeners = app.server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
    app.server.removeAllListeners('request');
    app.server.on('request', (req: IncomingMessage, res: ServerResponse) => servedBy.run(index, () => {
      for (const l of listeners) l.call(app.server, req, res);
    }));
    await new Promise<void>((ok, fail) => {
      app.server.once('error', fail);
      app.server.listen(port, '127.0.0.1', () => ok());
    });
    const node = { app, bus, store, cpRelay, pgRelay };
    nodes[index] = node;
    if (port === 0) ports[index] = (app.server.address() as { port: number }).port;
    return node;
  }

  /** SIGKILL, in-process: no drain, sockets destroyed, database connections cut, shared-store connections gone. */
  function kill(index: number): void {
    const n = nodes[index];
    if (n === undefined) throw new Error(`no node ${index}`);
    zombies.push(n);
    n.app.server.close();
    n.app.server.closeAllConnections();
    void n.cpRelay.close();
    void n.pgRelay.close();
    void n.store.close().catch(() => undefined);
    void n.bus.close().catch(() => undefined);
  }

  beforeAll(async () => {
    broker = REDIS_URL === undefined ? new FakeRedisBroker() : undefined;
    central = await openTestPostgres();
    await central.sql(PG_DDL);
    if (REAL_PG !== undefined) {
      cp = await createTestTarget('postgresql');
      cpTarget = cp.target as typeof cpTarget;
    } else {
      // Its own PGlite with room for three nodes' Prisma pools (helpers' embedded one allows 32 connections).
      const db = await PGlite.create();
      const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 128 });
      await server.start();
      cpPglite = { db, server };
      cpTarget = { provider: 'postgresql', url: `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`, schema: 'control' };
    }
    const u = new URL(cpTarget.url);
    cpAddr = { host: u.hostname, port: Number(u.port || 5432) };
    pgAddr = { host: central.connection.host, port: central.connection.port };
    if (REAL_PG === undefined) {
      // PGlite is one session: its connections (three nodes, and Prisma's pools) take turns, transaction by transaction.
      for (const addr of [cpAddr, pgAddr]) {
        const gate = await startSessionGate(addr.host, addr.port);
        gates.push(gate);
        addr.host = '127.0.0.1';
        addr.port = gate.port;
      }
    }
    await migrate(cpTarget);
    dataDir = mkdtempSync(join(tmpdir(), 'offsync-data-'));

    const connect = pg.Pool.prototype.connect as (this: pg.Pool) => Promise<pg.PoolClient>;
    vi.spyOn(pg.Pool.prototype, 'connect').mockImplementation(function (this: pg.Pool, ...args: unknown[]) {
      const node = servedBy.getStore();
      const watch = (client: pg.PoolClient): pg.PoolClient => {
        const listener = (e: Error): void => void strayClientErrors.push({ node, message: e.message });
        client.on('error', listener);
        const release = client.release;
        client.release = (...a: Parameters<typeof release>) => {
          client.removeListener('error', listener);
          return release.apply(client, a);
        };
        return client;
      };
      const cb = args[0] as ((err: Error | undefined, c: pg.PoolClient | undefined, done: unknown) => void) | undefined;
      if (typeof cb === 'function') {
        return (connect as unknown as (this: pg.Pool, f: typeof cb) => void).call(this, (err, c, done) => cb(err, c === undefined ? c : watch(c), done));
      }
      return connect.call(this).then(watch);
    } as typeof pg.Pool.prototype.connect);
    // A node's central pool is opened by the first request it serves: through that node's relay.
    const open = PgCentral.open.bind(PgCentral);
    vi.spyOn(PgCentral, 'open').mockImplementation((settings, opts) => {
      const index = servedBy.getStore();
      const relay = index === undefined ? undefined : nodes[index]?.pgRelay;
      return open(relay === undefined ? settings : { ...settings, host: '127.0.0.1', port: relay.port }, opts);
    });

    for (let i = 0; i < 3; i++) await startNode(i);
    proxy = await startRoundRobinProxy(ports);

    const s = nodes[0]?.app.services;
    if (s === undefined) throw new Error('no node');
    const project = await s.projects.createProject({ name: 'p', kind: 'POSTGRES' });
    const c = central.connection;
    const db = await s.databases.createDatabase({ projectId: project.id, name: 'app', connection: { host: pgAddr.host, port: pgAddr.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) } });
    databaseId = db.id;
    await s.tables.deployTables(databaseId, ['todos']);
    await s.databases.setOffSync(databaseId, true);
    apiKey = (await s.auth.createApiKey(databaseId, 'devices')).secret;
  }, 60_000);

  afterAll(async () => {
    vi.restoreAllMocks();
    await proxy?.close();
    const bounded = (p: Promise<unknown>): Promise<unknown> => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    for (const n of zombies) await bounded(n.app.dispose());
    for (const n of nodes) {
      await bounded(n.app.dispose());
      await n.bus.close().catch(() => undefined);
      await n.store.close().catch(() => undefined);
      await n.cpRelay.close();
      await n.pgRelay.close();
    }
    if (REDIS_URL !== undefined) {
      const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      const keys = await admin.keys(`${PREFIX}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    }
    await cp?.drop();
    for (const g of gates) await g.close();
    if (cpPglite !== undefined) {
      await cpPglite.server.stop();
      await cpPglite.db.close();
    }
    await central?.close();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  type Mode = 'inline' | 'url' | 'chunks' | 'chunks-url';

  /** Thrown for a reply the device must not retry: the test fails with it. */
  class Refused extends Error {}

  /** A device through the proxy; every request names it so the proxy moves it to the next node. */
  class Peer {
    readonly d: Device = newDevice();
    readonly site = siteHex(this.d);
    readonly name: string;
    readonly gen: 'G2b' | 'G3';
    /** Last server-acknowledged value of each of this device's own rows (null: deleted). */
    readonly acked = new Map<string, string | null>();
    /** Own rows as they are locally now. */
    readonly own = new Map<string, string | null>();
    sent = 0;
    durable = { dbVersion: 0, seq: 0 };
    retries = 0;
    continuations = 0;
    pages = 0;
    constructor(readonly mode: Mode, readonly index: number) {
      this.name = `dev-${index}`;
      this.gen = mode === 'url' ? 'G2b' : 'G3';
    }
    get base(): string {
      return `${proxy.origin}/v2/cloudsync/databases/${databaseId}/${this.site}`;
    }
    /** One request; a reply that is not 200 is retryable only when no node answered it (502 from the proxy). */
    async req(method: string, url: string, opts: { json?: unknown; body?: Uint8Array; auth?: boolean } = {}): Promise<Reply | 'retry'> {
      const headers: Record<string, string> = { 'x-test-device': this.name, ...(this.gen === 'G3' ? G3 : {}) };
      let r: Reply;
      try {
        r = await call(method, url, { key: opts.auth === false ? null : apiKey, headers, ...(opts.json === undefined ? {} : { json: opts.json }), ...(opts.body === undefined ? {} : { body: opts.body }) });
      } catch {
        return 'retry'; // the connection died mid-reply
      }
      if (r.status === 502) return 'retry';
      if (r.status !== 200) throw new Refused(`${this.name} ${method} ${url.replace(proxy.origin, '')} → ${r.status} ${r.text.slice(0, 300)}`);
      return r;
    }
    /** Runs `step` until it does not ask for a retry. */
    async retrying<T>(what: string, step: () => Promise<T | 'retry'>): Promise<T> {
      for (let i = 0; i < 20; i++) {
        const r = await step();
        if (r !== 'retry') return r;
        this.retries++;
        await new Promise((ok) => setTimeout(ok, 20));
      }
      throw new Error(`${this.name}: ${what} did not get through`);
    }

    write(round: number): void {
      const d = this.d.driver;
      d.transaction(() => {
        const ins = d.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
        for (let i = 0; i < ROWS_PER_ROUND; i++) {
          const id = `${this.name}-r${round}-${String(i).padStart(3, '0')}`;
          const title = randomBytes(90).toString('base64');
          ins.run(id, title);
          this.own.set(id, title);
        }
        if (round > 0) {
          const prev = [...this.own].filter(([id, v]) => v !== null && id.includes(`-r${round - 1}-`)).map(([id]) => id);
          for (const id of prev.slice(0, 3)) {
            const title = `edited in round ${round} ${randomBytes(8).toString('hex')}`;
            d.prepare('UPDATE todos SET title = ?, done = 1 WHERE id = ?').run(title, id);
            this.own.set(id, title);
          }
          const gone = prev[prev.length - 1];
          if (gone !== undefined) {
            d.prepare('DELETE FROM todos WHERE id = ?').run(gone);
            this.own.set(gone, null);
          }
        }
        // Rows every device edits: last writer wins, the same way everywhere.
        d.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0) ON CONFLICT (id) DO UPDATE SET title = excluded.title').run(`shared-${round}`, `${this.name} in round ${round}`);
      });
    }

    /** GET upload → PUT (no credential) → the upload URL; retried from the start. */
    slot(payload: Uint8Array): Promise<string> {
      return this.retrying('upload slot', async () => {
        const r = await this.req('GET', `${this.base}/upload`);
        if (r === 'retry') return r;
        const url = (r.json() as { url: string }).url;
        expect(url.startsWith(`${proxy.origin}/v2/cloudsync/_artifacts/`)).toBe(true);
        const put = await this.req('PUT', url, { body: payload, auth: false });
        return put === 'retry' ? put : url;
      });
    }

    async upload(round: number): Promise<void> {
      const changes = [...this.d.changes({ localOnly: true, after: { dbVersion: this.sent, seq: Number.MAX_SAFE_INTEGER } })];
      const window = { dbVersionMin: this.sent + 1, dbVersionMax: this.d.dbVersion() };
      const snapshot = new Map(this.own);
      let last: Reply;
      if (this.mode === 'inline') {
        const blob = Buffer.from(this.d.encodeChanges(changes) ?? new Uint8Array()).toString('base64');
        last = await this.retrying('apply', () => this.req('POST', `${this.base}/apply`, { json: { blob, ...window } }));
      } else if (this.mode === 'url') {
        const payload = this.d.encodeChanges(changes) ?? new Uint8Array();
        // A slot whose apply did not get through is used up or unknown: a new slot each try.
        last = await this.retrying('apply by URL', async () => this.req('POST', `${this.base}/apply`, { json: { url: await this.slot(payload), ...window } }));
      } else {
        const n = 3;
        const size = Math.ceil(changes.length / n);
        const batchId = `${this.name}-batch-${round}`;
        let reply: Reply | undefined;
        for (let i = 0; i < n; i++) {
          const payload = this.d.encodeChanges(changes.slice(i * size, (i + 1) * size));
          if (payload === null) throw new Error('empty chunk');
          const fields = { ...window, batchId, chunkIndex: i, isFinal: i === n - 1 };
          // A chunk that did not get through is sent again (on another node): the batch is in the shared store.
          reply = await this.retrying(`chunk ${i}`, async () => {
            const body = this.mode === 'chunks-url' ? { url: await this.slot(payload) } : { blob: Buffer.from(payload).toString('base64') };
            return this.req('POST', `${this.base}/apply`, { json: { ...body, ...fields } });
          });
        }
        last = reply as Reply;
      }
      const status = last.json() as { lastConfirmedVersion?: number; failures?: unknown };
      expect(status.failures, `${this.name}: ${last.text}`).toBeUndefined();
      expect(status.lastConfirmedVersion, `${this.name}: ${last.text}`).toBeGreaterThanOrEqual(window.dbVersionMax);
      // Acknowledged: from now on PostgreSQL must hold these values.
      for (const [id, v] of snapshot) this.acked.set(id, v);
      this.sent = window.dbVersionMax;
    }

    /** Everything new, page by page: G3 by continuation cursors (≤ 2 chunk URLs a batch), G2b one page URL per check. */
    async download(): Promise<void> {
      if (this.gen === 'G2b') {
        for (let guard = 0; ; guard++) {
          expect(guard).toBeLessThan(1000);
          const pkg = await this.retrying('G2b page', async () => {
            const r = await this.req('POST', `${this.base}/check`, { json: this.durable });
            if (r === 'retry' || r.text === '') return r === 'retry' ? r : null;
            const got = await this.req('GET', (r.json() as { url: string }).url, { auth: false });
            return got === 'retry' ? got : got.bytes;
          });
          if (pkg === null) return;
          this.pages++;
          this.durable = this.d.applyPayload(pkg).last ?? this.durable;
        }
      }
      let cursor = 0;
      for (let guard = 0; ; guard++) {
        expect(guard).toBeLessThan(1000);
        const batch = await this.retrying('G3 batch', async () => {
          const r = await this.req('POST', `${this.base}/check`, { json: { ...this.durable, cursor, maxChunks: 2 } });
          if (r === 'retry' || r.text === '') return r === 'retry' ? r : null;
          const data = (r.json() as { data: { chunks?: Array<{ url?: string }>; payload?: string; final: boolean; nextCursor?: number; watermark?: number } }).data;
          const pkgs: Uint8Array[] = [];
          if (data.payload !== undefined) pkgs.push(new Uint8Array(Buffer.from(data.payload, 'base64')));
          for (const ch of data.chunks ?? []) {
            const got = await this.req('GET', ch.url ?? '', { auth: false });
            if (got === 'retry') return got; // the same check again: the cursor lives in the shared store
            pkgs.push(got.bytes);
          }
          return { data, pkgs };
        });
        if (batch === null) return;
        if (cursor !== 0) this.continuations++;
        for (const p of batch.pkgs) this.d.applyPayload(p);
        this.pages += batch.pkgs.length;
        if (batch.data.final) {
          this.durable = { dbVersion: batch.data.watermark ?? 0, seq: 0 };
          cursor = 0;
        } else cursor = batch.data.nextCursor ?? 0;
      }
    }

    rows(): unknown[][] {
      return (this.d.driver.prepare(ROWS_SQL).all() as Array<Record<string, unknown>>).map((r) => Object.values(r).map((v) => (typeof v === 'bigint' ? Number(v) : v)));
    }
  }

  test('20 devices on three nodes, one node killed mid-merge and replaced: nothing acknowledged is lost, every device converges on PostgreSQL', async () => {
    const modes: Mode[] = ['inline', 'url', 'chunks', 'chunks-url'];
    const peers = Array.from({ length: DEVICES }, (_, i) => new Peer(modes[i % modes.length] as Mode, i));

    // Kill node 1 while it holds an apply (the request fully sent to it, its reply not yet back), then replace it.
    let appliesOnKilled = 0;
    let killed: { path: string; device: string | undefined; hopsBefore: number } | undefined;
    let replaced: Promise<Node> | undefined;
    proxy.onForwarded = (hop) => {
      if (killed !== undefined || hop.node !== KILLED || hop.method !== 'POST' || !hop.path.endsWith('/apply')) return;
      if (++appliesOnKilled < KILL_AT_APPLY) return;
      killed = { path: hop.path, device: hop.device, hopsBefore: proxy.hops.length };
      kill(KILLED);
      replaced = startNode(KILLED, ports[KILLED]);
    };

    // A live `changes` subscriber on a node that stays up: every merge on any node reaches it
    // through Redis (its replica ends equal to PostgreSQL). Woken by each batch, no fixed sleep.
    const LIVE = (KILLED + 1) % 3;
    const live = newDevice();
    const client = createClient({ url: `ws://127.0.0.1:${ports[LIVE]}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${apiKey}`, databaseId }, retryAttempts: 0, lazy: true });
    let liveError: unknown;
    let wakeLive: (() => void) | undefined;
    const unsubscribe = client.subscribe<{ changes: { payload: string | null } }>(
      { query: CHANGES, variables: { db: databaseId, site: siteHex(live), cursor: null, max: null } },
      {
        next: (r) => {
          const p = r.data?.changes.payload;
          if (typeof p === 'string') live.applyPayload(new Uint8Array(Buffer.from(p, 'base64')));
          if (r.errors !== undefined) liveError = r.errors;
          wakeLive?.();
        },
        error: (e) => {
          liveError = e;
          wakeLive?.();
        },
        complete: () => undefined,
      },
    );
    const liveRows = (): unknown[][] => (live.driver.prepare(ROWS_SQL).all() as Array<Record<string, unknown>>).map((r) => Object.values(r).map((v) => (typeof v === 'bigint' ? Number(v) : v)));

    const t0 = performance.now();
    await Promise.all(peers.map(async (p) => {
      for (let round = 0; round < ROUNDS; round++) {
        p.write(round);
        await p.upload(round);
        await p.download();
      }
    }));
    const ms = performance.now() - t0;
    expect(killed, 'the node was killed during the run').toBeDefined();
    await replaced;
    // Every device catches up with everything acknowledged by everyone.
    await Promise.all(peers.map((p) => p.download()));

    const pgRows = (await central.sql('SELECT id, title, done FROM todos')).map((r): [string, string, number] => [String(r[0]), String(r[1]), Number(r[2])]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const byId = new Map(pgRows.map((r) => [r[0] as string, r]));

    // Nothing acknowledged is lost: each device's own rows hold, in PostgreSQL, the last value it had acknowledged.
    let ackedRows = 0;
    for (const p of peers) {
      for (const [id, title] of p.acked) {
        if (title === null) expect(byId.has(id), `${id} deleted by an acknowledged upload`).toBe(false);
        else expect(byId.get(id)?.[1], `${id} of an acknowledged upload`).toBe(title);
        ackedRows++;
      }
    }
    expect(ackedRows).toBe(DEVICES * ROUNDS * ROWS_PER_ROUND);
    // Live rows: every device's rows minus one deleted per later round, plus the shared ones.
    expect(pgRows).toHaveLength(DEVICES * (ROUNDS * ROWS_PER_ROUND - (ROUNDS - 1)) + ROUNDS);
    // One of the devices' last writes of each shared row won, the same one everywhere.
    for (let r = 0; r < ROUNDS; r++) expect(String(byId.get(`shared-${r}`)?.[1])).toMatch(new RegExp(`^dev-\\d+ in round ${r}$`));

    // Convergence: every device holds exactly PostgreSQL's rows.
    for (const p of peers) expect(p.rows(), p.name).toEqual(pgRows);
    // The live subscriber too, fed only by events of merges made on all three nodes.
    const same = (): boolean => JSON.stringify(liveRows()) === JSON.stringify(pgRows);
    const deadline = setTimeout(() => wakeLive?.(), 30_000);
    const until = Date.now() + 30_000;
    while (!same() && liveError === undefined && Date.now() < until) await new Promise<void>((r) => (wakeLive = r));
    clearTimeout(deadline);
    unsubscribe();
    await client.dispose();
    expect(liveError).toBeUndefined();
    expect(liveRows()).toEqual(pgRows);

    // The run really went through three nodes, the kill and the replacement.
    for (const p of peers) {
      const mine = proxy.hops.filter((h) => h.device === p.name);
      expect(new Set(mine.map((h) => h.node)).size, p.name).toBe(3);
      expect(mine.some((h, i) => i > 0 && h.node === mine[i - 1]?.node), p.name).toBe(false);
      if (p.gen === 'G3') expect(p.continuations, p.name).toBeGreaterThan(0);
    }
    const after = proxy.hops.slice(killed?.hopsBefore ?? 0);
    expect(after.filter((h) => h.node === KILLED && h.status === 200).length, 'the replacement served requests').toBeGreaterThan(0);
    // Nothing answered anything but 200: a failed request is one no node answered (the dead one).
    expect(proxy.hops.filter((h) => h.status !== 200 && !(h.status === 0 && h.node === KILLED))).toEqual([]);
    expect(strayClientErrors.filter((e) => e.node !== KILLED), 'connections of live nodes that died while checked out').toEqual([]);
    process.stderr.write(`[scale-out] ${strayClientErrors.length} checked-out connections of the killed node died;  ${proxy.hops.length} requests, killed at ${killed?.path} of ${killed?.device}; ${peers.reduce((n, p) => n + p.retries, 0)} retries; ${peers.reduce((n, p) => n + p.pages, 0)} pages; rounds took ${Math.round(ms)} ms\n`);
  }, 240_000);
});
