/**
 * `npm run bench -w @offsync/api`: a benchmark, not a test — prints a table, never fails on
 * timing. The server runs in a child process (bench/server.ts) on loopback; devices, the writer
 * and the subscribers run here.
 *
 *   (a) changes merged per second through HTTP (G3 inline apply), 100 devices, vs raw better-sqlite3
 *   (b) download package build rate (changes/s encoded into pages)
 *   (c) propagation latency device → server → device, 100 and 1,000 subscribers on graphql-ws
 *   (d) memory per idle graphql-ws subscriber: JS heap slope after forced GC in the server process
 *       (bench/live.ts; never RSS, which the allocator does not return and came out negative)
 *   (e)(f)(g) bench/load.ts (its own server process): 200 devices mixing uploads and first syncs
 *       (p50/p99 per route, event-loop delay, errors, RSS), an upload burst vs raw better-sqlite3,
 *       and the initial-sync storm of 200 fresh RLS devices on 20k rows. Alone: `tsx bench/load.ts`.
 *   (h)(i) bench/pg.ts: (a) and (b) on a POSTGRES central database (TEST_DATABASE_URL, else an
 *       embedded PGlite), one node and three behind a round-robin proxy, as ratios to (a)(b).
 *
 * Env: BENCH_QUICK=1 for a smoke run (fewer devices, rounds and subscribers).
 */
import { cpus } from 'node:os';
import { startBenchServer } from './ipc.ts';
import { liveBench } from './live.ts';
import { mergeThroughput } from './merge.ts';
import { FULL as LOAD_FULL, QUICK as LOAD_QUICK, loadBench } from './load.ts';
import { pgBench } from './pg.ts';
import type { SqliteFigures } from './pg.ts';

const quick = process.env['BENCH_QUICK'] === '1';
const KiB = 1024;
const rows: Array<[string, string, string, string]> = [];
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const row = (what: string, value: string, target = '', note = ''): void => {
  rows.push([what, value, target, note]);
  process.stderr.write(`  ${what}: ${value}${note ? ` (${note})` : ''}\n`);
};
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');

async function main(): Promise<void> {
  process.stderr.write(`OffSync api bench (${cpus().length} cores${quick ? ', quick' : ''})\n`);
  const server = await startBenchServer();
  let sqlite: SqliteFigures | undefined;
  try {
    process.stderr.write('(c)(d) live subscriptions…\n');
    await liveBench(server, row, { tiers: quick ? [10, 100] : [100, 1000], rounds: quick ? 30 : 200 });

    process.stderr.write('(a) merge throughput…\n');
    const o = quick ? { devices: 20, batches: 2, rowsPerBatch: 100 } : { devices: 100, batches: 4, rowsPerBatch: 100 };
    await mergeThroughput(server, { devices: 10, batches: 1, rowsPerBatch: 50 }); // warm-up
    const m = await mergeThroughput(server, o);
    const rate = m.changes / (m.ms / 1000);
    row(`(a) merged via HTTP G3 apply, ${o.devices} devices × ${o.batches} × ${o.rowsPerBatch} rows`, `${fmt(rate)} changes/s`, '≥ 60k changes/s', `${verdict(rate >= 60_000)}; ${fmt(m.changes)} of ${fmt(m.offered)} changes merged in ${fmt(m.ms)} ms, ${m.failures} failed uploads (not counted)`);
    const raw = m.rows / (m.baselineRowsMs / 1000);
    sqlite = { mergeRate: rate, downloadRate: new Map(), merge: o };
    row('(a) baseline raw better-sqlite3 inserts, same rows', `${fmt(raw)} rows/s`, '', `${fmt((raw * m.offered) / m.rows)} cell-equivalents/s; merge is ${fmt(raw / (rate / (m.offered / m.rows)), 1)}× slower per row`);

    process.stderr.write('(b) download package build…\n');
    for (const pageBytes of [5_000_000, 256 * KiB]) {
      await server.request({ type: 'download', pageBytes }); // warm-up
      const d = await server.request({ type: 'download', pageBytes });
      sqlite?.downloadRate.set(pageBytes, d.changes / (d.ms / 1000));
      row(`(b) download build, pages of ${fmt(pageBytes / KiB)} KiB`, `${fmt(d.changes / (d.ms / 1000))} changes/s`, '', `${fmt(d.changes)} changes → ${d.pages} pages, ${fmt(d.bytes / KiB / KiB, 1)} MiB in ${fmt(d.ms)} ms`);
    }
  } finally {
    await server.stop();
  }
  if (sqlite !== undefined && process.env['BENCH_SKIP_PG'] !== '1') await pgBench(row, sqlite);
  await loadBench(row, quick ? LOAD_QUICK : LOAD_FULL);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[['measure', 'result', 'target', 'notes'], ...rows].map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  process.stdout.write(`\n${line(['measure', 'result', 'target', 'notes'])}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
