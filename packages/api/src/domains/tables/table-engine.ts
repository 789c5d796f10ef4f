/**
 * The one place the API touches a SQLITE database's tables: the core engine
 * (`openSyncDatabase` from `@offsync/core/sqlite`). `tableIssues` applies the same §P6 rules to
 * column lists that do not come from SQLite (PostgreSQL databases, listed via information_schema).
 */
import { existsSync } from 'node:fs';
import { isCoreError, schemaHashFromInt64 } from '@offsync/core';
import type { SqlDriver } from '@offsync/core';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { ApiError } from '../../errors.ts';
import { recordPolicyChange } from '../sync/policy-history.ts';
import type { SyncEngine } from '../sync/sync-deps.ts';

export interface TableColumn { name: string; type: string; notNull: boolean; defaultValue: string | null; pk: number }
export interface TableIssue { rule: string; message: string }
export interface TableInfo {
  name: string;
  columns: TableColumn[];
  issues: TableIssue[];
  synced: boolean;
  algorithm: 'cls' | 'gos' | null;
  /** Block-LWW text columns of a synced table (docs/PROTOCOL.md "Block columns"); empty otherwise. */
  blockColumns: string[];
}

export interface TableEngine {
  listTables(): TableInfo[];
  /** Initialises a table for sync (metadata + back-fill). Throws CoreError CORE_SCHEMA_INVALID when it cannot. */
  init(table: string, algorithm?: string, flags?: number): void;
  /** Stops syncing a table and drops its metadata, its block-column marks and block cells included (rows stay). */
  cleanup(table: string): void;
  /** Marks a column of a synced table block-LWW (core `setBlockColumn`). */
  setBlockColumn(table: string, column: string): void;
  syncedTables(): string[];
  /** Runs `fn` atomically on the database. */
  transaction<T>(fn: () => T): T;
  /**
   * A change of who may see what (RLS policy or mode): every live row of each table starts a new
   * life, and what held before is recorded (domains/sync/policy-history.ts), in one transaction.
   */
  renewVisibility(changes: readonly { table: string; mode: 'ENFORCE' | 'BYPASS'; select: string | null }[]): void;
  /** Every schema hash the database has had (`offsync_schema_versions`), oldest first, with the current ones marked. */
  schemaHistory(): SchemaHashVersion[];
  close(): void;
}

export interface SchemaHashVersion {
  /** Decimal u64. */
  hash: string;
  seq: number;
  /** `column-list` (0.9.118+ and 1.x), `ddl-text` (0.8 – 0.9.99) or `peer` (a device's hash accepted in lenient mode). */
  kind: string;
  /** The hash of the tables as deployed now (either variant). */
  current: boolean;
}

export function tableIssues(name: string, columns: TableColumn[]): TableIssue[] {
  const issues: TableIssue[] = [];
  const pk = columns.filter((c) => c.pk > 0);
  if (pk.length === 0) {
    issues.push({ rule: 'D1.2-rowid-only', message: `Rowid only tables are not supported, all primary keys must be explicitly set and declared as NOT NULL (table ${name})` });
  }
  if (pk.length > 128) issues.push({ rule: 'D1.3-pk-count', message: 'No more than 128 columns can be used to form a composite primary key' });
  const only = pk.length === 1 ? pk[0] : undefined;
  if (only !== undefined && /INT/i.test(only.type)) {
    issues.push({ rule: 'D1.4-integer-pk', message: `Table ${name} uses a single-column INTEGER primary key. Use TEXT or BLOB keys holding UUIDs/ULIDs so that ids are unique across devices.` });
  }
  if (pk.some((c) => !c.notNull)) {
    issues.push({ rule: 'D1.5-pk-not-null', message: `All primary keys must be explicitly declared as NOT NULL (table ${name})` });
  }
  if (columns.some((c) => c.pk === 0 && c.notNull && c.defaultValue === null)) {
    issues.push({ rule: 'D1.6-not-null-default', message: `All non-primary key columns declared as NOT NULL must have a DEFAULT value. (table ${name})` });
  }
  return issues;
}

/**
 * Rule `OS1-unique`: a UNIQUE constraint besides the primary key. Merges write rows by primary
 * key only (the conflict target is the key), so such a constraint can only turn a device's change
 * into a rejected one — a user creating `slug = 'x'` offline loses that row when another user's
 * row already holds it — and every device carries the same constraint locally, where a
 * server-side rejection cannot resolve it. SQLite Sync asks for globally unique constraints;
 * OffSync refuses such tables at deploy time (docs/ARCHITECTURE.md "RLS model").
 */
export function uniqueIssues(name: string, uniqueSets: readonly (readonly string[])[]): TableIssue[] {
  return uniqueSets.map((cols) => ({
    rule: 'OS1-unique',
    message: `Table ${name} has a UNIQUE constraint on (${cols.join(', ')}) besides its primary key. Devices write offline, so two users can create the same value; OffSync only ever writes the row a change's primary key names and would reject the second row. Drop the constraint (enforce it in the app), or make the column part of the primary key.`,
  }));
}

/** Column sets of a SQLite table's UNIQUE constraints and unique indexes, the primary key excluded. */
export function sqliteUniqueSets(driver: SqlDriver, table: string): string[][] {
  const out: string[][] = [];
  for (const idx of driver.prepare('SELECT name, "unique" AS u, origin FROM pragma_index_list(?)').all(table)) {
    if (Number(idx['u']) !== 1 || idx['origin'] === 'pk') continue;
    out.push(driver.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').all(String(idx['name'])).map((r) => String(r['name'] ?? '(expression)')));
  }
  return out;
}

/** §P6 rules an init flag waives (core `InitFlags`: 1 integer key, 2 NOT NULL without DEFAULT, 4 nullable key). */
const WAIVED_BY_FLAG: readonly [number, string][] = [[1, 'D1.4-integer-pk'], [2, 'D1.6-not-null-default'], [4, 'D1.5-pk-not-null']];

/** The issues that remain under `flags`. */
export function issuesUnderFlags(issues: readonly TableIssue[], flags: number): TableIssue[] {
  const waived = new Set(WAIVED_BY_FLAG.filter(([bit]) => (flags & bit) !== 0).map(([, rule]) => rule));
  return issues.filter((i) => !waived.has(i.rule));
}

export interface RefusedTable { table: string; issues: TableIssue[] }

/**
 * All or nothing: throws SCHEMA_ISSUES (details.refused, one entry per table) when a wanted table
 * is missing or has schema issues. Shared by the SQLite and PostgreSQL deploy paths.
 */
export function refuseUnsyncable(tables: TableInfo[], wanted: string[]): void {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const refused: RefusedTable[] = [];
  for (const name of wanted) {
    const t = byName.get(name);
    if (t === undefined) refused.push({ table: name, issues: [{ rule: 'D1.1-missing', message: `Table ${name} does not exist` }] });
    else if (t.issues.length > 0) refused.push({ table: name, issues: t.issues });
  }
  if (refused.length > 0) {
    const summary = refused.map((r) => `${r.table}: ${r.issues.map((i) => i.message).join('; ')}`).join(' | ');
    throw new ApiError('SCHEMA_ISSUES', `Some tables cannot be synced: ${summary}`, { details: { refused } });
  }
}

/** A CoreError raised by an engine's init/cleanup as SCHEMA_ISSUES for its table; anything else unchanged. */
export function engineErrorToApi(e: unknown): unknown {
  if (!isCoreError(e)) return e;
  const issues = Array.isArray(e.details['issues'])
    ? (e.details['issues'] as { rule?: unknown; message?: unknown }[]).map((i) => ({ rule: String(i.rule ?? e.code), message: String(i.message ?? e.message) }))
    : [{ rule: e.code, message: e.message }];
  return new ApiError('SCHEMA_ISSUES', e.message, { cause: e, details: { refused: [{ table: String(e.details['table'] ?? ''), issues }] } });
}

/**
 * Who runs the control plane's work on a SQLITE database's central file: the sync service's
 * owner of the file (`CentralDatabases`: schema changes serialised with merges, its connection
 * and central workers told of them), or {@link directCentralFiles} before one is attached.
 */
export interface CentralFileOwner {
  /** A schema change (deploy, cleanup, block columns, visibility renewal), synchronous, on the owner's connection. */
  withSchemaChange<T>(databaseId: string, path: string, fn: (engine: SyncEngine) => T): Promise<T>;
  /** A read of the schema (tables, schema history, RLS preview), synchronous, on the owner's connection. */
  readSchema<T>(databaseId: string, path: string, fn: (engine: SyncEngine) => T): Promise<T>;
}

/** No owner: each call opens the file on a connection of its own (which notices schema changes by itself). */
export const directCentralFiles: CentralFileOwner = {
  withSchemaChange: (_id, path, fn) => Promise.resolve(onOwnConnection(path, fn)),
  readSchema: (_id, path, fn) => Promise.resolve(onOwnConnection(path, fn)),
};

function onOwnConnection<T>(path: string, fn: (engine: SyncEngine) => T): T {
  const engine = openSyncDatabase(path, { mustExist: true });
  try {
    return fn(engine);
  } finally {
    engine.close();
  }
}

/** CONNECTION_FAILED when the central file of a SQLITE database is missing. */
export function requireCentralFile(path: string): void {
  if (!existsSync(path)) throw new ApiError('CONNECTION_FAILED', 'The database file does not exist; run restoreConnection', { details: { code: 'FILE_MISSING' } });
}

/** Opens the SQLite file of a SQLITE database on a connection of its own; CONNECTION_FAILED when the file is missing. */
export function openTableEngine(path: string): TableEngine {
  requireCentralFile(path);
  return tableEngineOf(openSyncDatabase(path));
}

/** The table operations on an open engine (`close` closes it). */
export function tableEngineOf(engine: SyncEngine): TableEngine {
  return {
    listTables: () => engine.listTables().map((t) => ({
      name: t.name,
      columns: t.columns.map((c) => ({ name: c.name, type: c.type, notNull: c.notNull, defaultValue: c.defaultValue, pk: c.pk })),
      issues: [...t.issues.map((i) => ({ rule: i.rule, message: i.message })), ...uniqueIssues(t.name, sqliteUniqueSets(engine.driver, t.name))],
      synced: t.synced,
      algorithm: t.algorithm === 'cls' || t.algorithm === 'gos' ? t.algorithm : null,
      blockColumns: t.synced ? engine.blockColumns(t.name) : [],
    })),
    init: (table, algorithm = 'cls', flags = 0) => engine.init(table, algorithm, flags),
    cleanup: (table) =>
      engine.driver.transaction(() => {
        // The core's cleanup keeps the block-column marks and cells (engine/blocks.ts): a table
        // added again later starts without them, as after cloudsync_cleanup on a device. Deleted
        // first, so the cleanup's reload of the engine's tables sees them gone.
        for (const meta of ['offsync_block_columns', 'offsync_blocks']) {
          if (engine.driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").getRaw(meta) === undefined) continue;
          engine.driver.prepare(`DELETE FROM ${meta} WHERE tbl = ? COLLATE NOCASE`).run(table);
        }
        engine.cleanup(table);
      }),
    setBlockColumn: (table, column) => engine.setBlockColumn(table, column),
    syncedTables: () => engine.syncedTables().map((t) => t.name),
    transaction: (fn) => engine.driver.transaction(fn),
    renewVisibility: (changes) =>
      engine.driver.transaction(() => {
        for (const c of changes) {
          if (engine.table(c.table) === undefined) continue;
          const v = engine.renewTable(c.table) ?? engine.dbVersion();
          recordPolicyChange(engine.driver, { table: c.table, dbVersion: v, mode: c.mode, select: c.select });
        }
      }),
    schemaHistory: () => {
      const current = new Set([engine.schemaHash().toString(), engine.ddlSchemaHash().toString()]);
      return engine.driver.prepare('SELECT hash, seq, kind FROM offsync_schema_versions ORDER BY seq').all().map((r) => {
        const hash = schemaHashFromInt64(r['hash'] as bigint).toString();
        return { hash, seq: Number(r['seq']), kind: String(r['kind']), current: current.has(hash) };
      });
    },
    close: () => engine.close(),
  };
}
