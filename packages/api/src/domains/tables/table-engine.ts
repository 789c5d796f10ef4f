/**
 * The one place the API touches a SQLITE database's tables. Written against the core engine's
 * interface (`openSyncDatabase(path)` from `@offsync/core/sqlite`); until core exports it, this
 * file implements the same surface with PRAGMA queries and a small `_offsync_api_synced` table.
 * Rule ids and messages follow protocol reference D.1.
 */
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase } from 'better-sqlite3';

export interface TableColumn { name: string; type: string; notNull: boolean; defaultValue: string | null; pk: number }
export interface TableIssue { rule: string; message: string }
export interface TableInfo {
  name: string;
  columns: TableColumn[];
  issues: TableIssue[];
  synced: boolean;
  algorithm: 'cls' | 'gos' | null;
}

export interface TableEngine {
  listTables(): TableInfo[];
  /** Initialises a table for sync (metadata + back-fill). Throws TableSchemaError when it cannot. */
  init(table: string, algorithm?: string): void;
  /** Stops syncing a table and drops its metadata. */
  cleanup(table: string): void;
  syncedTables(): string[];
  close(): void;
  readonly db: SqliteDatabase;
}

/** Same shape as core's CoreError('CORE_SCHEMA_INVALID'). */
export class TableSchemaError extends Error {
  readonly code = 'CORE_SCHEMA_INVALID';
}

const SYNCED = '_offsync_api_synced';

function isInternal(name: string): boolean {
  return /^sqlite_/i.test(name) || /^offsync_/i.test(name) || /^_offsync/i.test(name) || /^cloudsync_/i.test(name) || name.includes('__crdt_');
}

export function tableIssues(name: string, columns: TableColumn[]): TableIssue[] {
  const issues: TableIssue[] = [];
  const pk = columns.filter((c) => c.pk > 0);
  if (pk.length === 0) {
    issues.push({ rule: 'D1.2-rowid-only', message: `Rowid only tables are not supported, all primary keys must be explicitly set and declared as NOT NULL (table ${name})` });
  }
  if (pk.length > 128) issues.push({ rule: 'D1.3-too-many-pk-columns', message: 'No more than 128 columns can be used to form a composite primary key' });
  const only = pk.length === 1 ? pk[0] : undefined;
  if (only !== undefined && /INT/i.test(only.type)) {
    issues.push({ rule: 'D1.4-integer-pk', message: `Table ${name} uses a single-column INTEGER primary key. Use TEXT or BLOB keys holding UUIDs/ULIDs so that ids are unique across devices.` });
  }
  if (pk.some((c) => !c.notNull)) {
    issues.push({ rule: 'D1.5-pk-not-null', message: `All primary keys must be explicitly declared as NOT NULL (table ${name})` });
  }
  if (columns.some((c) => c.pk === 0 && c.notNull && c.defaultValue === null)) {
    issues.push({ rule: 'D1.6-not-null-without-default', message: `All non-primary key columns declared as NOT NULL must have a DEFAULT value. (table ${name})` });
  }
  return issues;
}

export function openTableEngine(path: string): TableEngine {
  const db = new Database(path, { fileMustExist: true });
  db.exec(`CREATE TABLE IF NOT EXISTS ${SYNCED} (name TEXT PRIMARY KEY, algorithm TEXT NOT NULL)`);
  const synced = () => new Map((db.prepare(`SELECT name, algorithm FROM ${SYNCED}`).all() as { name: string; algorithm: string }[]).map((r) => [r.name, r.algorithm]));

  function columnsOf(name: string): TableColumn[] {
    return (db.prepare('SELECT name, type, "notnull" AS nn, dflt_value, pk FROM pragma_table_info(?)').all(name) as { name: string; type: string; nn: number; dflt_value: string | null; pk: number }[])
      .map((r) => ({ name: r.name, type: r.type, notNull: r.nn !== 0, defaultValue: r.dflt_value, pk: r.pk }));
  }

  const engine: TableEngine = {
    db,
    listTables() {
      const s = synced();
      const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]).filter((n) => !isInternal(n));
      return names.map((name) => {
        const columns = columnsOf(name);
        const algorithm = s.get(name);
        return { name, columns, issues: tableIssues(name, columns), synced: algorithm !== undefined, algorithm: algorithm === 'gos' ? 'gos' : algorithm === 'cls' ? 'cls' : null };
      });
    },
    init(table, algorithm = 'cls') {
      const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
      if (exists === undefined) throw new TableSchemaError(`Table ${table} does not exist`);
      const issues = tableIssues(table, columnsOf(table));
      if (issues.length > 0) throw new TableSchemaError(issues.map((i) => i.message).join('; '));
      if (algorithm !== 'cls' && algorithm !== 'gos') throw new TableSchemaError(`Unknown CRDT algorithm name ${algorithm}`);
      const current = synced().get(table);
      if (current !== undefined && current !== algorithm) throw new TableSchemaError('The function cloudsync_cleanup(table) must be called before changing a table algorithm');
      db.prepare(`INSERT OR IGNORE INTO ${SYNCED} (name, algorithm) VALUES (?, ?)`).run(table, algorithm);
    },
    cleanup(table) {
      db.prepare(`DELETE FROM ${SYNCED} WHERE name = ?`).run(table);
    },
    syncedTables() {
      return [...synced().keys()].sort();
    },
    close() {
      db.close();
    },
  };
  return engine;
}
