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
