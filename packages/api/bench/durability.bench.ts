/**
 * `npm run bench:durability -w @offsync/api`: the cost of durable acknowledgements. The bench
 * server (bench/server.ts, central databases on the temp dir's disk) runs once with
 * `OFFSYNC_SYNCHRONOUS=FULL` (the default: the WAL is synced before an upload is acknowledged)
 * and once with NORMAL, and the same G3 inline uploads are sent to each (bench/merge.ts):
 * concurrent 100-row batches, and one device sending 1-row batches one after the other (the
 * latency of one acknowledgement), plus the bare commit cost of both settings on the same disk.
 * A benchmark, not a test: prints a table, never fails on timing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startBenchServer } from './ipc.ts';
import { mergeThroughput } from './merge.ts';
import type { MergeOptions } from './merge.ts';

const shapes: Array<{ name: string; o: MergeOptions }> = [
  { name: '20 devices × 5 batches × 100 rows, concurrent', o: { devices: 20, batches: 5, rowsPerBatch: 100 } },
  { name: '1 device × 100 batches × 1 row, sequential', o: { devices: 1, batches: 100, rowsPerBatch: 1 } },
];
const fmt = (n: number, d = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const lines: string[] = [];

// One API key for every device: per-credential quotas (rate, concurrent uploads) would dominate.
process.env['BENCH_SYNC_OPTIONS'] = JSON.stringify({ rateLimitPerSecond: 0, maxConcurrentUploadsPerCredential: 1_000 });
for (const mode of ['FULL', 'NORMAL'] as const) {
  process.env['OFFSYNC_SYNCHRONOUS'] = mode;
  const server = await startBenchServer();
  try {
    await mergeThroughput(server, { devices: 5, batches: 2, rowsPerBatch: 50 }); // warm-up
    for (const { name, o } of shapes) {
      const m = await mergeThroughput(server, o);
      const uploads = o.devices * o.batches;
      lines.push(`| ${mode} | ${name} | ${fmt(m.changes / (m.ms / 1000))} changes/s | ${fmt(m.ms / (uploads / o.devices), 2)} ms per upload and device | ${m.failures} failures |`);
      process.stderr.write(`${lines.at(-1)}\n`);
    }
  } finally {
    await server.stop();
  }
}
// The fsync itself: one-row commits on the same disk, without HTTP or merge around them.
for (const mode of ['FULL', 'NORMAL'] as const) {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-bench-commit-'));
  try {
    const db = new Database(join(dir, 'x.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${mode}`);
    db.exec('CREATE TABLE t (x)');
    const st = db.prepare('INSERT INTO t VALUES (?)');
    const n = 500;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) st.run(i);
    const ms = (performance.now() - t0) / n;
    db.close();
    lines.push(`| ${mode} | raw better-sqlite3, ${n} one-row commits | ${fmt(1000 / ms)} commits/s | ${fmt(ms, 3)} ms per commit | |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
process.stdout.write(`\n| synchronous | shape | merge rate | time per acknowledged upload | errors |\n|---|---|---|---|---|\n${lines.join('\n')}\n`);
