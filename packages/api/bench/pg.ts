/**
 * (h)(i) The same merge and download-build measures as (a)(b), on a POSTGRES central database:
 * one OffSync node, then three nodes (child processes, bench/pg-server.ts) behind a round-robin
 * proxy (test/sync-fixtures/cluster.ts) on the same database, printed next to the SQLite figures
 * of the same run as ratios. PostgreSQL: TEST_DATABASE_URL (a fresh database, dropped after), else
 * an embedded PGlite served on loopback (one session: one connection per node, behind a session
 * gate) — the bench prints which.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { startRoundRobinProxy, startSessionGate } from '../test/sync-fixtures/cluster.ts';
import { startBenchServer } from './ipc.ts';
import type { BenchServer } from './ipc.ts';
import { mergeThroughput } from './merge.ts';
import type { MergeOptions } from './merge.ts';

export interface SqliteFigures {
  /** Changes merged per second through HTTP, (a). */
  mergeRate: number;
  /** Changes encoded per second into pages of `pageBytes`, (b). */
  downloadRate: Map<number, number>;
  merge: MergeOptions;
}

type Row = (what: string, value: string, target?: string, note?: string) => void;

const PG_DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

interface Postgres {
  label: string;
  conn: { host: string; port: number; database: string; user: string; password?: string };
  poolSize: number;
  close(): Promise<void>;
}

async function openPostgres(): Promise<Postgres> {
  const url = process.env['TEST_DATABASE_URL'];
  if (url) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const name = `offsync_bench_${randomBytes(5).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(url);
    const password = decodeURIComponent(u.password);
    const conn = { host: u.hostname, port: Number(u.port || 5432), database: name, user: decodeURIComponent(u.username || 'postgres'), ...(password === '' ? {} : { password }) };
    const c = new pg.Client(conn);
    await c.connect();
    await c.query(PG_DDL);
    await c.end();
    return {
      label: `PostgreSQL ${(await admin.query('SHOW server_version')).rows[0]?.server_version as string} (TEST_DATABASE_URL)`,
      conn,
      poolSize: 4,
      async close() {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      },
    };
  }
  const db = await PGlite.create();
  await db.exec(PG_DDL);
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 64 });
  await server.start();
  const [host, port] = server.getServerConn().split(':');
  const gate = await startSessionGate(host ?? '127.0.0.1', Number(port));
  return {
    label: 'embedded PGlite (TEST_DATABASE_URL unset; one session, one connection per node)',
    conn: { host: '127.0.0.1', port: gate.port, database: 'postgres', user: 'postgres', password: 'unused-by-pglite' },
    poolSize: 1,
    async close() {
      await gate.close();
      await server.stop();
      await db.close();
    },
  };
}

export async function pgBench(row: Row, sqlite: SqliteFigures): Promise<void> {
  const pgdb = await openPostgres();
  process.stderr.write(`(h)(i) POSTGRES central on ${pgdb.label}…\n`);
  const dir = mkdtempSync(join(tmpdir(), 'offsync-bench-pg-'));
  const env = { BENCH_PG_DIR: dir, BENCH_PG_KEY: randomBytes(32).toString('hex'), BENCH_PG_CONN: JSON.stringify(pgdb.conn), BENCH_PG_POOL: String(pgdb.poolSize) };
  const nodes: BenchServer[] = [];
  try {
    const first = await startBenchServer({ script: new URL('./pg-server.ts', import.meta.url), env: { ...env, BENCH_PG_SETUP: '1' } });
    nodes.push(first);
    const ids = { BENCH_PG_DATABASE: first.databaseId, BENCH_PG_APIKEY: first.apiKey };
    const o = sqlite.merge;
    const ratio = (pgRate: number, sqliteRate: number | undefined): string => (sqliteRate === undefined || sqliteRate === 0 ? '' : `${fmt(pgRate / sqliteRate, 2)}× SQLite's`);
    // BENCH_PG_NODES=1: one node only (bench/pg-only.ts); default one node, then three.
    for (const n of process.env['BENCH_PG_NODES'] === '1' ? [1] : [1, 3]) {
      while (nodes.length < n) nodes.push(await startBenchServer({ script: new URL('./pg-server.ts', import.meta.url), env: { ...env, ...ids } }));
      const proxy = n === 1 ? undefined : await startRoundRobinProxy(nodes.map((s) => s.port));
      const via: BenchServer = proxy === undefined ? first : { ...first, origin: proxy.origin };
      try {
        await mergeThroughput(via, { devices: 10, batches: 1, rowsPerBatch: 50 }); // warm-up: every node opens its pool
        const m = await mergeThroughput(via, o);
        const rate = m.changes / (m.ms / 1000);
        row(`(h) POSTGRES merged via HTTP G3 apply, ${n} node${n === 1 ? '' : 's'}, ${o.devices} devices × ${o.batches} × ${o.rowsPerBatch} rows`, `${fmt(rate)} changes/s`, '', `${ratio(rate, sqlite.mergeRate)}; ${fmt(m.changes)} changes in ${fmt(m.ms)} ms, ${m.failures} failures`);
      } finally {
        await proxy?.close();
      }
      for (const pageBytes of sqlite.downloadRate.keys()) {
        await Promise.all(nodes.map((s) => s.request({ type: 'download', pageBytes }))); // warm-up
        const t0 = performance.now();
        const ds = await Promise.all(nodes.map((s) => s.request({ type: 'download', pageBytes })));
        const ms = performance.now() - t0;
        const changes = ds.reduce((a, d) => a + d.changes, 0);
        const rate = changes / (ms / 1000);
        const d = ds[0];
        row(`(i) POSTGRES download build, ${n} node${n === 1 ? '' : 's'} at once, pages of ${fmt(pageBytes / 1024)} KiB`, `${fmt(rate)} changes/s`, '', `${ratio(rate, sqlite.downloadRate.get(pageBytes))}; ${fmt(d?.changes ?? 0)} changes → ${d?.pages ?? 0} pages per node, ${fmt(ms)} ms`);
      }
    }
    row('(h)(i) POSTGRES central database', pgdb.label, '', 'SQLite control plane shared by the nodes; ratios against (a)(b) of this run');
  } finally {
    for (const s of nodes) await s.stop();
    rmSync(dir, { recursive: true, force: true });
    await pgdb.close();
  }
}
