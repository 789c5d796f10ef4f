/**
 * Client benchmarks (`npm run bench` in packages/client):
 * 1. initial sync of a fresh device from a local OffSync sync handler holding N rows (rows/s),
 *    next to raw better-sqlite3 inserting the same rows in the same run;
 * 2. write-to-visible latency between two live devices through the server, p50/p99: polling live
 *    mode (sync handler alone), then graphql-ws live mode (the full app: `changes` subscription,
 *    local writes detected by the connection probe, or announced with `notifyLocalWrite()`).
 * The initial sync runs against the server in its own thread (bench/initial-sync.ts, as in any
 * deployment: serving and applying overlap), and again with the server in-process (same event
 * loop: the historical figure). The latency runs use the in-process server on a loopback port.
 * `BENCH_ONLY=initial` stops after the initial sync.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { sqliteDatabasePath } from '@offsync/api';
import { TODOS_DDL as APP_TODOS_DDL } from '@offsync/core/testing';
import { openDatabase } from '../src/sync/index.ts';
import type { OffSyncDatabase, OpenDatabaseOptions } from '../src/sync/index.ts';
import { startTestServer } from '../test/api-client.server.ts';
import { API_KEY, createSyncServer, listen, TODOS_DDL } from '../test/fixtures/sync-server.ts';
import { initialSyncInProcess, initialSyncWorker, rawInsertMs, rowsPerSecond, splitLine } from './initial-sync.ts';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const SAMPLES = Number(process.env['BENCH_SAMPLES'] ?? 100);
const POLL_MS = Number(process.env['BENCH_POLL_MS'] ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'offsync-client-bench-'));
let seq = 0;

function device(url: string, databaseId: string, pollMs = POLL_MS, extra: OpenDatabaseOptions = {}, ddl = TODOS_DDL): OffSyncDatabase {
  const d = openDatabase(join(dir, `dev${seq++}.db`), { serverUrl: url, databaseId, apiKey: API_KEY, pollMs, ...extra });
  d.db.exec(ddl);
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  return d;
}

/** Write on A, wait until B's `changes` event shows the row; `SAMPLES` times. */
async function latency(a: OffSyncDatabase, b: OffSyncDatabase, tag: string, notify = false): Promise<number[]> {
  const lat: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const id = `${tag}${i}`;
    const seen = new Promise<number>((resolve) => {
      const check = b.db.prepare('SELECT 1 FROM todos WHERE id = ?').pluck();
      const off = b.on('changes', () => {
        if (check.get(id) !== undefined) {
          off();
          resolve(performance.now());
        }
      });
    });
    const start = performance.now();
    a.db.prepare('INSERT INTO todos (id, title) VALUES (?, ?)').run(id, 'latency');
    if (notify) a.notifyLocalWrite();
    lat.push((await seen) - start);
  }
  return lat;
}

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Write-to-visible latency between two live devices: polling the in-process sync handler, then the full app. */
async function latencies(out: Array<[string, string]>): Promise<void> {
  const srv = createSyncServer({ databaseId: 'db_bench' });
  try {
    const url = `http://127.0.0.1:${await listen(srv.server)}`;
    const a = device(url, srv.databaseId);
    const b = device(url, srv.databaseId);
    await a.sync();
    await b.sync();
    a.start();
    b.start();
    const lat = await latency(a, b, 'lat');
    await a.close();
    await b.close();
    out.push([`write→visible latency, poll ${POLL_MS} ms (n=${SAMPLES})`, `p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms`]);
  } finally {
    await srv.close();
  }
  await graphqlLatency(out);
}

/** graphql-ws live mode between two devices of the full app (createApp, SQLite control plane). */
async function graphqlLatency(out: Array<[string, string]>): Promise<void> {
  const server = await startTestServer();
  try {
    const s = server.app.services;
    const project = await s.projects.createProject({ name: 'bench', kind: 'SQLITE' });
    const databaseId = (await s.databases.createDatabase({ projectId: project.id, name: 'todos' })).id;
    const file = new Database(sqliteDatabasePath(server.dataDir, databaseId));
    file.exec(APP_TODOS_DDL);
    file.close();
    await s.tables.deployTables(databaseId, ['todos']);
    await s.databases.setOffSync(databaseId, true);
    const apiKey = (await s.auth.createApiKey(databaseId, 'bench')).secret;
    const url = server.url.replace(/\/graphql$/, '');
    const runs: Array<[string, OpenDatabaseOptions, boolean]> = [
      ['graphql-ws, write seen by the probe', { live: 'graphql' }, false],
      ['graphql-ws, notifyLocalWrite()', { live: 'graphql', pushDebounceMs: 0 }, true],
      [`poll ${POLL_MS} ms, same app`, { live: 'poll' }, false],
    ];
    for (const [label, opts, notify] of runs) {
      const o: OpenDatabaseOptions = { apiKey, webSocketImpl: WebSocket, ...opts };
      const a = device(url, databaseId, POLL_MS, o, APP_TODOS_DDL);
      const b = device(url, databaseId, POLL_MS, o, APP_TODOS_DDL);
      a.start();
      b.start();
      await until(() => a.state === 'live' && b.state === 'live');
      const lat = await latency(a, b, `g${seq}_`, notify);
      await a.close();
      await b.close();
      out.push([`write→visible latency, ${label} (n=${SAMPLES})`, `p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms`]);
    }
  } finally {
    await server.close();
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const out: Array<[string, string]> = [];
  try {
    const rawMs = rawInsertMs(dir, N);
    const worker = await initialSyncWorker(dir, N);
    const rawMs2 = rawInsertMs(dir, N);
    const inproc = await initialSyncInProcess(dir, N);
    const line = (r: typeof worker, raw: number): string =>
      `${r.ms.toFixed(0)} ms  (${rowsPerSecond(N, r.ms)}), ${(r.ms / raw).toFixed(1)}× raw; ${splitLine(r)}; ${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB`;
    out.push(['rows', N.toLocaleString('en-US')]);
    out.push(['raw better-sqlite3 insert (baseline)', `${rawMs.toFixed(0)} ms  (${rowsPerSecond(N, rawMs)}); ${rawMs2.toFixed(0)} ms before the in-process run`]);
    out.push(['tracked local insert (triggers)', `${worker.trackedMs.toFixed(0)} ms  (${rowsPerSecond(N, worker.trackedMs)})`]);
    out.push(['upload to server (send, server in a worker)', `${worker.uploadMs.toFixed(0)} ms  (${rowsPerSecond(N, worker.uploadMs)})`]);
    out.push(['initial sync of a fresh device, server in a worker thread', line(worker, rawMs)]);
    out.push(['initial sync of a fresh device, server in-process', line(inproc, rawMs2)]);
    if (process.env['BENCH_ONLY'] !== 'initial') await latencies(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const w = Math.max(...out.map(([k]) => k.length));
  console.log('\nOffSync client benchmarks');
  for (const [k, v] of out) console.log(`  ${k.padEnd(w)}  ${v}`);
}

await main();
