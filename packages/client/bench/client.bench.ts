/**
 * Client benchmarks (`npm run bench` in packages/client):
 * 1. initial sync of a fresh device from a local OffSync sync handler holding N rows (rows/s),
 *    next to raw better-sqlite3 inserting the same rows in the same run;
 * 2. write-to-visible latency between two live devices through the server, p50/p99: polling live
 *    mode (sync handler alone), then graphql-ws live mode (the full app: `changes` subscription,
 *    local writes detected by the connection probe, or announced with `notifyLocalWrite()`).
 * The server runs in-process (same event loop) on a loopback port.
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

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const SAMPLES = Number(process.env['BENCH_SAMPLES'] ?? 100);
const POLL_MS = Number(process.env['BENCH_POLL_MS'] ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'offsync-client-bench-'));
let seq = 0;

function row(i: number): [string, string, number] {
  return [`row${String(i).padStart(7, '0')}`, `todo number ${i}`, i % 2];
}

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

function rawInsert(): number {
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(TODOS_DDL);
  const ins = db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
  const t0 = performance.now();
  db.transaction(() => {
    for (let i = 0; i < N; i++) ins.run(...row(i));
  })();
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const srv = createSyncServer({ databaseId: 'db_bench' });
  const url = `http://127.0.0.1:${await listen(srv.server)}`;
  const out: Array<[string, string]> = [];
  try {
    // Seed the central database through a device (upload through upload URLs, 5 MB chunks).
    const seed = device(url, srv.databaseId);
    const ins = seed.db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
    let t0 = performance.now();
    seed.db.transaction(() => {
      for (let i = 0; i < N; i++) ins.run(...row(i));
    })();
    const trackedMs = performance.now() - t0;
    t0 = performance.now();
    await seed.send();
    const uploadMs = performance.now() - t0;
    await seed.close();

    const rawMs = rawInsert();
    const fresh = device(url, srv.databaseId);
    let pages = 0;
    fresh.on('progress', () => pages++);
    t0 = performance.now();
    const r = await fresh.sync();
    const syncMs = performance.now() - t0;
    const count = Number(fresh.db.prepare('SELECT count(*) FROM todos').pluck().get());
    if (count !== N) throw new Error(`fresh device has ${count} rows, expected ${N}`);
    await fresh.close();

    const rate = (ms: number): string => `${Math.round(N / (ms / 1000)).toLocaleString('en-US')} rows/s`;
    out.push(['rows', N.toLocaleString('en-US')]);
    out.push(['raw better-sqlite3 insert (baseline)', `${rawMs.toFixed(0)} ms  (${rate(rawMs)})`]);
    out.push(['tracked local insert (triggers)', `${trackedMs.toFixed(0)} ms  (${rate(trackedMs)})`]);
    out.push(['upload to server (send)', `${uploadMs.toFixed(0)} ms  (${rate(uploadMs)})`]);
    out.push(['initial sync of a fresh device', `${syncMs.toFixed(0)} ms  (${rate(syncMs)}), ${pages} pages, ${(r.receive.bytes / 1e6).toFixed(1)} MB`]);
    out.push(['initial sync / raw insert', `${(syncMs / rawMs).toFixed(1)}×`]);

    // Write-to-visible latency between two live devices (polling every POLL_MS ms).
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
    await graphqlLatency(out);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const w = Math.max(...out.map(([k]) => k.length));
  console.log('\nOffSync client benchmarks');
  for (const [k, v] of out) console.log(`  ${k.padEnd(w)}  ${v}`);
}

await main();
