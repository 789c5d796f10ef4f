/**
 * Test helper: every table of a SQLite database (base tables, clock tables, bookkeeping),
 * row by row, as comparable text — "the database is unchanged" means equal dumps.
 */
import type { SyncEngine } from '../engine/engine.ts';

function cell(v: unknown): string {
  if (v instanceof Uint8Array) return `x'${Buffer.from(v).toString('hex')}'`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0.0' : `${v}r`;
  return JSON.stringify(v);
}

/** `{ table: [row, …] }` for every table in `sqlite_master`, rows in a stable order. */
export function dumpDatabase(e: SyncEngine): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const tables = e.driver.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all();
  for (const t of tables) {
    const name = String(t['name']);
    const rows = e.driver.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).all();
    out[name] = rows.map((r) => Object.entries(r).map(([k, v]) => `${k}=${cell(v)}`).join(',')).sort();
  }
  return out;
}

/**
 * The clock tables of synced `table` keyed by the key blob, as the layout before row ids stored
 * them: records `[pk, cl, sent, icv, db_version, seq, site]` by pk (bare records, causal length
 * 0, included), cells `[pk, col, col_version, db_version, seq, site]` by (pk, col). Local row ids
 * are left out: two databases with the same clocks may number their rows differently. Throws
 * when a cell's rid names no record (the layout forbids it).
 */
export function clockTables(e: SyncEngine, table: string): { records: unknown[][]; cells: unknown[][] } {
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const r = q(`${table}__crdt_rows`);
  const c = q(`${table}__crdt_cells`);
  const records = e.driver.prepare(`SELECT pk, cl, sent, icv, db_version, seq, site FROM ${r} ORDER BY pk`).all().map((x) => Object.values(x));
  const cells = e.driver
    .prepare(`SELECT r.pk, c.col, c.col_version, c.db_version, c.seq, c.site FROM ${c} c LEFT JOIN ${r} r ON r.rid = c.rid ORDER BY r.pk, c.col`)
    .all()
    .map((x) => Object.values(x));
  if (cells.some((x) => x[0] === null)) throw new Error(`clockTables: ${table} has cells whose rid names no row record`);
  return { records, cells };
}
