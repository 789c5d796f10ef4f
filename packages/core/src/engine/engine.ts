/**
 * The CRDT sync engine over one SQLite database: table initialisation (§P6), change tracking
 * by triggers (§P5), the change feed (§P5) and the merge (§P5) — the same engine runs in the
 * server (one central database per synced database) and in the client library.
 */
import { bytesKey } from '../codec/bytes.ts';
import { decodePayload, encodePayload, fragmentAssemblerFor, PayloadEncoder } from '../codec/payload.ts';
import type { PayloadDecodeLimits } from '../codec/payload.ts';
import { CoreError, CoreErrorCode } from '../errors.ts';
import { listUserTableNames, readTableSchema, schemaIssues } from '../schema/introspect.ts';
import type { ColumnInfo, SchemaIssue } from '../schema/introspect.ts';
import { columnListSchemaHash, ddlTextSchemaHash, schemaHashFromInt64, schemaHashToInt64 } from '../schema/schema-hash.ts';
import { uuidv7 } from '../clock/site-id.ts';
import type { SqlDriver } from '../storage/driver.ts';
import type { Change, CrdtAlgorithm, SqlValue } from '../types.ts';
import { mergeChanges } from './apply.ts';
import type { ApplyOptions, ApplyResult } from './apply.ts';
import { BlockColumns } from './blocks.ts';
import { changeFeed, FeedCursor } from './extract.ts';
import { assertFeedAbove, compactMetadata, compactionFloor, dropCompactedKeys, liftCompactedKeys } from './compaction.ts';
import type { CompactionResult } from './compaction.ts';
import type { Cursor, FeedHost, FeedOptions } from './extract.ts';
import { BARE_CL, BARE_RECORD_COLUMNS, BASE_METADATA_SQL, LOG_TRIGGER_MARKER, TOMBSTONE_VALUES_SETTING, tombstoneValuesSql, bareRecordValues, cellsTableName, dropBareSql, dropMetaTablesSql, dropTriggersSql, metaTableSql, migrateMetaTablesSql, pkBlobSql, quoteIdent, rowFilterSql, rowsTableName, triggerSql } from './sql-gen.ts';
import { foldWriteLog, pendingVersions } from './write-log.ts';
import { createTableContext } from './table-context.ts';
import type { TableContext } from './table-context.ts';
import { resolveAlgorithm } from './algorithms.ts';
import type { TableSchema } from '../schema/introspect.ts';

/** `offsync_settings` key prefix of a table's row filter (docs/PROTOCOL.md "Row filters"). */
const ROW_FILTER_KEY = 'row_filter:';

export interface EngineOptions {
  /** Milliseconds since the epoch (UUIDv7 timestamps). */
  now?: () => number;
  /** Cryptographically random bytes. */
  randomBytes: (n: number) => Uint8Array;
  /**
   * A stored change that cannot be encoded into a download (e.g. a clock outside the safe range
   * written by an older server) is left out of the page and reported here; default: one
   * `console.error` line. Downloads never fail because of it (docs/PROTOCOL.md "Limits").
   * `change` may be a feed cursor (`feedCursor`) that the next step overwrites: copy what you keep.
   */
  onInvalidStoredChange?: (error: CoreError, change: Change) => void;
  /**
   * Notice schema changes made by other connections (default true): before use, one
   * `PRAGMA schema_version` read, and the table contexts are rebuilt when it moved. False only
   * where one owner makes every schema change and calls {@link SyncEngine.reloadSchema} on the
   * others (the server's central connections); embedded and client use keep the default, since
   * any program may ALTER the file.
   */
  schemaWatch?: boolean;
}

export interface FeedRequest extends Omit<FeedOptions, 'excludeSiteRef'> {
  /** Leave out changes that originated at this site. */
  excludeSiteId?: Uint8Array;
  /**
   * Serve a cursor below the compaction floor anyway (estimates such as a device's backlog);
   * by default such a feed is refused with RESYNC_REQUIRED (compaction.ts).
   */
  allowBelowFloor?: boolean;
}

export interface PayloadApplyOptions extends ApplyOptions {
  /** Refuse payloads whose schema hash is not in this database's history (default true). Hash 0 means "not stated" (0.9.99 clients) and is always accepted. */
  strictSchemaHash?: boolean;
  limits?: PayloadDecodeLimits;
}

export interface TableInfo {
  name: string;
  columns: ColumnInfo[];
  issues: SchemaIssue[];
  synced: boolean;
  enabled: boolean;
  algorithm: CrdtAlgorithm | null;
}

export interface SyncedTable {
  name: string;
  algorithm: CrdtAlgorithm;
  enabled: boolean;
}

export class SyncEngine {
  readonly driver: SqlDriver;
  readonly #opts: EngineOptions;
  #tables = new Map<string, TableContext>();
  /** The column-list schema hash of a `#tables` map (the map is replaced, never edited, on a schema change). */
  #hashOf: { tables: Map<string, TableContext>; hash: bigint } | undefined;
  #siteRefs = new Map<string, number>();
  #siteIds = new Map<number, Uint8Array>();
  #siteId: Uint8Array;
  #alter = new Map<string, string[]>();
  /** `PRAGMA schema_version` when the table contexts were last built. */
  #schemaVersion = -1;
  #keepTombstones = false;
  /** Block-LWW text columns (blocks.ts, docs/PROTOCOL.md "Block columns"). */
  #blocks: BlockColumns | undefined;

  constructor(driver: SqlDriver, opts: EngineOptions) {
    this.driver = driver;
    this.#opts = opts;
    driver.exec(BASE_METADATA_SQL);
    const own = driver.prepare('SELECT site_id FROM offsync_sites WHERE id = 0').getRaw();
    if (own === undefined) {
      this.#siteId = uuidv7((opts.now ?? Date.now)(), opts.randomBytes);
      driver.prepare('INSERT INTO offsync_sites (id, site_id) VALUES (0, ?)').run(this.#siteId);
    } else this.#siteId = own[0] as Uint8Array;
    this.#siteIds.set(0, this.#siteId);
    this.#siteRefs.set(bytesKey(this.#siteId), 0);
    this.#upgradeLayout();
    this.#loadTables();
    this.#upgradeTriggers();
    this.foldPending();
  }

  /**
   * Files written by an older OffSync keep clock tables keyed by the key blob (cells with a `pk`
   * column): each is converted to the row-id layout (sql-gen.ts `metaTableSql`), all in one
   * transaction, every clock kept.
   */
  #upgradeLayout(): void {
    const old = (): string[] =>
      (this.driver.prepare('SELECT tbl FROM offsync_tables').all() as { tbl: string }[])
        .map((r) => String(r.tbl))
        .filter((tbl) => this.driver.prepare('SELECT 1 FROM pragma_table_info(?) WHERE name = ?').getRaw(cellsTableName(tbl), 'pk') !== undefined);
    if (old().length === 0) return;
    // Read again under the write lock: another connection may have converted the file in between.
    this.driver.transaction(() => {
      for (const tbl of old()) this.driver.exec(migrateMetaTablesSql(tbl));
    });
  }

  /**
   * Files written by an older OffSync have triggers that write the clock tables row by row:
   * they are replaced by triggers writing the log (same clocks, folded later).
   */
  #upgradeTriggers(): void {
    const stale = this.syncedTables().filter((t) => {
      if (!t.enabled || this.table(t.name) === undefined) return false;
      const ins = this.driver.prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?").getRaw(`offsync_ins_${t.name}`);
      return ins !== undefined && !String(ins[0]).includes(LOG_TRIGGER_MARKER);
    });
    if (stale.length === 0) return;
    this.driver.transaction(() => {
      for (const t of stale) {
        const ctx = this.#require(t.name);
        this.driver.exec(dropTriggersSql(ctx.name));
        this.driver.exec(this.#triggerSql(ctx.schema, ctx.colIds, ctx.algorithm));
      }
    });
    this.#loadTables();
  }

  /** Trigger SQL of a table with the database's current settings (row filter, tombstone values). */
  #triggerSql(schema: TableSchema, columnIds: ReadonlyMap<string, number>, algorithm: CrdtAlgorithm, filter = this.#checkedFilter(schema)): string {
    return triggerSql({ schema, columnIds, algorithm, filter, keepTombstoneValues: this.#keepTombstones });
  }

  /**
   * Folds the writes the triggers logged (any connection's) into the clock tables
   * (write-log.ts). The engine does it before every read or write of the clock tables; call it
   * before reading them directly. Returns how many versions were folded.
   */
  foldPending(): number {
    if (pendingVersions(this.driver) === 0) return 0;
    this.#refresh();
    return foldWriteLog(this.driver, (n) => this.table(n), checkLocalClock);
  }

  /**
   * Marks `column` of synced `table` as a block-LWW text column, like a 1.1.x device's
   * `cloudsync_set_column(table, column, 'algo', 'block')` (docs/PROTOCOL.md "Block columns"):
   * block cells of it are merged per block and its text is kept materialised here.
   */
  setBlockColumn(table: string, column: string): void {
    const ctx = this.#require(table);
    const col = ctx.schema.columns.find((c) => c.name.toLowerCase() === column.toLowerCase() && c.pk === 0);
    if (col === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${column} does not exist in table ${ctx.name}`, { details: { table: ctx.name, column } });
    this.#blockColumns().mark(ctx.name, col.name);
  }

  /** The block-LWW columns of `table`. */
  blockColumns(table: string): string[] {
    return this.#blockColumns().columnsOf(table);
  }

  /** Folds this database's own writes of block columns since the last fold into block cells (blocks.ts). */
  #foldBlockWrites(blocks: BlockColumns): void {
    const key = 'blocks_folded_through';
    this.driver.transaction(() => {
      this.foldPending();
      const through = Number(this.driver.prepare('SELECT value FROM offsync_settings WHERE key = ?').getRaw(key)?.[0] ?? 0);
      const now = this.dbVersion();
      if (now <= through) return;
      const tables = [...this.#tables.values()].filter((t) => blocks.columnsOf(t.name).length > 0);
      const local = [...changeFeed({ tableContexts: () => tables, siteIdOf: (ref) => this.#siteIdOf(ref) }, { localOnly: true, after: { dbVersion: through, seq: Number.MAX_SAFE_INTEGER } })];
      const v = blocks.foldLocalWrites(
        {
          table: (n) => this.table(n),
          siteRef: (s) => this.#siteRef(s),
          clock: () => this.dbVersion(),
          setClock: (c) => this.driver.prepare('UPDATE offsync_clock SET v = max(v, ?) WHERE id = 1').run(BigInt(checkLocalClock(c))),
          savepoint: (fn) => this.driver.transaction(fn),
        },
        local,
      );
      this.driver.prepare('INSERT OR REPLACE INTO offsync_settings (key, value) VALUES (?, ?)').run(key, BigInt(v ?? now));
    });
  }

  #blockColumns(): BlockColumns {
    this.#blocks ??= new BlockColumns(this.driver);
    return this.#blocks;
  }

  /** This database's 16-byte site id. */
  get siteId(): Uint8Array {
    return this.#siteId;
  }

  /**
   * Gives this database a new site id (a device that starts over after `resync_required`, with its
   * synced tables emptied: a download excludes the requesting site's own changes, so under its old
   * id it would never get back the rows it wrote). Clocks already stored under site 0 keep meaning
   * "this database".
   */
  renewSiteId(): Uint8Array {
    const id = uuidv7((this.#opts.now ?? Date.now)(), this.#opts.randomBytes);
    this.driver.prepare('UPDATE offsync_sites SET site_id = ? WHERE id = 0').run(id);
    this.#siteRefs.delete(bytesKey(this.#siteId));
    this.#siteId = id;
    this.#siteIds.set(0, id);
    this.#siteRefs.set(bytesKey(id), 0);
    return id;
  }

  /** The current db_version (Lamport clock), counting local writes not folded yet. */
  dbVersion(): number {
    return Number((this.driver.prepare('SELECT v + (SELECT COALESCE(max(id), 0) FROM offsync_write_log) FROM offsync_clock WHERE id = 1').getRaw() ?? [0n])[0]);
  }

  syncedTables(): SyncedTable[] {
    return this.driver
      .prepare('SELECT tbl, algo, enabled FROM offsync_tables ORDER BY tbl')
      .all()
      .map((r) => ({ name: String(r['tbl']), algorithm: r['algo'] as CrdtAlgorithm, enabled: Number(r['enabled']) !== 0 }));
  }

  /** Every user table with its columns, its §P6 issues and whether it syncs. */
  listTables(): TableInfo[] {
    const synced = new Map(this.syncedTables().map((t) => [t.name.toLowerCase(), t]));
    return listUserTableNames(this.driver).map((name) => {
      const schema = readTableSchema(this.driver, name);
      const s = synced.get(name.toLowerCase());
      return {
        name,
        columns: schema?.columns ?? [],
        issues: schemaIssues(schema, name),
        synced: s !== undefined,
        enabled: s?.enabled ?? false,
        algorithm: s?.algorithm ?? null,
      };
    });
  }

  /** Runtime context of a synced table (case-insensitive), or undefined. */
  table(name: string): TableContext | undefined {
    return this.#tables.get(name.toLowerCase());
  }

  /**
   * Initialises `table` for sync: checks §P6, creates its clock table and triggers and
   * back-fills clocks for rows that already exist (they become local changes to send).
   * Idempotent for the same algorithm.
   */
  init(table: string, algorithm?: string, flags = 0): void {
    const algo = resolveAlgorithm(algorithm);
    this.driver.transaction(() => {
      this.foldPending();
      const schema = readTableSchema(this.driver, table);
      const issues = schemaIssues(schema, table, flags);
      if (schema === undefined || issues.length > 0) {
        throw new CoreError(CoreErrorCode.SCHEMA_INVALID, issues.map((i) => i.message).join('; '), { details: { table, issues } });
      }
      const existing = this.driver.prepare('SELECT algo FROM offsync_tables WHERE tbl = ? COLLATE NOCASE').getRaw(schema.name);
      if (existing !== undefined && existing[0] !== algo) {
        throw new CoreError(CoreErrorCode.ALGORITHM_CHANGE, 'The function cloudsync_cleanup(table) must be called before changing a table algorithm');
      }
      this.driver.exec(metaTableSql(schema.name));
      this.driver.prepare('INSERT OR IGNORE INTO offsync_tables (tbl, algo, enabled) VALUES (?, ?, 1)').run(schema.name, algo);
      const ids = this.#assignColumnIds(schema.name, schema.valueColumns.map((c) => c.name));
      this.driver.exec(dropTriggersSql(schema.name));
      this.driver.exec(this.#triggerSql(schema, ids, algo));
      this.#loadTables();
      this.#backfill(schema.name);
      this.#recordSchemaHash();
    });
  }

  /**
   * Sets (`expression`) or clears (null) the row filter of synced `table`, like a 1.1.x device's
   * `cloudsync_set_filter` / `cloudsync_clear_filter` (docs/PROTOCOL.md "Row filters"): one SQL
   * expression over the table's bare column names, added to the change-tracking triggers'
   * conditions (NEW for inserts and updates, OLD for deletes), so local writes of rows outside it
   * are not recorded; merges are not filtered. Existing clocks are kept. Kept in
   * `offsync_settings`, so it survives reopening. An expression that does not compile as one
   * expression over the columns is refused (INVALID_ARGUMENT) and nothing changes.
   */
  setRowFilter(table: string, expression: string | null): void {
    const ctx = this.#require(table);
    const key = ROW_FILTER_KEY + ctx.name;
    this.driver.transaction(() => {
      this.foldPending();
      if (expression === null) this.driver.prepare('DELETE FROM offsync_settings WHERE key = ?').run(key);
      else {
        validateRowFilter(this.driver, ctx.schema, expression);
        this.driver.prepare('INSERT OR REPLACE INTO offsync_settings (key, value) VALUES (?, ?)').run(key, expression);
      }
      if (!this.isEnabled(ctx.name)) return;
      this.driver.exec(dropTriggersSql(ctx.name));
      this.driver.exec(this.#triggerSql(ctx.schema, ctx.colIds, ctx.algorithm, expression ?? undefined));
    });
  }

  /** The row filter of `table`, or undefined. */
  rowFilter(table: string): string | undefined {
    const name = this.table(table)?.name ?? table;
    const r = this.driver.prepare('SELECT value FROM offsync_settings WHERE key = ?').getRaw(ROW_FILTER_KEY + name);
    return r === undefined || r[0] === null ? undefined : String(r[0]);
  }

  /** The stored filter of a table about to get triggers, checked against its (possibly altered) columns. */
  #checkedFilter(schema: TableSchema): string | undefined {
    const f = this.rowFilter(schema.name);
    if (f !== undefined) validateRowFilter(this.driver, schema, f);
    return f;
  }

  /** ` WHERE (filter)` for a scan of the table aliased NEW, or ''. Validated filters only name columns. */
  #filterWhere(table: string): string {
    const f = this.rowFilter(table);
    return f === undefined ? '' : ` WHERE (\n${f}\n)`;
  }

  /** Stops syncing `table` and removes its metadata (the table's rows stay). */
  cleanup(table: string): void {
    this.driver.transaction(() => {
      this.foldPending();
      const ctx = this.#require(table);
      this.driver.exec(dropTriggersSql(ctx.name));
      this.driver.exec(dropMetaTablesSql(ctx.name));
      this.driver.prepare('DELETE FROM offsync_tables WHERE tbl = ?').run(ctx.name);
      this.driver.prepare('DELETE FROM offsync_columns WHERE tbl = ?').run(ctx.name);
      this.driver.prepare('DELETE FROM offsync_settings WHERE key = ?').run(ROW_FILTER_KEY + ctx.name);
      dropCompactedKeys(this.driver, ctx.name);
      this.#loadTables();
      this.#recordSchemaHash();
    });
  }

  /** Pauses (false) or resumes (true) change tracking of a table without losing its metadata. */
  setEnabled(table: string, enabled: boolean): void {
    this.driver.transaction(() => {
      this.foldPending();
      const ctx = this.#require(table);
      this.driver.prepare('UPDATE offsync_tables SET enabled = ? WHERE tbl = ?').run(enabled ? 1n : 0n, ctx.name);
      this.driver.exec(dropTriggersSql(ctx.name));
      if (enabled) this.driver.exec(this.#triggerSql(ctx.schema, ctx.colIds, ctx.algorithm));
    });
  }

  isEnabled(table: string): boolean {
    const r = this.driver.prepare('SELECT enabled FROM offsync_tables WHERE tbl = ? COLLATE NOCASE').getRaw(table);
    return r !== undefined && Number(r[0]) !== 0;
  }

  /** Starts a schema change of `table` (§P6): opens savepoint `offsync_alter` and removes the triggers. */
  beginAlter(table: string): void {
    const ctx = this.#require(table);
    if (this.#alter.has(ctx.name.toLowerCase())) throw new CoreError(CoreErrorCode.INVALID_STATE, `cloudsync_begin_alter was already called for table ${ctx.name}`);
    this.foldPending();
    this.driver.exec('SAVEPOINT offsync_alter');
    this.driver.exec(dropTriggersSql(ctx.name));
    this.#alter.set(ctx.name.toLowerCase(), ctx.schema.pkColumns.map((c) => c.name.toLowerCase()));
  }

  /**
   * Finishes a schema change: a changed primary key rebuilds the clocks; otherwise clocks of
   * dropped columns and vanished rows are removed and new columns are back-filled as local
   * changes. Records the new schema hash.
   */
  commitAlter(table: string): void {
    const key = table.toLowerCase();
    const oldPk = this.#alter.get(key);
    if (oldPk === undefined) throw new CoreError(CoreErrorCode.INVALID_STATE, `cloudsync_begin_alter must be called before cloudsync_commit_alter (table ${table})`);
    try {
      // Other tables' writes during the alter: folded before the back-fills below take versions.
      foldWriteLog(this.driver, (n) => this.table(n), checkLocalClock);
      const ctx = this.#require(table);
      const schema = readTableSchema(this.driver, ctx.name);
      const issues = schemaIssues(schema, table, 0b11);
      if (schema === undefined || issues.length > 0) throw new CoreError(CoreErrorCode.SCHEMA_INVALID, issues.map((i) => i.message).join('; '));
      this.#checkedFilter(schema); // a row filter naming a dropped column refuses the change
      const rows = quoteIdent(rowsTableName(ctx.name));
      const cells = quoteIdent(cellsTableName(ctx.name));
      const pkChanged = schema.pkColumns.map((c) => c.name.toLowerCase()).join(',') !== oldPk.join(',');
      const before = new Set(ctx.colIds.keys());
      if (pkChanged) {
        this.driver.exec(`DELETE FROM ${rows}; DELETE FROM ${cells};`);
      } else {
        const gone = [...ctx.colIds].filter(([name]) => !schema.valueColumns.some((c) => c.name === name));
        for (const [name, id] of gone) {
          this.driver.prepare(`DELETE FROM ${cells} WHERE col = ?`).run(BigInt(id));
          this.driver.prepare('DELETE FROM offsync_columns WHERE tbl = ? AND name = ?').run(ctx.name, name);
        }
        if (gone.length > 0) this.driver.exec(dropBareSql(ctx.name));
      }
      const ids = this.#assignColumnIds(ctx.name, schema.valueColumns.map((c) => c.name));
      this.#loadTables();
      if (!pkChanged) {
        this.#dropVanishedRows(ctx.name);
        this.#backfillColumns(ctx.name, [...ids.keys()].filter((n) => !before.has(n)));
      }
      this.driver.exec(this.#triggerSql(schema, ids, ctx.algorithm));
      this.#backfill(ctx.name);
      this.#recordSchemaHash();
      this.driver.exec('RELEASE offsync_alter');
    } catch (e) {
      this.driver.exec('ROLLBACK TO offsync_alter; RELEASE offsync_alter');
      this.#loadTables();
      throw e;
    } finally {
      this.#alter.delete(key);
    }
  }

  /** The current schema hash (column-list variant, §P6) of the synced tables. */
  schemaHash(): bigint {
    this.#refresh();
    // The table contexts are replaced whole on every schema change: the hash of one set is kept.
    const cached = this.#hashOf;
    if (cached?.tables === this.#tables) return cached.hash;
    const hash = columnListSchemaHash(
      [...this.#tables.values()].map((t) => ({ name: t.name, columns: t.schema.columns.map((c) => ({ name: c.name, type: c.type, pk: c.pk > 0 })) })),
    );
    this.#hashOf = { tables: this.#tables, hash };
    return hash;
  }

  /** The DDL-text schema hash (§P6) that 0.8.x – 0.9.99 peers compute. */
  ddlSchemaHash(): bigint {
    const names = new Set([...this.#tables.values()].map((t) => t.name));
    const sqls = this.driver
      .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'table'`)
      .all()
      .filter((r) => names.has(String(r['name'])))
      .map((r) => String(r['sql']));
    return ddlTextSchemaHash(sqls);
  }

  /** Every schema hash this database has had (both variants). */
  knownSchemaHashes(): bigint[] {
    return this.driver
      .prepare('SELECT hash FROM offsync_schema_versions ORDER BY seq')
      .all()
      .map((r) => schemaHashFromInt64(r['hash'] as bigint));
  }

  isKnownSchemaHash(hash: bigint): boolean {
    return this.driver.prepare('SELECT 1 FROM offsync_schema_versions WHERE hash = ?').getRaw(schemaHashToInt64(hash)) !== undefined;
  }

  /** Adds a hash to the history (e.g. one a client uploaded with, accepted in lenient mode). */
  rememberSchemaHash(hash: bigint, kind = 'peer'): void {
    this.driver
      .prepare('INSERT OR IGNORE INTO offsync_schema_versions (hash, seq, kind) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM offsync_schema_versions), ?)')
      .run(schemaHashToInt64(hash), kind);
  }

  /** Changes after a cursor in (db_version, seq) order; see {@link FeedOptions}. */
  changes(req: FeedRequest = {}): Generator<Change> {
    const { host, opts } = this.#feed(req);
    return changeFeed(host, opts);
  }

  /**
   * The same feed as {@link changes}, as one {@link FeedCursor}: `next()` overwrites its Change
   * fields (no object per change; a caller that keeps a change must copy it), `close()` ends it
   * early. For consumers that only look at each change once, such as a page encoder.
   */
  feedCursor(req: FeedRequest = {}): FeedCursor {
    const { host, opts } = this.#feed(req);
    return new FeedCursor(host, opts);
  }

  /**
   * Whether the feed after `after` holds at least `n` entries: an estimate for choosing where to
   * build it (a server's central worker, or the caller's thread), not a count of changes. Row
   * events and cells above the cursor on their `(db_version, seq)` indexes, plus writes not
   * folded yet, each count bounded by what is left of `n`: O(min(n, backlog)) index steps, no
   * fold, no value read. Entries of block columns are not counted.
   */
  feedAtLeast(after: Cursor, n: number): boolean {
    this.#refresh();
    let left = Math.max(0, Math.trunc(n));
    if (left === 0) return true;
    const v = BigInt(after.dbVersion);
    const seq = BigInt(Math.min(after.seq, Number.MAX_SAFE_INTEGER));
    /** Rows of `source` (a table, filtered), counted up to what is left of `n`. */
    const upToLeft = (source: string, ...params: SqlValue[]): number => Number(this.driver.prepare(`SELECT count(*) FROM (SELECT 1 FROM ${source} LIMIT ?)`).getRaw(...params, BigInt(left))?.[0] ?? 0);
    left -= upToLeft('offsync_write_log');
    for (const ctx of this.#tables.values()) {
      for (const name of [rowsTableName(ctx.name), cellsTableName(ctx.name)]) {
        if (left <= 0) return true;
        left -= upToLeft(`${quoteIdent(name)} WHERE (db_version, seq) > (?, ?)`, v, seq);
      }
    }
    return left <= 0;
  }

  /** `encodeChanges([...changes(req)])` without the array and the objects: the same bytes. */
  encodeFeed(req: FeedRequest = {}, schemaHash = this.schemaHash()): Uint8Array | null {
    const cur = this.feedCursor(req);
    const enc = new PayloadEncoder({ schemaHash });
    try {
      while (cur.next()) enc.add(cur);
    } finally {
      cur.close();
    }
    return enc.finish();
  }

  #feed(req: FeedRequest): { host: FeedHost; opts: FeedOptions } {
    this.foldPending();
    this.#refresh();
    const { excludeSiteId, allowBelowFloor, ...rest } = req;
    if (allowBelowFloor !== true && req.localOnly !== true) assertFeedAbove(this.driver, req.after);
    const opts: FeedOptions = rest;
    if (excludeSiteId !== undefined) {
      const ref = this.#siteRefs.get(bytesKey(excludeSiteId)) ?? this.#lookupSiteRef(excludeSiteId);
      if (ref !== undefined) opts.excludeSiteRef = ref;
    }
    const blocks = this.#blockColumns();
    if (blocks.any && req.localOnly !== true) this.#foldBlockWrites(blocks);
    return { host: { tableContexts: () => [...this.#tables.values()], siteIdOf: (ref) => this.#siteIdOf(ref), ...(blocks.any ? { blocks } : {}) }, opts };
  }

  /**
   * Tombstone compaction (compaction.ts; docs/PROTOCOL.md "Compaction and the resync horizon"):
   * in one transaction, forgets deleted rows whose deletion is ≤ `upTo` (records, cells, last
   * values) and removals addressed to one principal at versions ≤ `upTo`, and raises the floor
   * (`compactionFloor()`) to `upTo`. Only for a central database, with `upTo` at most the
   * smallest version every device has acknowledged; later feeds from a cursor that has not seen
   * `upTo` are refused with RESYNC_REQUIRED.
   */
  compact(opts: { upTo: number }): CompactionResult {
    this.#refresh();
    return this.driver.transaction(() => {
      this.foldPending();
      return compactMetadata(this.driver, [...this.#tables.values()], opts.upTo, this.dbVersion());
    });
  }

  /** The compaction floor (0 = never compacted): feeds must have seen every version ≤ it. */
  compactionFloor(): number {
    return compactionFloor(this.driver);
  }

  /** Encodes changes into one v2 payload stamped with `schemaHash` (default: current). Null when empty. */
  encodeChanges(changes: Iterable<Change>, schemaHash = this.schemaHash()): Uint8Array | null {
    return encodePayload(changes, { schemaHash });
  }

  /** A streaming payload encoder stamped with `schemaHash` (default: current); it skips and reports changes it cannot encode. */
  payloadEncoder(schemaHash = this.schemaHash()): PayloadEncoder {
    return new PayloadEncoder({ schemaHash, onInvalidChange: this.#opts.onInvalidStoredChange ?? reportInvalidStoredChange });
  }

  /**
   * Merges a batch atomically: all of it or, when anything fails, none of it — except rows the
   * merge rejects on their own (`ApplyResult.rejected`: a judge's refusal, a primary-key type
   * mismatch, a constraint violation) when the caller is authoritative (`judge` or
   * `rejectRows`), which are rolled back alone and compensated. With `rejectRows` and no judge,
   * a batch that hits a constraint error is merged again row by row, so the happy path pays no
   * savepoints.
   */
  applyChanges(changes: Iterable<Change>, opts: ApplyOptions = {}): ApplyResult {
    this.foldPending();
    this.#refresh();
    const all = Array.isArray(changes) ? (changes as Change[]) : [...changes];
    const blockColumns = this.#blockColumns();
    const { rest: given, blocks: blocksGiven } = blockColumns.split(all);
    // Own writes of the text first: the merge rewrites it from the blocks.
    if (blocksGiven.length > 0) this.#foldBlockWrites(blockColumns);
    const run = (o: ApplyOptions): ApplyResult =>
      this.driver.transaction(() => {
        const flag = this.driver.prepare('UPDATE offsync_clock SET applying = ? WHERE id = 1');
        flag.run(1n);
        // Rows re-inserted over forgotten tombstones are lifted above them (compaction.ts).
        const [list, blocks] = liftCompactedKeys(this.driver, (n) => this.table(n), this.#siteId, given, blocksGiven);
        const result = mergeChanges(
          {
            table: (n) => this.table(n),
            siteRef: (s) => this.#siteRef(s),
            clock: () => this.dbVersion(),
            setClock: (v) => this.driver.prepare('UPDATE offsync_clock SET v = max(v, ?) WHERE id = 1').run(BigInt(checkLocalClock(v))),
            savepoint: (fn) => this.driver.transaction(fn),
            // Not cached: a site registered by this very merge may still roll back.
            siteIdOf: (ref) => (this.driver.prepare('SELECT site_id FROM offsync_sites WHERE id = ?').getRaw(BigInt(ref))?.[0] as Uint8Array | undefined) ?? new Uint8Array(16),
            keepTombstoneValues: this.#keepTombstones,
          },
          list,
          o,
        );
        const merged = blocks.length === 0 ? result : blockColumns.merge(
          {
            table: (n) => this.table(n),
            siteRef: (s) => this.#siteRef(s),
            clock: () => this.dbVersion(),
            setClock: (v) => this.driver.prepare('UPDATE offsync_clock SET v = max(v, ?) WHERE id = 1').run(BigInt(checkLocalClock(v))),
            savepoint: (fn) => this.driver.transaction(fn),
          },
          blocks,
          o,
          result,
        );
        flag.run(0n);
        return merged;
      });
    if (opts.rejectRows !== true || opts.judge !== undefined || opts.isolateRows === true) return run(opts);
    try {
      return run(opts);
    } catch (e) {
      const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
      if (!code.startsWith('SQLITE_CONSTRAINT')) throw e;
      return run({ ...opts, isolateRows: true });
    }
  }

  /**
   * Starts a new life of every live row of `table` at one new version (causal length + 2, the
   * row's clocks re-stamped as this database's writes), for a change of who may see what (an RLS
   * policy or mode change): every device receives the rows its user may now see whole, and the
   * feed sends removals of rows its user could see at the device's cursor but no longer can
   * (`FeedOptions.priorFilter`). Returns the version, or undefined when the table has no live row.
   */
  renewTable(table: string): number | undefined {
    this.#refresh();
    const ctx = this.#require(table);
    return this.driver.transaction(() => {
      this.foldPending();
      const rows = quoteIdent(rowsTableName(ctx.name));
      const cells = quoteIdent(cellsTableName(ctx.name));
      const live = this.driver.prepare(`SELECT count(*) FROM ${rows} WHERE cl % 2 = 1`).getRaw();
      if (live === undefined || Number(live[0]) === 0) return undefined;
      const v = this.dbVersion() + 1;
      const stride = ctx.columns.length + 2;
      this.driver.exec(`UPDATE offsync_clock SET v = ${v} WHERE id = 1`);
      // The values each live row had when the rules changed: what a device could see at its cursor.
      this.driver.prepare(
        `INSERT OR REPLACE INTO offsync_prior (tbl, pk, db_version, vals)
         SELECT ?, ${pkExprFor(ctx)}, ?, ${tombstoneValuesSql(ctx.schema.columns.map((c) => c.name), 'NEW')} FROM ${quoteIdent(ctx.name)} AS NEW`,
      ).run(ctx.name, BigInt(v));
      this.driver.prepare(
        `UPDATE ${rows} SET cl = cl + 2, sent = 1, db_version = ?, seq = x.n * ${stride}, site = 0
         FROM (SELECT pk AS k, row_number() OVER (ORDER BY pk) AS n FROM ${rows} WHERE cl % 2 = 1) x WHERE ${rows}.pk = x.k`,
      ).run(BigInt(v));
      if (ctx.columns.length > 0) {
        const ord = `CASE ${cells}.col ${ctx.columns.map((c) => `WHEN ${c.id} THEN ${c.ord}`).join(' ')} ELSE 0 END`;
        this.driver.prepare(
          `UPDATE ${cells} SET db_version = ?, seq = r.seq + 1 + ${ord}, site = 0
           FROM ${rows} r WHERE r.rid = ${cells}.rid AND r.cl % 2 = 1`,
        ).run(BigInt(v));
      }
      return v;
    });
  }

  /**
   * Central databases under row-level security keep the last values of deleted rows
   * (`offsync_tombstones`), so a deletion reaches only the users whose SELECT policy allowed the
   * row (docs/ARCHITECTURE.md "RLS model"). Off by default (devices do not need it).
   */
  setKeepTombstoneValues(on: boolean): void {
    if (on === this.#keepTombstones) return;
    const run = (): void => this.driver.transaction(() => {
      this.foldPending();
      if (on) this.driver.prepare('INSERT OR REPLACE INTO offsync_settings (key, value) VALUES (?, 1)').run(TOMBSTONE_VALUES_SETTING);
      else this.driver.prepare('DELETE FROM offsync_settings WHERE key = ?').run(TOMBSTONE_VALUES_SETTING);
      this.#keepTombstones = on;
      // The delete and key-change triggers write last values only when the setting is on.
      for (const t of this.syncedTables()) {
        const ctx = this.table(t.name);
        if (ctx === undefined || !t.enabled || ctx.algorithm === 'gos') continue;
        this.driver.exec(dropTriggersSql(ctx.name));
        this.driver.exec(this.#triggerSql(ctx.schema, ctx.colIds, ctx.algorithm));
      }
    });
    try {
      run();
    } catch (e) {
      this.#keepTombstones = !on;
      throw e;
    }
  }

  /** Decodes and merges a payload atomically, checking its schema hash first (§P6). */
  applyPayload(payload: Uint8Array, opts: PayloadApplyOptions = {}): ApplyResult & { schemaHash: bigint } {
    const { header, changes } = decodePayload(payload, opts.limits);
    if ((opts.strictSchemaHash ?? true) && header.schemaHash !== 0n && !this.isKnownSchemaHash(header.schemaHash)) {
      throw new CoreError(CoreErrorCode.SCHEMA_HASH_UNKNOWN, `Cannot apply the received payload because the schema hash is unknown ${header.schemaHash}.`, {
        details: { schemaHash: header.schemaHash.toString() },
      });
    }
    return { ...this.applyChanges(changes, opts), schemaHash: header.schemaHash };
  }

  /**
   * Decodes several payloads (the chunks of one G3 batch, in order) and merges all their changes
   * as ONE atomic batch: every schema hash is checked as in {@link applyPayload} before anything
   * is written; a row whose changes are split across two payloads is merged as one row. The
   * returned hash is the last payload's. `limits` apply to each payload. The parts of a
   * fragmented value (payload v3) may be spread over the payloads; a value still incomplete after
   * the last one refuses the whole batch (PAYLOAD_BAD_FRAGMENT).
   */
  applyPayloads(payloads: readonly Uint8Array[], opts: PayloadApplyOptions = {}): ApplyResult & { schemaHash: bigint } {
    const strict = opts.strictSchemaHash ?? true;
    const parts: Change[][] = [];
    let schemaHash = 0n;
    const fragments = fragmentAssemblerFor(opts.limits);
    for (const payload of payloads) {
      const { header, changes } = decodePayload(payload, opts.limits, fragments);
      if (strict && header.schemaHash !== 0n && !this.isKnownSchemaHash(header.schemaHash)) {
        throw new CoreError(CoreErrorCode.SCHEMA_HASH_UNKNOWN, `Cannot apply the received payload because the schema hash is unknown ${header.schemaHash}.`, {
          details: { schemaHash: header.schemaHash.toString() },
        });
      }
      parts.push(changes);
      schemaHash = header.schemaHash;
    }
    fragments.finish();
    const all = function* (): Generator<Change> {
      for (const changes of parts) yield* changes;
    };
    return { ...this.applyChanges(all(), opts), schemaHash };
  }

  close(): void {
    this.driver.close();
  }

  #require(table: string): TableContext {
    const ctx = this.table(table);
    if (ctx === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${table} is not initialised for sync`, { details: { table } });
    return ctx;
  }

  /**
   * Rebuilds the table contexts when the database schema changed behind this engine's back
   * (another connection deployed a table, ran ALTER or cleanup). Cheap: one pragma read.
   */
  #refresh(): void {
    if (this.#alter.size > 0 || this.#opts.schemaWatch === false) return;
    const v = Number((this.driver.prepare('PRAGMA schema_version').getRaw() ?? [0])[0]);
    if (v !== this.#schemaVersion) this.#loadTables();
  }

  /**
   * Rebuilds the table contexts from the database now: for engines opened with
   * `schemaWatch: false`, after another connection changed the schema (deploy, ALTER, cleanup).
   */
  reloadSchema(): void {
    if (this.#alter.size === 0) this.#loadTables();
  }

  #loadTables(): void {
    this.#keepTombstones = this.driver.prepare('SELECT 1 FROM offsync_settings WHERE key = ?').getRaw(TOMBSTONE_VALUES_SETTING) !== undefined;
    this.#schemaVersion = Number((this.driver.prepare('PRAGMA schema_version').getRaw() ?? [0])[0]);
    this.#blocks?.reload();
    const next = new Map<string, TableContext>();
    for (const t of this.syncedTables()) {
      const schema = readTableSchema(this.driver, t.name);
      if (schema === undefined) continue;
      const ids = new Map<string, number>();
      for (const r of this.driver.prepare('SELECT name, id FROM offsync_columns WHERE tbl = ?').all(t.name)) ids.set(String(r['name']), Number(r['id']));
      next.set(t.name.toLowerCase(), createTableContext(this.driver, schema, t.algorithm, ids));
    }
    this.#tables = next;
  }

  #assignColumnIds(table: string, columns: string[]): Map<string, number> {
    const ids = new Map<string, number>();
    for (const r of this.driver.prepare('SELECT name, id FROM offsync_columns WHERE tbl = ?').all(table)) ids.set(String(r['name']), Number(r['id']));
    let next = Math.max(0, ...ids.values()) + 1;
    for (const c of columns) {
      if (ids.has(c)) continue;
      ids.set(c, next);
      this.driver.prepare('INSERT INTO offsync_columns (tbl, name, id) VALUES (?, ?, ?)').run(table, c, BigInt(next));
      next++;
    }
    for (const name of [...ids.keys()]) if (!columns.includes(name)) ids.delete(name);
    return ids;
  }

  /** Row records for existing rows that have no clocks, as one new local version. */
  #backfill(table: string): void {
    const ctx = this.#require(table);
    const t = quoteIdent(ctx.name);
    const rows = quoteIdent(rowsTableName(ctx.name));
    const cells = quoteIdent(cellsTableName(ctx.name));
    const pk = pkExprFor(ctx);
    const bad = this.driver.prepare(`SELECT 1 FROM ${t} AS NEW WHERE ${pk} IS NULL LIMIT 1`).getRaw();
    if (bad !== undefined) {
      throw new CoreError(CoreErrorCode.SCHEMA_INVALID, `Table ${ctx.name} has rows whose primary key is NULL or REAL; OffSync needs TEXT, INTEGER or BLOB key values`);
    }
    const version = BigInt(this.dbVersion() + 1);
    const pkOnly = ctx.columns.length === 0;
    // Rows with a record or explicit cells (a bare record with cells) have clocks already.
    const changed = this.driver
      .prepare(
        `INSERT INTO ${rows} (pk, cl, sent, icv, db_version, seq, site)
         SELECT p.pk, 1, ${pkOnly ? 1 : 0}, ${pkOnly ? 'NULL' : 1}, ?, (row_number() OVER ()) * ${ctx.columns.length + 2}, 0
         FROM (SELECT ${pk} AS pk FROM ${t} AS NEW${this.#filterWhere(ctx.name)}) p
         WHERE NOT EXISTS (SELECT 1 FROM ${rows} r WHERE r.pk = p.pk AND (r.cl <> ${BARE_CL} OR EXISTS (SELECT 1 FROM ${cells} WHERE rid = r.rid)))
         ON CONFLICT (pk) DO UPDATE SET cl = excluded.cl, sent = excluded.sent, icv = excluded.icv, db_version = excluded.db_version, seq = excluded.seq, site = excluded.site`,
      )
      .run(version);
    if (changed > 0) this.driver.prepare('UPDATE offsync_clock SET v = max(v, ?) WHERE id = 1').run(version);
  }

  /** Columns added by ALTER: every live row gets an explicit clock for them, as local changes. */
  #backfillColumns(table: string, names: string[]): void {
    if (names.length === 0) return;
    const ctx = this.#require(table);
    const rows = quoteIdent(rowsTableName(ctx.name));
    const cells = quoteIdent(cellsTableName(ctx.name));
    const version = BigInt(this.dbVersion() + 1);
    const live = `SELECT ${pkExprFor(ctx)} AS pk FROM ${quoteIdent(ctx.name)} AS NEW${this.#filterWhere(ctx.name)}`;
    // The cells need a rid: rows without a record get a bare one.
    this.driver.exec(`INSERT INTO ${rows} ${BARE_RECORD_COLUMNS} SELECT ${bareRecordValues('p.pk')} FROM (${live}) p WHERE true ON CONFLICT (pk) DO NOTHING`);
    for (const name of names) {
      const col = ctx.columns.find((c) => c.name === name);
      if (col === undefined) continue;
      this.driver
        .prepare(
          `INSERT OR IGNORE INTO ${cells} (rid, col, col_version, db_version, seq, site)
           SELECT r.rid, ?, 1, ?, (row_number() OVER ()) * ${ctx.columns.length + 2} + ${col.ord + 1}, 0
           FROM (${live}) p CROSS JOIN ${rows} r ON r.pk = p.pk`,
        )
        .run(BigInt(col.id), version);
    }
    this.driver.prepare('UPDATE offsync_clock SET v = max(v, ?) WHERE id = 1').run(version);
  }

  #dropVanishedRows(table: string): void {
    const ctx = this.#require(table);
    const live = `SELECT ${pkExprFor(ctx)} FROM ${quoteIdent(ctx.name)} AS NEW`;
    const rows = quoteIdent(rowsTableName(ctx.name));
    this.driver.exec(`DELETE FROM ${quoteIdent(cellsTableName(ctx.name))} WHERE rid IN (SELECT rid FROM ${rows} WHERE pk NOT IN (${live}));
      UPDATE ${rows} SET icv = NULL WHERE icv IS NOT NULL AND pk NOT IN (${live});
      ${dropBareSql(ctx.name)}`);
  }

  #recordSchemaHash(): void {
    this.rememberSchemaHash(this.schemaHash(), 'column-list');
    this.rememberSchemaHash(this.ddlSchemaHash(), 'ddl-text');
  }

  #siteRef(siteId: Uint8Array): number {
    const key = bytesKey(siteId);
    const known = this.#siteRefs.get(key) ?? this.#lookupSiteRef(siteId);
    if (known !== undefined) return known;
    if (siteId.length !== 16) throw new CoreError(CoreErrorCode.SITE_ID_INVALID, 'site id must be 16 bytes');
    this.driver.prepare('INSERT INTO offsync_sites (site_id) VALUES (?)').run(siteId);
    const ref = this.#lookupSiteRef(siteId);
    if (ref === undefined) throw new CoreError(CoreErrorCode.APPLY_FAILED, 'could not register site id');
    return ref;
  }

  #lookupSiteRef(siteId: Uint8Array): number | undefined {
    const r = this.driver.prepare('SELECT id FROM offsync_sites WHERE site_id = ?').getRaw(siteId);
    if (r === undefined) return undefined;
    const ref = Number(r[0]);
    // Cache only committed knowledge: a rolled-back insert must not leave a stale mapping.
    if (!this.driver.inTransaction) {
      this.#siteRefs.set(bytesKey(siteId), ref);
      this.#siteIds.set(ref, siteId);
    }
    return ref;
  }

  #siteIdOf(ref: number): Uint8Array {
    const cached = this.#siteIds.get(ref);
    if (cached !== undefined) return cached;
    const r = this.driver.prepare('SELECT site_id FROM offsync_sites WHERE id = ?').getRaw(BigInt(ref));
    if (r === undefined) throw new CoreError(CoreErrorCode.INVALID_STATE, `unknown site reference ${ref}`);
    const id = r[0] as Uint8Array;
    this.#siteIds.set(ref, id);
    return id;
  }
}

/**
 * Guard of the local clock: a merge that would take it out of the safe-integer range is refused
 * (CLOCK_OUT_OF_RANGE, the transaction rolls back), so the database stays encodable. Incoming
 * clocks are bounded by MAX_CLOCK (2^48-1) in the decoder; this only trips on a damaged clock.
 */
export function checkLocalClock(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new CoreError(CoreErrorCode.CLOCK_OUT_OF_RANGE, `local db_version ${v} would leave the safe-integer range`, { details: { dbVersion: String(v) } });
  }
  return v;
}

function reportInvalidStoredChange(error: CoreError, change: Change): void {
  console.error(`offsync: change left out of a download (${error.code}: ${error.message}; table ${change.tbl}, column ${change.col})`);
}

/** The trigger's primary-key encoder, applied to the table aliased as NEW. */
function pkExprFor(ctx: TableContext): string {
  return pkBlobSql(ctx.schema, 'NEW', false);
}



/**
 * A row filter must compile as ONE SQL expression over the table's bare column names (no
 * statement separator, no NEW./OLD. prefixes, no other table's columns outside a subquery):
 * compiled in the same derived-table form the triggers use, with placeholder values.
 */
function validateRowFilter(driver: SqlDriver, schema: TableSchema, expression: string): void {
  const refuse = (reason: string): never => {
    throw new CoreError(CoreErrorCode.INVALID_ARGUMENT, `Invalid row filter for table ${schema.name}: ${reason}`, { details: { table: schema.name, filter: expression, reason } });
  };
  if (expression.trim() === '') refuse('the expression is empty');
  if (expression.includes('\u0000')) refuse('the expression contains a NUL character');
  try {
    driver.prepare(`SELECT ${rowFilterSql(schema, null, expression)}`);
  } catch (e) {
    refuse(e instanceof Error ? e.message : String(e));
  }
}
