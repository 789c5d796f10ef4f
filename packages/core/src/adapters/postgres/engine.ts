/**
 * The CRDT sync engine over one PostgreSQL database, async: same semantics and same wire
 * changes as the SQLite `SyncEngine` (§P6 init checks, §P5 triggers, §P5 merge, §P5 feed).
 */
import { decodePayload, fragmentAssemblerFor } from '../../codec/payload.ts';
import { decodePk } from '../../codec/pk.ts';
import { uuidv7 } from '../../clock/site-id.ts';
import { resolveAlgorithm } from '../../engine/algorithms.ts';
import type { ApplyResult } from '../../engine/apply.ts';
import { checkLocalClock } from '../../engine/engine.ts';
import type { PayloadApplyOptions } from '../../engine/engine.ts';
import { CoreError, CoreErrorCode } from '../../errors.ts';
import { primaryKeyChangeError } from '../../engine/contract.ts';
import type { SyncEngineContract } from '../../engine/contract.ts';
import { asciiLower, columnListSchemaHash, ddlTextSchemaHash, schemaHashFromInt64, schemaHashToInt64 } from '../../schema/schema-hash.ts';
import type { Change, CrdtAlgorithm } from '../../types.ts';
import { toBytes } from './conn.ts';
import type { ConnSource } from './conn.ts';
import type { PgConn } from './conn.ts';
import { createPgTableContext } from './context.ts';
import type { PgTableContext } from './context.ts';
import { APPLYING_SETTING, backfillSql, baseMetadataSql, dropTriggersSql, metaTable, metaTableSql, pkExpr, triggerSql } from './ddl.ts';
import { sqliteDdlFor } from './device-ddl.ts';
import { pgChangeFeed } from './feed.ts';
import type { PgFeedOptions } from './feed.ts';
import { pgSchemaIssues, readPgTableSchema } from './introspect.ts';
import { pgMergeChanges } from './merge.ts';
import { blockColumnsOf, blockMetadataSql, parseBlockCell, pgFoldTexts, pgMergeBlocks } from './blocks.ts';
import type { BlockMarks, FoldTarget } from './blocks.ts';
import { fromPg, qualified } from './introspect.ts';
import type { PgColumn } from './introspect.ts';
import type { PgApplyOptions, PgRowSecurity } from './merge.ts';

export interface PgFeedRequest extends Omit<PgFeedOptions, 'excludeSiteRef'> {
  /** Leave out changes that originated at this site. */
  excludeSiteId?: Uint8Array;
}

/** An open alter (beginAlter → commitAlter): the table as it was synced before. */
interface OpenAlter {
  name: string;
  /** Key column names, lower case, in key order. */
  pk: string[];
  colIds: ReadonlyMap<string, number>;
}

export class PgSyncEngine implements SyncEngineContract {
  readonly kind = 'postgres' as const;
  readonly #src: ConnSource;
  /** Metadata schema. */
  readonly meta: string;
  /** Schema holding the synced tables. */
  readonly nsp: string;
  readonly siteId: Uint8Array;
  #tables = new Map<string, PgTableContext>();
  #siteIds = new Map<number, Uint8Array>();
  /** Block-LWW columns (blocks.ts): lower(table) → lower(column) → declared name. */
  #marks: BlockMarks = new Map();
  /** The open alter, if any (its transaction is the ConnSource's pinned one). */
  #alter: OpenAlter | undefined;

  constructor(src: ConnSource, meta: string, nsp: string, siteId: Uint8Array) {
    this.#src = src;
    this.meta = meta;
    this.nsp = nsp;
    this.siteId = siteId;
    this.#siteIds.set(0, siteId);
  }

  get #m(): string {
    return `"${this.meta.replace(/"/g, '""')}"`;
  }

  /** The current db_version (Lamport clock). */
  async dbVersion(): Promise<number> {
    return this.#src.use(async (c) => Number((await c.q(`SELECT v::text FROM ${this.#m}.clock WHERE id = 1`))[0]?.[0] ?? 0));
  }

  table(name: string): PgTableContext | undefined {
    return this.#tables.get(name.toLowerCase());
  }

  /** Synced tables (re-read from the database). */
  async syncedTables(): Promise<{ name: string; algorithm: CrdtAlgorithm }[]> {
    return this.#src.use(async (c) => {
      await this.#load(c);
      return [...this.#tables.values()].map((t) => ({ name: t.name, algorithm: t.algorithm }));
    });
  }

  /** Initialises `table` for sync (§P6 checks, clock table, triggers, back-fill). Idempotent for the same algorithm. */
  async init(table: string, algorithm?: string, flags = 0): Promise<void> {
    const algo = resolveAlgorithm(algorithm);
    await this.#src.tx(async (c) => {
      const schema = await readPgTableSchema(c, this.nsp, table);
      const issues = pgSchemaIssues(schema, table, flags);
      if (schema === undefined || issues.length > 0) {
        throw new CoreError(CoreErrorCode.SCHEMA_INVALID, issues.map((i) => i.message).join('; '), { details: { table, issues } });
      }
      const [existing] = await c.q(`SELECT algo FROM ${this.#m}.tables WHERE lower(tbl) = lower($1)`, [schema.name]);
      if (existing !== undefined && existing[0] !== algo) {
        throw new CoreError(CoreErrorCode.ALGORITHM_CHANGE, 'The function cloudsync_cleanup(table) must be called before changing a table algorithm');
      }
      await c.q(metaTableSql(this.meta, schema.name));
      await c.q(`INSERT INTO ${this.#m}.tables (tbl, algo) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [schema.name, algo]);
      const [mx] = await c.q(`SELECT COALESCE(max(id), 0) FROM ${this.#m}.columns WHERE tbl = $1`, [schema.name]);
      let next = Number(mx?.[0] ?? 0) + 1;
      for (const col of schema.valueColumns) {
        const r = await c.q(`INSERT INTO ${this.#m}.columns (tbl, name, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id`, [schema.name, col.name, next]);
        if (r.length > 0) next++;
      }
      await this.#load(c);
      const ctx = this.table(schema.name) as PgTableContext;
      await c.q(dropTriggersSql(this.meta, this.nsp, schema.name));
      await c.q(triggerSql({ meta: this.meta, nsp: this.nsp, schema: ctx.schema, columns: ctx.columns, algorithm: algo }));
      const [v] = await c.q(`SELECT v + 1 FROM ${this.#m}.clock WHERE id = 1 FOR UPDATE`);
      const version = String(v?.[0] ?? 1);
      const filled = await c.q(`${backfillSql(this.meta, this.nsp, ctx.schema, ctx.columns)} RETURNING 1`, [version]);
      if (filled.length > 0) await c.q(`UPDATE ${this.#m}.clock SET v = greatest(v, $1::int8), txid = NULL WHERE id = 1`, [version]);
      await this.#recordSchemaHash(c);
    });
  }

  /** Stops syncing `table` and removes its metadata (the rows stay). */
  async cleanup(table: string): Promise<void> {
    await this.#src.tx(async (c) => {
      await this.#load(c);
      const ctx = this.table(table);
      if (ctx === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${table} is not initialised for sync`, { details: { table } });
      await c.q(dropTriggersSql(this.meta, this.nsp, ctx.name));
      await c.q(`DROP TABLE IF EXISTS ${metaTable(this.meta, ctx.name)}`);
      await c.q(`DELETE FROM ${this.#m}.tables WHERE tbl = $1`, [ctx.name]);
      await c.q(`DELETE FROM ${this.#m}.columns WHERE tbl = $1`, [ctx.name]);
      await c.q(`DELETE FROM ${this.#m}.block_columns WHERE tbl = $1`, [ctx.name]);
      await c.q(`DELETE FROM ${this.#m}.blocks WHERE tbl = $1`, [ctx.name]);
      await this.#load(c);
      await this.#recordSchemaHash(c);
    });
  }

  /**
   * Starts a schema change of `table` (§P6 "Alteration", as `SyncEngine.beginAlter`): opens ONE
   * transaction on one connection that every later operation of this engine joins (the
   * ConnSource's pinned transaction) until {@link commitAlter}, locks the clock row (tracked
   * writes and merges of other sessions wait, as SQLite's write lock makes them) and drops the
   * table's triggers, so the operator's statements are not tracked. Run the ALTER TABLE through
   * {@link withConnection}. One alter at a time per engine.
   */
  async beginAlter(table: string): Promise<void> {
    const open = this.#alter;
    if (open !== undefined) {
      throw new CoreError(
        CoreErrorCode.INVALID_STATE,
        open.name.toLowerCase() === table.toLowerCase() ? `cloudsync_begin_alter was already called for table ${open.name}` : `An alter of table ${open.name} is open: commit it before altering table ${table}`,
        { details: { table, open: open.name } },
      );
    }
    this.#alter = { name: table, pk: [], colIds: new Map() };
    try {
      await this.#src.pin();
      await this.#src.use(async (c) => {
        await c.q(`SELECT 1 FROM ${this.#m}.clock WHERE id = 1 FOR UPDATE`);
        await this.#load(c);
        const ctx = this.table(table);
        if (ctx === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${table} is not initialised for sync`, { details: { table } });
        await c.q(dropTriggersSql(this.meta, this.nsp, ctx.name));
        this.#alter = { name: ctx.name, pk: ctx.schema.pkColumns.map((k) => k.name.toLowerCase()), colIds: ctx.colIds };
      });
    } catch (e) {
      this.#alter = undefined;
      await this.#src.unpin(false);
      throw e;
    }
  }

  /**
   * Finishes the schema change in the alter's transaction (as `SyncEngine.commitAlter`): the
   * columns are re-read, new value columns get ids and are back-filled for every row as local
   * changes, clocks of dropped columns (and cells of rows deleted during the alter) are removed,
   * rows inserted during it are back-filled, the triggers re-created and both schema hashes
   * recorded (the old ones stay known). A changed primary key is refused (SCHEMA_INVALID). On any
   * error the whole alter transaction rolls back, the operator's ALTER TABLE included: the table
   * stays synced as before.
   */
  async commitAlter(table: string): Promise<void> {
    const alter = this.#alter;
    if (alter === undefined || alter.name.toLowerCase() !== table.toLowerCase() || !this.#src.pinned) {
      throw new CoreError(CoreErrorCode.INVALID_STATE, `cloudsync_begin_alter must be called before cloudsync_commit_alter (table ${table})`, { details: { table } });
    }
    try {
      await this.#src.use((c) => this.#commitAlter(c, alter));
    } catch (e) {
      this.#alter = undefined;
      await this.#src.unpin(false);
      await this.#src.use((c) => this.#load(c));
      throw e;
    }
    this.#alter = undefined;
    await this.#src.unpin(true);
    await this.#src.use((c) => this.#load(c));
  }

  async #commitAlter(c: PgConn, alter: OpenAlter): Promise<void> {
    const schema = await readPgTableSchema(c, this.nsp, alter.name);
    const issues = pgSchemaIssues(schema, alter.name, 0b11);
    if (schema === undefined || issues.length > 0) throw new CoreError(CoreErrorCode.SCHEMA_INVALID, issues.map((i) => i.message).join('; '), { details: { table: alter.name, issues } });
    const pk = schema.pkColumns.map((k) => k.name.toLowerCase());
    if (pk.join(',') !== alter.pk.join(',')) throw primaryKeyChangeError(schema.name, alter.pk, pk);
    const m = metaTable(this.meta, schema.name);
    for (const [name, id] of alter.colIds) {
      if (schema.valueColumns.some((v) => v.name === name)) continue;
      await c.q(`DELETE FROM ${m} WHERE col = $1`, [id]);
      await c.q(`DELETE FROM ${this.#m}.columns WHERE tbl = $1 AND name = $2`, [schema.name, name]);
      await c.q(`DELETE FROM ${this.#m}.block_columns WHERE tbl = $1 AND col = $2`, [schema.name, name]);
      await c.q(`DELETE FROM ${this.#m}.blocks WHERE tbl = $1 AND col = $2`, [schema.name, name]);
    }
    const [mx] = await c.q(`SELECT COALESCE(max(id), 0) FROM ${this.#m}.columns WHERE tbl = $1`, [schema.name]);
    let next = Number(mx?.[0] ?? 0) + 1;
    for (const col of schema.valueColumns) {
      const r = await c.q(`INSERT INTO ${this.#m}.columns (tbl, name, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id`, [schema.name, col.name, next]);
      if (r.length > 0) next++;
    }
    await this.#load(c);
    const ctx = this.table(schema.name) as PgTableContext;
    const t = qualified(this.nsp, ctx.name);
    const key = pkExpr(this.meta, ctx.schema, 'r');
    // Rows deleted while the triggers were off: their cells go (the sentinel stays), as on SQLite.
    await c.q(`DELETE FROM ${m} x WHERE x.col <> 0 AND NOT EXISTS (SELECT 1 FROM ${t} r WHERE ${key} = x.pk)`);
    const [k] = await c.q(`SELECT v::text FROM ${this.#m}.clock WHERE id = 1 FOR UPDATE`);
    let clock = Number(k?.[0] ?? 0);
    const added = ctx.columns.filter((col) => !alter.colIds.has(col.name));
    if (added.length > 0) {
      // Every tracked row gets an explicit clock for the new columns: its value is a local change.
      const version = checkLocalClock(clock + 1);
      const filled = await c.q(
        `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site)
         SELECT p.pk, n.id, 1, $1::int8, p.n * ${ctx.columns.length + 2} + 1 + n.ord, 0
         FROM (SELECT ${key} AS pk, row_number() OVER () AS n FROM ${t} r) p
         CROSS JOIN (VALUES ${added.map((a) => `(${a.id}, ${a.ord})`).join(', ')}) n(id, ord)
         WHERE EXISTS (SELECT 1 FROM ${m} x WHERE x.pk = p.pk)
         ON CONFLICT (pk, col) DO NOTHING RETURNING 1`,
        [version],
      );
      if (filled.length > 0) clock = version;
    }
    await c.q(dropTriggersSql(this.meta, this.nsp, ctx.name));
    await c.q(triggerSql({ meta: this.meta, nsp: this.nsp, schema: ctx.schema, columns: ctx.columns, algorithm: ctx.algorithm }));
    // Rows inserted while the triggers were off: back-filled whole, as init does.
    const version = checkLocalClock(clock + 1);
    const fresh = await c.q(`${backfillSql(this.meta, this.nsp, ctx.schema, ctx.columns)} RETURNING 1`, [version]);
    if (fresh.length > 0) clock = version;
    await c.q(`UPDATE ${this.#m}.clock SET v = greatest(v, $1::int8), txid = NULL WHERE id = 1`, [clock]);
    await this.#recordSchemaHash(c);
  }

  /** Rolls back an open alter (the caller's pool or client stays open: it is the caller's). */
  async close(): Promise<void> {
    if (this.#alter === undefined) return;
    this.#alter = undefined;
    await this.#src.unpin(false);
  }

  /** Column-list schema hash (§P6) of the synced tables, PostgreSQL types mapped onto the affinity words. */
  async schemaHash(): Promise<bigint> {
    return this.#src.use(async (c) => {
      await this.#load(c);
      return this.#hash();
    });
  }

  /**
   * DDL-text schema hash (§P6, 0.8.x – 0.9.99 devices): the hash of {@link deviceDdl}'s
   * statements, the SQLite DDL a device creates the synced tables with.
   */
  async ddlSchemaHash(): Promise<bigint> {
    return this.#src.use(async (c) => {
      await this.#load(c);
      return ddlTextSchemaHash(this.#deviceDdl());
    });
  }

  /**
   * The SQLite `CREATE TABLE` statements of the synced tables, in the order a device must run
   * them (device-ddl.ts): a 0.8.x – 0.9.99 device created from them carries {@link ddlSchemaHash},
   * and any device {@link schemaHash}.
   */
  async deviceDdl(): Promise<string[]> {
    return this.#src.use(async (c) => {
      await this.#load(c);
      return this.#deviceDdl();
    });
  }

  /** Records the current schema hashes (both variants) as known; idempotent (databases initialised before the DDL-text hash existed learn it at open). */
  async recordSchemaHashes(): Promise<void> {
    await this.#src.tx(async (c) => {
      await this.#load(c);
      if (this.#tables.size > 0) await this.#recordSchemaHash(c);
    });
  }

  async knownSchemaHashes(): Promise<bigint[]> {
    const rows = await this.#src.use((c) => c.q(`SELECT hash::text FROM ${this.#m}.schema_versions ORDER BY seq`));
    return rows.map((r) => schemaHashFromInt64(BigInt(String(r[0]))));
  }

  /** Records `hash` as known (idempotent); on `conn` when given (inside the caller's transaction). */
  async rememberSchemaHash(hash: bigint, kind = 'peer', conn?: PgConn): Promise<void> {
    if (conn !== undefined) return this.#remember(conn, hash, kind);
    await this.#src.use((c) => this.#remember(c, hash, kind));
  }

  /** Changes after a cursor in (db_version, seq) order. */
  async *changes(req: PgFeedRequest = {}): AsyncGenerator<Change> {
    const { excludeSiteId, ...rest } = req;
    const opts: PgFeedOptions = rest;
    const fold = await this.#src.use(async (c) => {
      await this.#load(c);
      if (excludeSiteId !== undefined) {
        const [r] = await c.q(`SELECT id::text FROM ${this.#m}.sites WHERE site_id = $1`, [excludeSiteId]);
        if (r !== undefined) opts.excludeSiteRef = Number(r[0]);
      }
      return rest.localOnly !== true && (await this.#foldPending(c));
    });
    if (fold) await this.#foldLocked();
    const marks = this.#marks;
    yield* pgChangeFeed(this.#src, { meta: this.meta, nsp: this.nsp, tables: () => [...this.#tables.values()], siteIdOf: (c, ref) => this.#siteIdOf(c, ref), marks: () => marks }, opts);
  }

  /**
   * Merges a batch in one transaction: all of it or none of it. `inTx` runs in the same
   * transaction after the merge (the caller's per-site bookkeeping, docs/ARCHITECTURE.md "Central
   * engines"); when it throws, the merge is rolled back too.
   */
  async applyChanges<T = void>(changes: Iterable<Change>, opts: PgApplyOptions = {}, inTx?: (c: PgConn, r: ApplyResult) => Promise<T>): Promise<ApplyResult & { extra: T | undefined }> {
    return this.#src.tx(async (c) => {
      await this.#load(c);
      await c.q(`SELECT set_config('${APPLYING_SETTING}', '1', true)`);
      // The clock row lock orders every merge and tracked write of this database, on every node.
      const [k] = await c.q(`SELECT v::text FROM ${this.#m}.clock WHERE id = 1 FOR UPDATE`);
      let clock = Number(k?.[0] ?? 0);
      const host = { meta: this.meta, nsp: this.nsp, table: (n: string) => this.table(n), siteRef: (cc: PgConn, s: Uint8Array) => this.#siteRef(cc, s) };
      let result: ApplyResult;
      if (this.#marks.size === 0) result = await pgMergeChanges(c, host, clock, changes, opts);
      else {
        // Block cells of marked columns are merged after the batch's other changes (blocks.ts).
        const marks = this.#marks;
        const rest: Change[] = [];
        const blocks: Change[] = [];
        let last: Change | undefined;
        for (const ch of changes) {
          (ch.col.includes('\u001f') && parseBlockCell(marks, ch.tbl, ch.col) !== undefined ? blocks : rest).push(ch);
          last = ch;
        }
        // Writes of other programs first: the block merge rewrites the text from the blocks.
        if (blocks.length > 0) clock = await this.#foldIn(c, clock);
        const merged = await pgMergeChanges(c, host, clock, rest, opts);
        const blockHost = { meta: this.meta, nsp: this.nsp, marks, table: (n: string) => this.table(n), siteRef: (cc: PgConn, s: Uint8Array) => this.#siteRef(cc, s) };
        result = await pgMergeBlocks(c, blockHost, Math.max(clock, merged.dbVersion), blocks, opts, merged);
        if (last !== undefined) result = { ...result, last: { dbVersion: last.dbVersion, seq: last.seq } };
      }
      await c.q(`UPDATE ${this.#m}.clock SET v = greatest(v, $1::int8) WHERE id = 1`, [checkLocalClock(result.dbVersion)]);
      await c.q(`SELECT set_config('${APPLYING_SETTING}', '0', true)`);
      const extra = inTx === undefined ? undefined : await inTx(c, result);
      return { ...result, extra };
    });
  }

  /** Decodes and merges a payload atomically, checking its schema hash first (§P6). */
  async applyPayload(payload: Uint8Array, opts: PayloadApplyOptions & { rowSecurity?: PgRowSecurity } = {}): Promise<ApplyResult & { schemaHash: bigint }> {
    return this.applyPayloads([payload], opts);
  }

  /**
   * Decodes several payloads (the chunks of one G3 batch, fragments reassembled across them) and
   * merges them as one, atomically, with `inTx` in the same transaction. Every payload's schema
   * hash is checked first (§P6) unless `strictSchemaHash` is false.
   */
  async applyPayloads<T = void>(payloads: readonly Uint8Array[], opts: PayloadApplyOptions & { rowSecurity?: PgRowSecurity } = {}, inTx?: (c: PgConn, r: ApplyResult & { schemaHash: bigint }) => Promise<T>): Promise<ApplyResult & { schemaHash: bigint; extra: T | undefined }> {
    const parts: Change[][] = [];
    let schemaHash = 0n;
    const fragments = fragmentAssemblerFor(opts.limits);
    const hashes = new Set<bigint>();
    for (const payload of payloads) {
      const { header, changes } = decodePayload(payload, opts.limits, fragments);
      parts.push(changes);
      schemaHash = header.schemaHash;
      if (header.schemaHash !== 0n) hashes.add(header.schemaHash);
    }
    fragments.finish();
    if ((opts.strictSchemaHash ?? true) && hashes.size > 0) {
      const known = new Set((await this.knownSchemaHashes()).map(String));
      for (const h of hashes) {
        if (!known.has(String(h))) {
          throw new CoreError(CoreErrorCode.SCHEMA_HASH_UNKNOWN, `Cannot apply the received payload because the schema hash is unknown ${h}.`, {
            details: { schemaHash: h.toString() },
          });
        }
      }
    }
    const all = function* (): Generator<Change> {
      for (const changes of parts) yield* changes;
    };
    const withHash = inTx === undefined ? undefined : (c: PgConn, r: ApplyResult) => inTx(c, { ...r, schemaHash });
    return { ...(await this.applyChanges(all(), opts, withHash)), schemaHash };
  }

  /**
   * Marks `column` of synced `table` block-LWW, like a 1.1.x device's
   * `cloudsync_set_column(table, column, 'algo', 'block')` (docs/PROTOCOL.md "Block columns"):
   * block cells of it are merged per block and its text is kept materialised in the table.
   * Idempotent. The texts the table already holds become blocks at once (one local version).
   */
  async setBlockColumn(table: string, column: string): Promise<void> {
    await this.#src.tx(async (c) => {
      await this.#load(c);
      const ctx = this.table(table);
      if (ctx === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${table} is not initialised for sync`, { details: { table } });
      const col = ctx.schema.valueColumns.find((v) => v.name.toLowerCase() === column.toLowerCase());
      if (col === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${column} does not exist in table ${ctx.name}`, { details: { table: ctx.name, column } });
      if (col.cls !== 'text') {
        throw new CoreError(CoreErrorCode.SCHEMA_INVALID, `Column ${col.name} of table ${ctx.name} is ${col.sqlType}; block columns hold text`, { details: { table: ctx.name, column: col.name } });
      }
      const [k] = await c.q(`SELECT v::text FROM ${this.#m}.clock WHERE id = 1 FOR UPDATE`);
      const added = await c.q(`INSERT INTO ${this.#m}.block_columns (tbl, col) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1`, [ctx.name, col.name]);
      await this.#load(c);
      if (added.length === 0) return;
      const rows = await c.q(
        `SELECT DISTINCT x.pk, COALESCE(s.col_version, 1)::text FROM ${metaTable(this.meta, ctx.name)} x
           LEFT JOIN ${metaTable(this.meta, ctx.name)} s ON s.pk = x.pk AND s.col = 0 WHERE COALESCE(s.col_version, 1) % 2 = 1`,
      );
      const targets: FoldTarget[] = [];
      for (const r of rows) {
        const t = await this.#foldTarget(c, ctx, col.name, toBytes(r[0]), Number(r[1]));
        if (t !== undefined) targets.push(t);
      }
      const version = Number(k?.[0] ?? 0) + 1;
      if ((await pgFoldTexts(c, this.meta, targets, version)) > 0) await c.q(`UPDATE ${this.#m}.clock SET v = greatest(v, $1::int8), txid = NULL WHERE id = 1`, [checkLocalClock(version)]);
    });
  }

  /** The block-LWW columns of `table` (declared names, re-read from the database). */
  async blockColumns(table: string): Promise<string[]> {
    return this.#src.use(async (c) => {
      await this.#load(c);
      return blockColumnsOf(this.#marks, table);
    });
  }

  /**
   * Folds writes of block columns made outside merges (psql, an ORM: site-0 changes) since the
   * last fold into block cells. The feed does it before reading; a merge of block cells does it in
   * its own transaction. Cheap when there is nothing to fold (one read, no lock).
   */
  async foldBlockWrites(): Promise<void> {
    const pending = await this.#src.use(async (c) => {
      await this.#load(c);
      return this.#foldPending(c);
    });
    if (pending) await this.#foldLocked();
  }

  /** Whether site-0 changes of block columns wait for a fold (tables loaded). */
  async #foldPending(c: PgConn): Promise<boolean> {
    if (this.#marks.size === 0) return false;
    const [f] = await c.q(`SELECT folded::text FROM ${this.#m}.block_state WHERE id = 1`);
    for (const [t, ids] of this.#blockColumnIds()) {
      const r = await c.q(`SELECT 1 FROM ${metaTable(this.meta, t.name)} WHERE db_version > $1::int8 AND site = 0 AND col = ANY($2::int[]) LIMIT 1`, [String(f?.[0] ?? 0), ids]);
      if (r.length > 0) return true;
    }
    return false;
  }

  async #foldLocked(): Promise<void> {
    await this.#src.tx(async (c) => {
      await this.#load(c);
      const [k] = await c.q(`SELECT v::text FROM ${this.#m}.clock WHERE id = 1 FOR UPDATE`);
      await this.#foldIn(c, Number(k?.[0] ?? 0));
    });
  }

  /** Synced tables with block columns and those columns' ids. */
  #blockColumnIds(): [PgTableContext, number[]][] {
    const out: [PgTableContext, number[]][] = [];
    for (const t of this.#tables.values()) {
      const ids = blockColumnsOf(this.#marks, t.name).map((n) => t.colIds.get(n)).filter((id): id is number => id !== undefined);
      if (ids.length > 0) out.push([t, ids]);
    }
    return out;
  }

  async #foldTarget(c: PgConn, t: PgTableContext, column: string, pk: Uint8Array, cl: number): Promise<FoldTarget | undefined> {
    const [row] = await c.q(t.selectColumn(column), t.pkParams(decodePk(pk)));
    if (row === undefined) return undefined;
    const v = fromPg(t.pgColumn.get(column) as PgColumn, row[0]);
    return { t, pk, column, text: v === null ? null : typeof v === 'string' ? v : String(v), cl };
  }

  /**
   * The fold itself, with the clock row locked by the caller (so every tracked write up to `clock`
   * has committed): the site-0 changes of block columns after the last fold, each row's current
   * text diffed into blocks at version clock + 1. Returns the clock after it.
   */
  async #foldIn(c: PgConn, clock: number): Promise<number> {
    const [f] = await c.q(`SELECT folded::text FROM ${this.#m}.block_state WHERE id = 1 FOR UPDATE`);
    const folded = String(f?.[0] ?? 0);
    const targets: FoldTarget[] = [];
    for (const [t, ids] of this.#blockColumnIds()) {
      const m = metaTable(this.meta, t.name);
      const rows = await c.q(
        `SELECT x.pk, x.col, COALESCE(s.col_version, 1)::text FROM ${m} x LEFT JOIN ${m} s ON s.pk = x.pk AND s.col = 0
          WHERE x.db_version > $1::int8 AND x.site = 0 AND x.col = ANY($2::int[]) ORDER BY x.pk, x.col`,
        [folded, ids],
      );
      for (const r of rows) {
        const vc = t.byId.get(Number(r[1]));
        if (vc === undefined) continue;
        const target = await this.#foldTarget(c, t, vc.name, toBytes(r[0]), Number(r[2]));
        if (target !== undefined) targets.push(target);
      }
    }
    const version = clock + 1;
    const n = targets.length === 0 ? 0 : await pgFoldTexts(c, this.meta, targets, version);
    const after = n > 0 ? checkLocalClock(version) : clock;
    if (n > 0) await c.q(`UPDATE ${this.#m}.clock SET v = greatest(v, $1::int8), txid = NULL WHERE id = 1`, [after]);
    await c.q(`UPDATE ${this.#m}.block_state SET folded = greatest(folded, $1::int8) WHERE id = 1`, [after]);
    return after;
  }

  /** Runs `fn` in one transaction of this engine's database (bookkeeping outside a merge). */
  transaction<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    return this.#src.tx(fn);
  }

  /** Runs `fn` on one connection of this engine's database, outside a transaction. */
  withConnection<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    return this.#src.use(fn);
  }

  #hash(): bigint {
    return columnListSchemaHash(
      [...this.#tables.values()].map((t) => ({ name: t.name, columns: t.schema.columns.map((c) => ({ name: c.name, type: c.affinity, pk: c.pk > 0 })) })),
    );
  }

  /** Synced tables in name order (NOCASE, as the column-list hash orders them). */
  #deviceDdl(): string[] {
    return [...this.#tables.values()]
      .sort((a, b) => (asciiLower(a.name) < asciiLower(b.name) ? -1 : asciiLower(a.name) > asciiLower(b.name) ? 1 : 0))
      .map((t) => sqliteDdlFor(t.schema));
  }

  async #recordSchemaHash(c: PgConn): Promise<void> {
    await this.#remember(c, this.#hash(), 'column-list');
    await this.#remember(c, ddlTextSchemaHash(this.#deviceDdl()), 'ddl-text');
  }

  async #remember(c: PgConn, hash: bigint, kind: string): Promise<void> {
    await c.q(
      `INSERT INTO ${this.#m}.schema_versions (hash, seq, kind)
       SELECT $1::int8, COALESCE(max(seq), 0) + 1, $2 FROM ${this.#m}.schema_versions ON CONFLICT DO NOTHING`,
      [schemaHashToInt64(hash).toString(), kind],
    );
  }

  async #load(c: PgConn): Promise<void> {
    const next = new Map<string, PgTableContext>();
    const tables = await c.q(`SELECT tbl, algo FROM ${this.#m}.tables ORDER BY tbl`);
    const cols = await c.q(`SELECT tbl, name, id FROM ${this.#m}.columns`);
    for (const [tbl, algo] of tables) {
      const schema = await readPgTableSchema(c, this.nsp, String(tbl));
      if (schema === undefined) continue;
      const ids = new Map<string, number>();
      for (const r of cols) if (r[0] === tbl) ids.set(String(r[1]), Number(r[2]));
      next.set(schema.name.toLowerCase(), createPgTableContext(this.meta, this.nsp, schema, algo as CrdtAlgorithm, ids));
    }
    this.#tables = next;
    const marks = new Map<string, Map<string, string>>();
    for (const [tbl, col] of await c.q(`SELECT tbl, col FROM ${this.#m}.block_columns`)) {
      const t = String(tbl).toLowerCase();
      let cols = marks.get(t);
      if (cols === undefined) marks.set(t, (cols = new Map()));
      cols.set(String(col).toLowerCase(), String(col));
    }
    this.#marks = marks;
  }

  async #siteRef(c: PgConn, siteId: Uint8Array): Promise<number> {
    const [r] = await c.q(`SELECT id::text FROM ${this.#m}.sites WHERE site_id = $1`, [siteId]);
    if (r !== undefined) return Number(r[0]);
    if (siteId.length !== 16) throw new CoreError(CoreErrorCode.SITE_ID_INVALID, 'site id must be 16 bytes');
    const [n] = await c.q(`INSERT INTO ${this.#m}.sites (id, site_id) SELECT COALESCE(max(id), 0) + 1, $1 FROM ${this.#m}.sites RETURNING id::text`, [siteId]);
    return Number(n?.[0]);
  }

  async #siteIdOf(c: PgConn, ref: number): Promise<Uint8Array> {
    const cached = this.#siteIds.get(ref);
    if (cached !== undefined) return cached;
    const [r] = await c.q(`SELECT site_id FROM ${this.#m}.sites WHERE id = $1`, [ref]);
    if (r === undefined) throw new CoreError(CoreErrorCode.INVALID_STATE, `unknown site reference ${ref}`);
    const id = toBytes(r[0]);
    this.#siteIds.set(ref, id);
    return id;
  }
}

/** Creates the metadata schema if needed and loads (or creates) this database's site id. */
export async function openPgSyncEngine(src: ConnSource, meta: string, nsp: string, now: () => number, random: (n: number) => Uint8Array): Promise<PgSyncEngine> {
  const siteId = await src.tx(async (c) => {
    await c.q(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`offsync:${meta}`]);
    await c.q(baseMetadataSql(meta));
    await c.q(blockMetadataSql(meta));
    const m = `"${meta.replace(/"/g, '""')}"`;
    const [own] = await c.q(`SELECT site_id FROM ${m}.sites WHERE id = 0`);
    if (own !== undefined) return toBytes(own[0]);
    const id = uuidv7(now(), random);
    await c.q(`INSERT INTO ${m}.sites (id, site_id) VALUES (0, $1)`, [id]);
    return id;
  });
  const engine = new PgSyncEngine(src, meta, nsp, siteId);
  await engine.recordSchemaHashes();
  return engine;
}
