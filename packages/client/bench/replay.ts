/**
 * The client's side of an initial sync alone, without a server: `record` downloads N rows once
 * from the real sync handler (in-process) and stores every HTTP exchange; `replay` opens a fresh
 * device whose `fetch` answers from that recording, so the whole run is this thread's work
 * (HTTP body, JSON, base64, decode, apply, bookkeeping) and `process.cpuUsage()` is the client's
 * CPU time. Split (apply-split.ts): decode (core's decodePayload) and merge (core's
 * applyChanges, its SQLite writes included) in CPU time; `other` is the rest (HTTP body, JSON,
 * base64, the page transaction's COMMIT, settings, events).
 *
 *   npx tsx bench/replay.ts record /tmp/rec.bin      (BENCH_ROWS, default 100,000; BENCH_PAGE_BYTES: server pages)
 *   npx tsx bench/replay.ts replay /tmp/rec.bin      (BENCH_REPEAT runs, default 3)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { createFetchHttp, openDatabase } from '../src/sync/index.ts';
import type { HttpFetch, HttpRequest, HttpResponse } from '../src/sync/index.ts';
import { API_KEY, createSyncServer, listen, TODOS_DDL } from '../test/fixtures/sync-server.ts';
import { cpuNowMs, gcWatch, splitApply } from './apply-split.ts';
import { seedThroughDevice } from './initial-sync.ts';

interface Exchange {
  key: string;
  res: HttpResponse;
}

interface Recording {
  url: string;
  databaseId: string;
  rows: number;
  log: Exchange[];
}

/** A request without its host and site id (a fresh device has a new one). */
function keyOf(req: HttpRequest): string {
  const path = new URL(req.url).pathname.replace(/\/[0-9a-f]{32}\//, '/SITE/');
  return `${req.method} ${path} ${req.body === undefined ? '' : Buffer.from(req.body).toString('utf8')}`;
}

async function record(file: string, n: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-replay-'));
  const pageBytes = process.env['BENCH_PAGE_BYTES'];
  const srv = createSyncServer({ databaseId: 'db_replay', ...(pageBytes === undefined ? {} : { http: { pageBytes: Number(pageBytes) } }) });
  try {
    const url = `http://127.0.0.1:${await listen(srv.server)}`;
    await seedThroughDevice(dir, url, srv.databaseId, n);
    const real = createFetchHttp();
    const log: Exchange[] = [];
    const fetch: HttpFetch = async (req) => {
      const res = await real(req);
      log.push({ key: keyOf(req), res });
      return res;
    };
    const d = openDatabase(join(dir, 'rec.db'), { serverUrl: url, databaseId: srv.databaseId, apiKey: API_KEY, fetch });
    d.db.exec(TODOS_DDL);
    d.db.prepare(`SELECT cloudsync_init('todos')`).get();
    const c0 = cpuNowMs();
    const t0 = performance.now();
    const r = await d.sync();
    const ms = performance.now() - t0;
    const cpu = cpuNowMs() - c0;
    const count = Number(d.db.prepare('SELECT count(*) FROM todos').pluck().get());
    await d.close();
    if (count !== n || !r.receive.complete) throw new Error(`recorded ${count} rows, expected ${n}`);
    const out: Recording = { url, databaseId: srv.databaseId, rows: n, log };
    writeFileSync(file, serialize(out));
    // The server is in this process: its CPU time (and its threads') is in `cpu` too; minus a replay's, the server's share.
    console.log(`recorded ${log.length} exchanges, ${n} rows, ${log.reduce((s, e) => s + e.res.body.length, 0)} body bytes; download ${ms.toFixed(0)} ms wall, cpu ${cpu.toFixed(0)} ms (server and client)`);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Split {
  wallMs: number;
  cpuMs: number;
  /** CPU time of core's decodePayload and of core's applyChanges (apply-split.ts). */
  decodeMs: number;
  mergeMs: number;
  /** Pause time of the collector, inside the figures above. */
  gcMs: number;
  pages: number;
  variant: string;
}

async function replayOnce(dir: string, base: Recording, i: number): Promise<Split> {
  // BENCH_AB=<variant>: every other run with it: `pragma:<pragma>` on the engine's connection (e.g.
  // `pragma:synchronous=OFF`), or `rec:<file>` another recording of the same rows (e.g. other pages).
  const variant = process.env['BENCH_AB'] !== undefined && i % 2 === 1 ? process.env['BENCH_AB'] : '';
  const rec = variant.startsWith('rec:') ? load(variant.slice(4)) : base;
  const queue = [...rec.log];
  const fetch: HttpFetch = async (req) => {
    const next = queue.shift();
    const key = keyOf(req);
    if (next === undefined || next.key !== key) throw new Error(`replay: unexpected request ${key}`);
    return { ...next.res, body: new Uint8Array(next.res.body) };
  };
  const d = openDatabase(join(dir, `replay${i}.db`), { serverUrl: rec.url, databaseId: rec.databaseId, apiKey: API_KEY, fetch });
  d.db.exec(TODOS_DDL);
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  if (variant.startsWith('pragma:')) d.engine.driver.exec(`PRAGMA ${variant.slice(7)}`);
  const split = process.env['BENCH_SPLIT'] === '0' ? undefined : splitApply(d.engine);
  let pages = 0;
  d.on('progress', () => pages++);
  const gc = gcWatch();
  const c0 = cpuNowMs();
  const t0 = performance.now();
  const r = await d.sync();
  const wallMs = performance.now() - t0;
  const cpuMs = cpuNowMs() - c0;
  const gcMs = await gc.stop();
  const count = Number(d.db.prepare('SELECT count(*) FROM todos').pluck().get());
  await d.close();
  if (count !== rec.rows || !r.receive.complete) throw new Error(`replayed device has ${count} rows, expected ${rec.rows}`);
  return { wallMs, cpuMs, decodeMs: split?.decodeCpuMs ?? 0, mergeMs: split?.mergeCpuMs ?? 0, gcMs, pages, variant };
}

const load = (file: string): Recording => deserialize(readFileSync(file)) as Recording;

async function replay(file: string, repeat: number): Promise<void> {
  const rec = load(file);
  const dir = mkdtempSync(join(tmpdir(), 'offsync-replay-'));
  try {
    const runs: Split[] = [];
    for (let i = 0; i < repeat; i++) {
      const s = await replayOnce(dir, rec, i);
      runs.push(s);
      const other = s.cpuMs - s.decodeMs - s.mergeMs;
      console.log(
        `replay ${rec.rows} rows${s.variant === '' ? '' : ` [${s.variant}]`}: ${s.wallMs.toFixed(0)} ms wall (${Math.round(rec.rows / (s.wallMs / 1000)).toLocaleString('en-US')} rows/s), ` +
          `cpu ${s.cpuMs.toFixed(0)} ms = decode ${s.decodeMs.toFixed(0)} + merge ${s.mergeMs.toFixed(0)} + other ${other.toFixed(0)}; gc pauses ${s.gcMs.toFixed(0)} ms; ${s.pages} pages`,
      );
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
    for (const v of [...new Set(runs.map((r) => r.variant))]) {
      const rs = runs.filter((r) => r.variant === v);
      const f = (k: 'cpuMs' | 'decodeMs' | 'mergeMs' | 'gcMs' | 'wallMs'): string => med(rs.map((r) => r[k])).toFixed(0);
      console.log(`median${v === '' ? '' : ` [${v}]`} of ${rs.length}: cpu ${f('cpuMs')} ms, decode ${f('decodeMs')}, merge ${f('mergeMs')}, gc ${f('gcMs')}, wall ${f('wallMs')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const [mode, file] = process.argv.slice(2);
if (file === undefined || (mode !== 'record' && mode !== 'replay')) throw new Error('usage: replay.ts record|replay <file>');
if (mode === 'record') await record(file, Number(process.env['BENCH_ROWS'] ?? 100_000));
else await replay(file, Number(process.env['BENCH_REPEAT'] ?? 3));
