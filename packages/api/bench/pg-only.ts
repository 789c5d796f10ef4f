/**
 * Runs only the PostgreSQL sections (h)(i) of the api bench (bench/pg.ts), without the SQLite
 * sections it is normally printed next to (no ratios): `npx tsx bench/pg-only.ts`.
 * Env: TEST_DATABASE_URL (else embedded PGlite), BENCH_QUICK=1 (20 devices × 2 × 100 rows instead
 * of 100 × 4 × 100), BENCH_PG_NODES=1 (one node only; default 1 and 3).
 */
import { pgBench } from './pg.ts';

const quick = process.env['BENCH_QUICK'] === '1';
const rows: string[] = [];
const row = (what: string, value: string, _target = '', note = ''): void => {
  rows.push(`${what}: ${value}${note ? ` (${note})` : ''}`);
  process.stderr.write(`  ${what}: ${value}${note ? ` (${note})` : ''}\n`);
};

await pgBench(row, {
  mergeRate: 0,
  downloadRate: new Map([
    [5_000_000, 0],
    [256 * 1024, 0],
  ]),
  merge: quick ? { devices: 20, batches: 2, rowsPerBatch: 100 } : { devices: 100, batches: 4, rowsPerBatch: 100 },
});
process.stdout.write(`${rows.join('\n')}\n`);
