/**
 * `tsx bench/merge-bench.ts`: the api bench's (a) row alone — changes merged per second through
 * HTTP G3 inline apply from 100 devices × 4 × 100 rows (bench/merge.ts) against the bench server
 * process, with the server's CPU time per merged change. BENCH_MERGE_RUNS=3 repeats the measured
 * run on the same server (fresh rows each time); BENCH_QUICK=1: 20 devices × 2 × 100.
 */
import { cpus } from 'node:os';
import { startBenchServer } from './ipc.ts';
import { mergeThroughput } from './merge.ts';

const quick = process.env['BENCH_QUICK'] === '1';
const runs = Number(process.env['BENCH_MERGE_RUNS'] || 1);
const o = quick ? { devices: 20, batches: 2, rowsPerBatch: 100 } : { devices: 100, batches: 4, rowsPerBatch: 100 };
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const cpuMs = (u: { user: number; system: number }): number => (u.user + u.system) / 1000;

process.stderr.write(`OffSync merge bench (${cpus().length} cores${quick ? ', quick' : ''})\n`);
const server = await startBenchServer();
try {
  await mergeThroughput(server, { devices: 10, batches: 1, rowsPerBatch: 50 }); // warm-up
  for (let i = 0; i < runs; i++) {
    const c0 = cpuMs(await server.request({ type: 'cpu' }));
    const m = await mergeThroughput(server, o);
    const serverCpu = cpuMs(await server.request({ type: 'cpu' })) - c0;
    process.stdout.write(`(a) merged via HTTP G3 apply, ${o.devices} devices × ${o.batches} × ${o.rowsPerBatch} rows: ${fmt(m.changes / (m.ms / 1000))} changes/s (${fmt(m.changes)} of ${fmt(m.offered)} changes merged in ${fmt(m.ms)} ms, ${m.failures} failed uploads, not counted${m.failures > 0 ? ` ${JSON.stringify(m.failureKinds)}` : ''}; server CPU ${fmt(serverCpu)} ms over the run = ${fmt((serverCpu * 1000) / (o.devices * o.batches))} µs per request)\n`);
  }
} finally {
  await server.stop();
}
