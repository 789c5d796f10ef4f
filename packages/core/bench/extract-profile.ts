/**
 * Extraction only, for profiles: `node --cpu-prof --import tsx bench/extract-profile.ts` in
 * packages/core, on the database bench/extract-speed.ts keeps (run that first). REPS runs.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSyncDatabase } from '@offsync/core/sqlite';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const eng = openSyncDatabase(process.env['EXTRACT_BENCH_DB'] ?? join(tmpdir(), `offsync-extract-bench-${N}.db`));
const ts: number[] = [];
let n = 0;
for (let r = 0; r < Number(process.env['REPS'] ?? 8); r++) {
  const c0 = process.cpuUsage();
  n = [...eng.changes()].length;
  const c = process.cpuUsage(c0);
  ts.push((c.user + c.system) / 1000);
}
console.log(`${n} changes, extract cpu ms: min ${Math.min(...ts).toFixed(0)} [${ts.map((x) => x.toFixed(0)).join(" ")}]`);
