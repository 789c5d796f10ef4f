/** Test helpers: in-memory replicas on the real engine. */
import { openSyncDatabase } from '../adapters/sqlite/index.ts';
import type { SyncEngine } from '../engine/engine.ts';
import type { Change, SqlValue } from '../types.ts';

export const TODOS_DDL =
  "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

/** Opens an in-memory engine, runs `ddl` and initialises the named tables. */
export function openReplica(ddl: string = TODOS_DDL, tables: readonly string[] = ['todos']): SyncEngine {
  const e = openSyncDatabase(':memory:');
  e.driver.exec(ddl);
  for (const t of tables) e.init(t);
  return e;
}

/** All rows of a table ordered by primary key, as plain objects. */
export function tableRows(e: SyncEngine, table: string): Record<string, SqlValue>[] {
  const ctx = e.table(table);
  const order = ctx ? ctx.schema.pkColumns.map((c) => `"${c.name}"`).join(', ') : 'rowid';
  return e.driver.prepare(`SELECT * FROM "${table}" ORDER BY ${order}`).all();
}

/**
 * Clock state of a table, independent of the metadata layout and of local version numbers:
 * one `pk/col=col_version@cl` entry per clock, from the engine's own change feed.
 */
export function clockRows(e: SyncEngine, table: string): string[] {
  return [...e.changes({ tables: [table] })]
    .map((c) => `${Buffer.from(c.pk).toString('hex').toUpperCase()}/${c.col}=${c.colVersion}@${c.cl}`)
    .sort();
}

/** Everything `from` has that `to` may not, excluding `to`'s own changes. */
export function changesFor(from: SyncEngine, to: SyncEngine): Change[] {
  return [...from.changes({ excludeSiteId: to.siteId })];
}

/** Sends all of `from`'s changes to `to` through an encoded payload. */
export function syncOneWay(from: SyncEngine, to: SyncEngine): number {
  const payload = from.encodeChanges(changesFor(from, to));
  if (payload === null) return 0;
  return to.applyPayload(payload).applied;
}
