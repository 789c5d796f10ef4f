/**
 * Initial sync of a fresh device, end to end over HTTP on loopback (issue 11 item 6).
 *
 * - `worker`: the sync server runs in its own thread (bench-server.ts through core's
 *   `startServerInWorker`), the client on the main thread, as in any deployment: the server's
 *   feed/encode and the client's decode/apply can overlap.
 * - `in-process`: the server on the client's own event loop (the bench's historical figure).
 *
 * Standalone (`npx tsx bench/initial-sync.ts`): both modes once, next to raw better-sqlite3.
 * `BENCH_PROFILE=<dir>` writes `client.cpuprofile` and `server.cpuprofile` of the worker run's
 * download alone (the seed upload is not profiled). Each run's time is split (apply-split.ts):
 * waited for the server, core's decode, core's merge, the rest; next to it the process's CPU time
 * and (worker mode) the server thread's busy time. `BENCH_PAGES=1` adds one line per page (its
 * changes, whether its first row was cut from the page before, its merge µs a change). The
 * client's CPU alone, without a server: bench/replay.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance as nodePerformance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { startServerInWorker } from '@offsync/core/testing';
import { createFetchHttp, openDatabase } from '../src/sync/index.ts';
import type { HttpFetch } from '../src/sync/index.ts';
import type { OffSyncDatabase, OpenDatabaseOptions } from '../src/sync/index.ts';
import { API_KEY, createSyncServer, listen, TODOS_DDL } from '../test/fixtures/sync-server.ts';
import { cpuNowMs, splitApply } from './apply-split.ts';
import type { PageSplit } from './apply-split.ts';

export interface InitialSyncResult {
  mode: 'worker' | 'in-process';
  rows: number;
  ms: number;
  pages: number;
  bytes: number;
  /** Of `ms`, the time the client's event loop sat idle, i.e. waited for the server. */
  waitedMs: number;
  /** Of `ms`, until the first page was in hand (the server building it, the request, the reply). */
  firstPageMs: number;
  /** Of `ms`, wall time in core's decodePayload and in core's applyChanges (apply-split.ts). */
  decodeMs: number;
  mergeMs: number;
  /** Of `ms`, process CPU time (every thread: the client, the server's worker, GC helpers). */
  cpuMs: number;
  /** Worker mode: of `ms`, the time the server's thread was busy (its event-loop utilization). */
  serverBusyMs?: number;
  /** Every page's shape and decode / merge wall time (apply-split.ts). */
  pageSplits: PageSplit[];
  /** SHA-256 of the device's synced table and its CRDT tables (rows, clocks, local versions; deviceDigest). */
  digest: string;
  /** Worker mode: the server's prebuilt-page counters after the run (builds, hits, stale, dropped). */
  prebuilt?: Record<string, number>;
  /** Every HTTP request of the download: when it was sent and when its whole reply was in hand (ms after the start). */
  requests: TimedRequest[];
}

export interface TimedRequest {
  kind: string;
  sentMs: number;
  doneMs: number;
  bytes: number;
  /** Worker mode: when the server thread got the request and finished its reply (ms after the start). */
  serverInMs?: number;
  serverOutMs?: number;
}

/** `fetch` that records each request's send and arrival times (relative to `t0()`). */
function timedFetch(out: TimedRequest[], t0: () => number): HttpFetch {
  const f = createFetchHttp();
  return async (req) => {
    const sentMs = performance.now() - t0();
    const res = await f(req);
    out.push({ kind: `${req.method} ${new URL(req.url).pathname.split('/').pop() ?? ''}`.slice(0, 16), sentMs, doneMs: performance.now() - t0(), bytes: res.body.length });
    return res;
  };
}

/** `ms` split: waited for the server / core decode / core merge / the rest (HTTP, JSON, base64, COMMIT). */
export function splitLine(r: InitialSyncResult): string {
  const other = r.ms - r.waitedMs - r.decodeMs - r.mergeMs;
  const server = r.serverBusyMs === undefined ? '' : `, server thread busy ${r.serverBusyMs.toFixed(0)} ms`;
  return `waited ${r.waitedMs.toFixed(0)} ms (first page after ${r.firstPageMs.toFixed(0)} ms), decode ${r.decodeMs.toFixed(0)} ms, merge ${r.mergeMs.toFixed(0)} ms, other ${other.toFixed(0)} ms; process CPU ${r.cpuMs.toFixed(0)} ms${server}`;
}

/** One line per page: changes, whether its first row continues the previous page's last, decode / merge µs a change. */
export function pageLines(r: InitialSyncResult): string[] {
  const lines = r.pageSplits.map((p, i) => {
    const prevEnd = i === 0 ? 0 : (r.pageSplits[i - 1]?.endMs ?? 0);
    return (
      `page ${i + 1}: ${p.changes} changes${p.splitRow ? ', first row split from the page before' : ''}; decode ${p.decodeMs.toFixed(0)} ms, merge ${p.mergeMs.toFixed(0)} ms (${((1000 * p.mergeMs) / Math.max(1, p.changes)).toFixed(2)} µs a change)` +
      `; applied ${p.startMs.toFixed(0)}-${p.endMs.toFixed(0)} ms, ${(p.startMs - prevEnd).toFixed(0)} ms after the page before`
    );
  });
  for (const q of r.requests) {
    const srv = q.serverInMs === undefined || q.serverOutMs === undefined ? '' : `; server got it ${q.serverInMs.toFixed(0)} ms, replied ${q.serverOutMs.toFixed(0)} ms (${(q.serverOutMs - q.serverInMs).toFixed(0)} ms)`;
    lines.push(`request ${q.kind}: sent ${q.sentMs.toFixed(0)} ms, reply in hand ${q.doneMs.toFixed(0)} ms (${(q.doneMs - q.sentMs).toFixed(0)} ms, ${(q.bytes / 1e6).toFixed(2)} MB)${srv}`);
  }
  return lines;
}

export function benchRow(i: number): [string, string, number] {
  return [`row${String(i).padStart(7, '0')}`, `todo number ${i}`, i % 2];
}

function device(dir: string, name: string, url: string, databaseId: string, extra: OpenDatabaseOptions = {}): OffSyncDatabase {
  const d = openDatabase(join(dir, `${name}.db`), { serverUrl: url, databaseId, apiKey: API_KEY, ...extra });
  d.db.exec(TODOS_DDL);
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  return d;
}

/** Seeds the central database with `n` rows through a device (upload URLs, 5 MB chunks). */
export async function seedThroughDevice(dir: string, url: string, databaseId: string, n: number): Promise<{ trackedMs: number; uploadMs: number }> {
  const seed = device(dir, `seed-${databaseId}`, url, databaseId);
  const ins = seed.db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
  let t0 = performance.now();
  seed.db.transaction(() => {
    for (let i = 0; i < n; i++) ins.run(...benchRow(i));
  })();
  const trackedMs = performance.now() - t0;
  t0 = performance.now();
  const r = await seed.send();
  const uploadMs = performance.now() - t0;
  if (r.status !== 'synced') throw new Error(`seed upload ended ${r.status}`);
  await seed.close();
  return { trackedMs, uploadMs };
}

/** Raw better-sqlite3: the same rows in one transaction into a WAL file (the baseline). */
export function rawInsertMs(dir: string, n: number): number {
  const db = new Database(join(dir, `raw-${Date.now()}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(TODOS_DDL);
  const ins = db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
  const t0 = performance.now();
  db.transaction(() => {
    for (let i = 0; i < n; i++) ins.run(...benchRow(i));
  })();
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

/** Downloads everything into a fresh device and checks the row count. */
async function freshDownload(
  dir: string,
  url: string,
  databaseId: string,
  n: number,
  name: string,
  profile?: { start(): Promise<void>; stop(): Promise<void> },
  serverActiveMs?: () => Promise<number>,
  serverRequests?: () => Promise<Array<{ inMs: number; outMs: number }>>,
): Promise<Omit<InitialSyncResult, 'mode'>> {
  const requests: TimedRequest[] = [];
  let t0 = 0;
  const fresh = device(dir, name, url, databaseId, { fetch: timedFetch(requests, () => t0) });
  const split = splitApply(fresh.engine, () => t0);
  let pages = 0;
  fresh.on('progress', () => pages++);
  await profile?.start();
  const server0 = await serverActiveMs?.();
  await serverRequests?.();
  const elu = nodePerformance.eventLoopUtilization();
  const cpu0 = cpuNowMs();
  t0 = performance.now();
  const r = await fresh.sync();
  const ms = performance.now() - t0;
  const cpuMs = cpuNowMs() - cpu0;
  const waitedMs = nodePerformance.eventLoopUtilization(elu).idle;
  const server1 = await serverActiveMs?.();
  const served = (await serverRequests?.()) ?? [];
  const origin = performance.timeOrigin + t0;
  // The server answers this device's requests one at a time, in order: the i-th served is the i-th sent.
  served.forEach((q, i) => {
    const mine = requests[i];
    if (mine === undefined) return;
    mine.serverInMs = q.inMs - origin;
    mine.serverOutMs = q.outMs - origin;
  });
  await profile?.stop();
  const count = Number(fresh.db.prepare('SELECT count(*) FROM todos').pluck().get());
  const digest = deviceDigest(fresh.db);
  await fresh.close();
  if (count !== n || !r.receive.complete) throw new Error(`fresh device has ${count} rows (complete: ${r.receive.complete}), expected ${n}`);
  const firstPageMs = split.firstAt === undefined ? ms : split.firstAt - t0;
  const out: Omit<InitialSyncResult, 'mode'> = { rows: n, ms, pages, bytes: r.receive.bytes, waitedMs, firstPageMs, decodeMs: split.decodeMs, mergeMs: split.mergeMs, cpuMs, pageSplits: split.pages, requests, digest };
  if (server0 !== undefined && server1 !== undefined) out.serverBusyMs = server1 - server0;
  return out;
}

/**
 * The fresh device's end state: every row of `todos` and of its CRDT tables (`todos__…`: clocks
 * and local versions), each table's rows sorted, hashed. Two runs that end byte-identical give one digest
 * (the device's own site id is not in these tables: its changes are numbered by site 0).
 */
export function deviceDigest(db: Database.Database): string {
  const h = createHash('sha256');
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND (name = 'todos' OR name LIKE 'todos\\_\\_%' ESCAPE '\\') ORDER BY name").pluck().all() as string[];
  for (const t of tables) {
    h.update(`\u0000${t}\u0000`);
    const rows = (db.prepare(`SELECT * FROM "${t}"`).raw().all() as unknown[][]).map((r) =>
      JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
    );
    for (const r of rows.sort()) h.update(r);
  }
  return `${tables.join(',')} ${h.digest('hex').slice(0, 16)}`;
}

async function clientProfiler(path: string): Promise<{ start(): Promise<void>; stop(): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  return {
    start: () => session.post('Profiler.start'),
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(path, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/**
 * `BENCH_PAGE_BYTES`: the server's page budget (default: the sync service's, 5 MB);
 * `BENCH_PREBUILD=0`: the server builds no page ahead (prebuilt-pages.ts), for A/B runs.
 */
function serverPages(): { http?: { pageBytes?: number; prebuiltPages?: false } } {
  const v = process.env['BENCH_PAGE_BYTES'];
  const http: { pageBytes?: number; prebuiltPages?: false } = {};
  if (v !== undefined) http.pageBytes = Number(v);
  if (process.env['BENCH_PREBUILD'] === '0') http.prebuiltPages = false;
  return Object.keys(http).length === 0 ? {} : { http };
}

/** The server in a worker thread, the client here. */
export async function initialSyncWorker(dir: string, n: number, profileDir?: string): Promise<InitialSyncResult & { trackedMs: number; uploadMs: number }> {
  const databaseId = 'db_bench_worker';
  const modulePath = fileURLToPath(new URL('./bench-server.ts', import.meta.url));
  const srv = await startServerInWorker(modulePath, 'startBenchServer', { options: { databaseId, ...serverPages() } });
  try {
    const seeded = await seedThroughDevice(dir, srv.origin, databaseId, n);
    let profile: { start(): Promise<void>; stop(): Promise<void> } | undefined;
    if (profileDir !== undefined) {
      const client = await clientProfiler(join(profileDir, 'client.cpuprofile'));
      profile = {
        async start() {
          await srv.call({ type: 'profile-start' });
          await client.start();
        },
        async stop() {
          await client.stop();
          await srv.call({ type: 'profile-stop', path: join(profileDir, 'server.cpuprofile') });
        },
      };
    }
    const serverActiveMs = async (): Promise<number> => Number(Reflect.get(Object(await srv.call({ type: 'elu' })), 'activeMs'));
    const serverRequests = async (): Promise<Array<{ inMs: number; outMs: number }>> => (await srv.call({ type: 'requests' })) as Array<{ inMs: number; outMs: number }>;
    const r = await freshDownload(dir, srv.origin, databaseId, n, 'fresh-worker', profile, serverActiveMs, serverRequests);
    const prebuilt = (await srv.call({ type: 'prebuilt' })) as Record<string, number>;
    return { mode: 'worker', ...r, prebuilt, ...seeded };
  } finally {
    await srv.close();
  }
}

/** The server on this thread's event loop (serving and applying never overlap). */
export async function initialSyncInProcess(dir: string, n: number): Promise<InitialSyncResult & { trackedMs: number; uploadMs: number }> {
  const srv = createSyncServer({ databaseId: 'db_bench_inproc', ...serverPages() });
  try {
    const url = `http://127.0.0.1:${await listen(srv.server)}`;
    const seeded = await seedThroughDevice(dir, url, srv.databaseId, n);
    const r = await freshDownload(dir, url, srv.databaseId, n, 'fresh-inproc');
    return { mode: 'in-process', ...r, ...seeded };
  } finally {
    await srv.close();
  }
}

export const rowsPerSecond = (n: number, ms: number): string => `${Math.round(n / (ms / 1000)).toLocaleString('en-US')} rows/s`;

async function main(): Promise<void> {
  const n = Number(process.env['BENCH_ROWS'] ?? 100_000);
  const modes = (process.env['BENCH_MODES'] ?? 'worker,in-process').split(',');
  const dir = mkdtempSync(join(tmpdir(), 'offsync-initial-sync-'));
  try {
    const out: string[] = [];
    for (const mode of modes) {
      const rawMs = rawInsertMs(dir, n);
      const r = mode === 'worker' ? await initialSyncWorker(dir, n, process.env['BENCH_PROFILE']) : await initialSyncInProcess(dir, n);
      out.push(
        `${r.mode.padEnd(10)} ${r.ms.toFixed(0)} ms (${rowsPerSecond(n, r.ms)}), client waited ${r.waitedMs.toFixed(0)} ms, ${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB; ` +
          `raw insert ${rawMs.toFixed(0)} ms (${rowsPerSecond(n, rawMs)}); ${(r.ms / rawMs).toFixed(1)}× raw\n             ${splitLine(r)}` +
          (r.prebuilt === undefined ? '' : `\n             server pages built ahead: ${JSON.stringify(r.prebuilt)}`) +
          `\n             device digest ${r.digest}`,
      );
      if (process.env['BENCH_PAGES'] === '1') for (const l of pageLines(r)) out.push(`             ${l}`);
    }
    console.log(`initial sync of ${n.toLocaleString('en-US')} rows to a fresh device`);
    for (const l of out) console.log(`  ${l}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
