/**
 * Table introspection and the schema rules a table must satisfy before it can sync
 * (docs/PROTOCOL.md §P6). Messages follow the SQLite Sync extension's texts so that users of
 * either see the same advice.
 */
import type { SqlDriver } from '../storage/driver.ts';

export interface ColumnInfo {
  /** Position in `PRAGMA table_info` (cid). */
  cid: number;
  name: string;
  /** Declared type as written (may be empty). */
  type: string;
  notNull: boolean;
  /** DEFAULT expression text, or null. */
  defaultValue: string | null;
  /** 1-based position in the primary key, 0 when not part of it. */
  pk: number;
}

export interface SchemaIssue {
  /** Stable rule id, e.g. `D1.2-rowid-only`. */
  rule: string;
  message: string;
}

export interface TableSchema {
  name: string;
  columns: ColumnInfo[];
  /** Primary-key columns in declaration order. */
  pkColumns: ColumnInfo[];
  /** Non-PK columns in cid order. */
  valueColumns: ColumnInfo[];
  createSql: string;
}

/** Flags of `init(table, algo, flags)` (bitmask, as in SQLite Sync ≥ 1.0.9). */
export const InitFlags = {
  /** Allow a single-column INTEGER primary key (the app promises globally unique ids). */
  ALLOW_INTEGER_PK: 1,
  /** Skip the "NOT NULL columns need a DEFAULT" rule. */
  SKIP_NOT_NULL_DEFAULT: 2,
  /** Skip the "primary key columns must be NOT NULL" rule (NULL values are still refused at write time). */
  SKIP_PK_NOT_NULL: 4,
} as const;

export const MAX_TABLE_NAME_LENGTH = 512;
export const MAX_PK_COLUMNS = 128;

/** Reads a table's schema, or returns undefined when no such table exists. */
export function readTableSchema(driver: SqlDriver, table: string): TableSchema | undefined {
  const master = driver.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE`).get(table);
  if (master === undefined) return undefined;
  const name = String(master['name']);
  const rows = driver.prepare('SELECT cid, name, type, "notnull" AS nn, dflt_value, pk FROM pragma_table_info(?)').all(name);
  const columns: ColumnInfo[] = rows.map((r) => ({
    cid: Number(r['cid']),
    name: String(r['name']),
    type: String(r['type'] ?? ''),
    notNull: Number(r['nn']) !== 0,
    defaultValue: r['dflt_value'] == null ? null : String(r['dflt_value']),
    pk: Number(r['pk']),
  }));
  const pkColumns = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  const valueColumns = columns.filter((c) => c.pk === 0);
  return { name, columns, pkColumns, valueColumns, createSql: String(master['sql'] ?? '') };
}

/** Names of user tables (not SQLite's, not OffSync's metadata). */
export function listUserTableNames(driver: SqlDriver): string[] {
  return driver
    .prepare(
      `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
       AND name NOT LIKE 'offsync\\_%' ESCAPE '\\' AND name NOT LIKE '%\\_\\_crdt' ESCAPE '\\'
       AND name NOT LIKE '%\\_\\_crdt\\_rows' ESCAPE '\\' AND name NOT LIKE '%\\_\\_crdt\\_cells' ESCAPE '\\' ORDER BY name`,
    )
    .all()
    .map((r) => String(r['name']));
}

/** Every §P6 rule the table breaks under the given flags; empty when it can sync. */
export function schemaIssues(schema: TableSchema | undefined, table: string, flags = 0): SchemaIssue[] {
  if (schema === undefined) return [{ rule: 'D1.1-missing', message: `Table ${table} does not exist` }];
  const issues: SchemaIssue[] = [];
  if (schema.name.length > MAX_TABLE_NAME_LENGTH) {
    issues.push({ rule: 'D1.1-name-length', message: `Table name ${schema.name.slice(0, 32)}… is longer than ${MAX_TABLE_NAME_LENGTH} characters` });
  }
  if (schema.pkColumns.length === 0) {
    issues.push({
      rule: 'D1.2-rowid-only',
      message: `Rowid only tables are not supported, all primary keys must be explicitly set and declared as NOT NULL (table ${schema.name})`,
    });
    return issues;
  }
  if (schema.pkColumns.length > MAX_PK_COLUMNS) {
    issues.push({ rule: 'D1.3-pk-count', message: `No more than ${MAX_PK_COLUMNS} columns can be used to form a composite primary key` });
  }
  const only = schema.pkColumns[0];
  if (schema.pkColumns.length === 1 && only !== undefined && only.type.toUpperCase().includes('INT') && (flags & InitFlags.ALLOW_INTEGER_PK) === 0) {
    issues.push({
      rule: 'D1.4-integer-pk',
      message:
        `Table ${schema.name} uses a single-column INTEGER primary key. Auto-incremented integer keys collide between devices: ` +
        `use TEXT keys holding UUIDs/ULIDs (e.g. cloudsync_uuid()), or, if your ids are globally unique, set the third argument of cloudsync_init to 1.`,
    });
  }
  if ((flags & InitFlags.SKIP_PK_NOT_NULL) === 0 && schema.pkColumns.some((c) => !c.notNull)) {
    issues.push({ rule: 'D1.5-pk-not-null', message: `All primary keys must be explicitly declared as NOT NULL (table ${schema.name})` });
  }
  if ((flags & InitFlags.SKIP_NOT_NULL_DEFAULT) === 0 && schema.valueColumns.some((c) => c.notNull && c.defaultValue === null)) {
    issues.push({
      rule: 'D1.6-not-null-default',
      message: `All non-primary key columns declared as NOT NULL must have a DEFAULT value. (table ${schema.name})`,
    });
  }
  return issues;
}
