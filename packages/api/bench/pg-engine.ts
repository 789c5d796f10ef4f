/**
 * The PostgreSQL engine alone, without HTTP (complements (h)(i) of bench/pg.ts): changes merged
 * per second by `PgSyncEngine.applyChanges` (authoritative, as the server merges) for fresh
 * inserts and for updates of the same rows, and changes per second read from its feed.
 * `npx tsx bench/pg-engine.ts [rows]` (default 5000 rows × 3 columns); TEST_DATABASE_URL, else an
 * embedded PGlite. Prints one line per measure.
 */
import { encodePk } from '@offsync/core';
import type { Change } from '@offsync/core';
import { collect, openPgContext, openTestPool } from '@offsync/core/testing';

const rows = Number(process.argv[2] ?? 5000);
const site = new Uint8Array([0x01, 0x90, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x42]);
const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

function batch(cv: number, label: string): Change[] {
  const out: Change[] = [];
  for (let i = 0; i < rows; i++) {
    const pk = encodePk([`r${i}`]);
    const dbVersion = cv * rows + i + 1;
    out.push({ tbl: 'todos', pk, col: 'title', val: `${label} ${i}`, colVersion: cv, dbVersion, siteId: site, cl: 1, seq: 0 });
    out.push({ tbl: 'todos', pk, col: 'done', val: BigInt(i % 2), colVersion: cv, dbVersion, siteId: site, cl: 1, seq: 1 });
    out.push({ tbl: 'todos', pk, col: 'note', val: null, colVersion: cv, dbVersion, siteId: site, cl: 1, seq: 2 });
  }
  return out;
}

const { pool, close } = await openTestPool();
const ctx = await openPgContext(pool, DDL, ['todos']);
try {
  const label = process.env['TEST_DATABASE_URL'] ? 'PostgreSQL (TEST_DATABASE_URL)' : 'embedded PGlite';
  for (const [what, changes] of [
    ['merge, fresh inserts', batch(1, 'new')],
    ['merge, updates of the same rows', batch(2, 'edit')],
  ] as const) {
    const t0 = performance.now();
    const r = await ctx.engine.applyChanges(changes, { rejectRows: true });
    const ms = performance.now() - t0;
    process.stdout.write(`${what}: ${Math.round(changes.length / (ms / 1000))} changes/s (${r.applied} of ${changes.length} applied in ${Math.round(ms)} ms; ${label})\n`);
  }
  const t0 = performance.now();
  const feed = await collect(ctx.engine.changes({}));
  const ms = performance.now() - t0;
  process.stdout.write(`feed, whole table: ${Math.round(feed.length / (ms / 1000))} changes/s (${feed.length} changes in ${Math.round(ms)} ms; ${label})\n`);
} finally {
  await ctx.drop();
  await close();
}
