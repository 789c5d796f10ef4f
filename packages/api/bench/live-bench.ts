/**
 * `tsx bench/live-bench.ts`: the api bench's live rows alone ((c) propagation and (d) memory per
 * idle subscriber, bench/live.ts) against the bench server process. BENCH_QUICK=1: 10/100 subs.
 * BENCH_LIVE_TIERS=100,1000 picks the tiers.
 */
import { cpus } from 'node:os';
import { startBenchServer } from './ipc.ts';
import { liveBench } from './live.ts';

const quick = process.env['BENCH_QUICK'] === '1';
const tiers = (process.env['BENCH_LIVE_TIERS'] ?? (quick ? '10,100' : '100,1000')).split(',').map(Number);
const rows: Array<[string, string, string, string]> = [];
const row = (what: string, value: string, target = '', note = ''): void => {
  rows.push([what, value, target, note]);
  process.stderr.write(`  ${what}: ${value}${note ? ` (${note})` : ''}\n`);
};

process.stderr.write(`OffSync live bench (${cpus().length} cores${quick ? ', quick' : ''})\n`);
const server = await startBenchServer();
try {
  await liveBench(server, row, { tiers, rounds: quick ? 30 : 200 });
} finally {
  await server.stop();
}
const widths = [0, 1, 2, 3].map((i) => Math.max(...[['measure', 'result', 'target', 'notes'], ...rows].map((r) => (r[i] ?? '').length)));
const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
process.stdout.write(`\n${line(['measure', 'result', 'target', 'notes'])}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`);
