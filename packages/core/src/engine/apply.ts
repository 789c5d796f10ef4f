/**
 * The merge of incoming changes into a database (docs/PROTOCOL.md §P5).
 *
 * A batch is applied inside one transaction by the caller: either every change is merged or,
 * when anything throws (unknown table/column, a constraint, a refused RLS check), nothing is.
 * Base-table writes happen with the tracking triggers suppressed (`offsync_clock.applying`).
 * Winning values of consecutive changes to one row are buffered and written as one upsert
 * (§P5, merge step 4), so a row-level policy sees the whole new row.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import { compareForMerge } from '../merge/compare.ts';
import { decideCell, decideRow, decideValue, NO_ROW } from '../merge/decide.ts';
import type { Change, SqlValue } from '../types.ts';
import { RIP_SENTINEL } from '../types.ts';
import { bytesKey, sameBytes } from '../codec/bytes.ts';
import { decodePk } from '../codec/pk.ts';
import type { TableContext, TableStatements, ValueColumn } from './table-context.ts';
import { BatchedWrites } from './apply-writes.ts';
import { blobHash, bytesHash, HASH_SEED, RowsByKey, smallHash, textHash } from './row-keys.ts';
import { encodeTombstoneValues, readTombstone } from './tombstones.ts';
import type { RowObject, Tombstone } from './tombstones.ts';

/** A base-table write the merge is about to make; `authorize` may veto it by throwing. */
export interface RowWrite {
  table: string;
  kind: 'upsert' | 'delete';
  /** Primary-key values in declaration order. */
  pk: readonly SqlValue[];
  /** For upserts: the value columns being written (a pk-only resurrection writes none). */
  values: Readonly<Record<string, SqlValue>>;
}

export type RowOperation = 'INSERT' | 'UPDATE' | 'DELETE';

/**
 * What a batch does to one row, judged as a whole (docs/ARCHITECTURE.md "RLS model"): the row's
 * state before the batch (central) and after ALL of the batch's changes to it merged. The
 * operation follows from the transition: absent/deleted → alive = INSERT, alive → alive =
 * UPDATE, alive → deleted = DELETE. A row born and deleted inside the batch, or one whose
 * changes all lose, is never judged.
 */
export interface RowTransition {
  table: string;
  pk: Uint8Array;
  pkValues: readonly SqlValue[];
  operation: RowOperation;
  /** The whole row before the batch (undefined for INSERT). */
  old: Readonly<Record<string, SqlValue>> | undefined;
  /** The whole row after the batch (undefined for DELETE). */
  new: Readonly<Record<string, SqlValue>> | undefined;
}

/** A judge's refusal of one row. */
export interface RowVerdict {
  /** Stable code, e.g. `rls_denied`. */
  code: string;
  reason: string;
  /** The policy expression that refused, if any. */
  policy?: string | null;
  /**
   * False when the principal may not see the row as it stands centrally: its device then gets
   * a removal addressed to it alone (`offsync_evictions`) instead of the central values.
   */
  visible?: boolean;
}

/** Codes of rejections the engine makes itself. */
export const RejectionCode = {
  /** A primary-key value whose type does not match the declared type of its column. */
  PK_TYPE_MISMATCH: 'pk_type_mismatch',
  /** The row's write violated a constraint (another UNIQUE column, NOT NULL, CHECK, …). */
  CONSTRAINT_VIOLATION: 'constraint_violation',
} as const;

/** A row whose changes were rejected (nothing of them was written) and compensated. */
export interface RejectedRow {
  table: string;
  pk: Uint8Array;
  pkValues: SqlValue[];
  operation: RowOperation;
  code: string;
  reason: string;
  policy: string | null;
  /** The rejected incoming values (column → value; the sentinel is not listed). */
  values: Record<string, SqlValue>;
}

/** How a concurrent write lost in a merge (the conflict log, docs/ARCHITECTURE.md). */
export type ConflictKind =
  /** Same col_version on both sides: the value order of §P5 decided. */
  | 'tiebreak'
  /** The incoming edit of a cell was older (lower col_version) than the stored one. */
  | 'superseded'
  /** An edit of a cell arrived for a life of the row that a delete had ended. */
  | 'update_lost_to_delete'
  /** A delete ended a live row last written by another device. */
  | 'delete_over_update';

export interface ConflictSide {
  value: SqlValue;
  colVersion: number;
  cl: number;
  siteId: Uint8Array;
}

/** One write that lost to another, as the merge decided it. */
export interface MergeConflict {
  table: string;
  pk: Uint8Array;
  pkValues: SqlValue[];
  /** The cell, or null for a row-level conflict (delete against update). */
  column: string | null;
  kind: ConflictKind;
  winner: ConflictSide;
  loser: ConflictSide;
  /** For `delete_over_update`: the row the delete removed. */
  row?: Record<string, SqlValue>;
}

export interface ApplyOptions {
  /** Called before every base-table write; throw (e.g. CoreError RLS_DENIED) to refuse the whole batch. */
  authorize?: (write: RowWrite) => void;
  /**
   * Whole-row judge (RLS). When set, every row the batch changes is merged inside its own
   * savepoint and judged afterwards; a refused row is rolled back and compensated, the rest of
   * the batch merges. `authorize` is not called in this mode.
   */
  judge?: (row: RowTransition) => RowVerdict | undefined;
  /**
   * This database is authoritative (the server): a row that cannot be merged — a primary-key
   * type mismatch, a constraint violation — is rejected and compensated on its own instead of
   * refusing the batch. Implied by `judge`. Devices never set it (a device must not answer the
   * server with compensating writes).
   */
  rejectRows?: boolean;
  /** Internal: merge row by row in savepoints (set by the engine's retry after a constraint error). */
  isolateRows?: boolean;
  /** Principal recorded on compensating removals (only that principal's devices receive them). */
  audience?: string;
  /**
   * What the uploading principal may hold (its RLS SELECT, the feed's row filter). With a
   * judge, every row of the batch is checked after the merge: when the device still holds the
   * row alive but may not see it as it stands centrally, it gets a removal addressed to
   * `audience` alone (`offsync_evictions`).
   */
  canHold?: (table: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>> | undefined, tombstone?: Tombstone) => boolean;
  /**
   * Per table (lower-case name), the columns visibility depends on (those its RLS SELECT policy
   * reads). A merge that changes one of them on a live row starts a NEW LIFE of the row
   * (causal length + 2, every cell re-stamped) and records the prior values in
   * `offsync_prior`, so that every device gets what its user may now hold: the whole row when it
   * enters their sight, a removal when it leaves it (docs/ARCHITECTURE.md "RLS model").
   */
  visibilityColumns?: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * Called, inside the merge, for every write that lost to a concurrent one (conflict log).
   * Rows that end up rejected (`ApplyResult.rejected`) may have been reported before their
   * rollback: a caller that records conflicts drops those.
   */
  onConflict?: (conflict: MergeConflict) => void;
}

export interface ApplyResult {
  /** Changes received. */
  received: number;
  /** Changes that won and were written. */
  applied: number;
  /** Tables that received at least one winning change. */
  tables: string[];
  /** Last change of the batch in the producer's version space, or undefined for an empty batch. */
  last: { dbVersion: number; seq: number } | undefined;
  /** The local db_version after the batch. */
  dbVersion: number;
  /** Rows whose changes were rejected and compensated (empty when everything merged). */
  rejected: RejectedRow[];
}

export interface MergeHost {
  table(name: string): TableContext | undefined;
  siteRef(siteId: Uint8Array): number;
  clock(): number;
  setClock(v: number): void;
  /** Runs `fn` in a savepoint: everything it wrote is rolled back when it throws. */
  savepoint<T>(fn: () => T): T;
  /** Keep the last values of rows deleted by the merge (`offsync_tombstones`). */
  readonly keepTombstoneValues: boolean;
  /** Site id of a site reference (conflict reports). */
  siteIdOf(ref: number): Uint8Array;
}

type RowRecord = [cl: number, icv: number | null, ver: bigint, seq: bigint, site: bigint];

/** A row record from the first six columns of `rowRecord` / `rowState` (cl, sent, icv, db_version, seq, site). */
function rowRecordOf(r: readonly SqlValue[]): RowRecord {
  return [Number(r[0]), r[2] === null ? null : Number(r[2]), r[3] as bigint, r[4] as bigint, r[5] as bigint];
}

/**
 * Mutable state of one merge run. Kept in one object with methods (rather than closures per
 * change) so the hot loop allocates nothing but what it writes.
 */
class Merge {
  readonly tables = new Set<string>();
  received = 0;
  applied = 0;
  clock: number;
  groupVersion = 0n;
  groupSite = -1;
  groupIncoming = -1;
  siteBytes: Uint8Array | undefined;
  siteRef = 0n;
  ctx: TableContext | undefined;
  pk: Uint8Array = new Uint8Array(0);
  pkValues: SqlValue[] = [];
  /** Row record: [cl, icv, db_version, seq, site] or undefined. */
  rec: RowRecord | undefined;
  /** The current row's rid as read by {@link enterRow} (a bare record's too), undefined when it had none. */
  rid: bigint | undefined;
  cl = 0;
  readonly pending = new Map<string, SqlValue>();
  ch!: Change;
  /**
   * Deferred writes (apply-writes.ts), in the plain merge only (no judge, no per-row savepoints,
   * no callback that could observe single writes): base upserts and cell clocks are queued and
   * sent as multi-row statements. Every read that could see a queued write flushes first (see
   * {@link Merge.sync}): the current row's queued cells and base write are tracked here, earlier
   * rows' by key — their metadata by key blob (compared bytewise, as SQLite compares BLOBs) and
   * their base rows by key values (as SQLite compares them under BINARY collation; tables whose
   * key has another collation, and keys whose types do not match their columns, are not deferred).
   */
  out: BatchedWrites | undefined;
  /** Column ids of the current row's queued cells; whether its base write is queued. */
  readonly curCells = new Set<number>();
  curBase = false;
  /**
   * Hashes of the key blobs (`blobHash`) and key values (`baseHash`) of earlier rows with queued
   * writes, per table. A hash shared by another key only makes the merge flush early (always
   * correct), never late.
   */
  readonly queuedMeta = new Map<TableContext, Set<number>>();
  readonly queuedBase = new Map<TableContext, Set<number>>();
  /** Whether the current row's writes may be queued (see {@link Merge.out}). */
  deferRow = false;
  rowsSinceSync = 0;
  /**
   * The current row's explicit col_versions by column ordinal (undefined: none), as read with
   * `rowState` and kept by {@link Merge.win}; `cvsValid` false after any other write to its
   * cells (the merge then reads them).
   */
  cvs: (number | undefined)[] = [];
  cvsValid = false;
  /** The table name of the last change {@link Merge.merge} resolved, and its context. */
  lastTbl: string | undefined;
  lastT: TableContext | undefined;
  /** {@link pkTypeProblem} of the current row's key, as {@link Merge.enterRow} found it. */
  pkProblem: string | undefined;
  /** `blobHash` / `baseHash` of the current row's key, computed once per row by {@link Merge.enterQueued}. */
  curMetaHash = 0;
  curBaseHash = -1;

  constructor(
    readonly host: MergeHost,
    readonly opts: ApplyOptions,
  ) {
    this.clock = host.clock();
  }

  version(): bigint {
    if (this.groupVersion === 0n) {
      // An authoritative database (the server) numbers merged groups with its own counter: a
      // peer's db_version orders nothing here, and adopting it would let one upload push the
      // clock to the bound (clock poisoning). Devices keep the Lamport rule max(clock + 1, incoming).
      const v = this.opts.rejectRows === true || this.opts.judge !== undefined ? this.clock + 1 : Math.max(this.clock + 1, this.ch.dbVersion);
      this.clock = v;
      this.groupVersion = BigInt(v);
    }
    return this.groupVersion;
  }

  flush(): void {
    const ctx = this.ctx;
    if (ctx === undefined || this.pending.size === 0) return;
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: Object.fromEntries(this.pending) });
    const shape = upsertShape(ctx, this.pending);
    const cols = shape.cols;
    const vals = new Array<SqlValue>(cols.length);
    for (let i = 0; i < cols.length; i++) vals[i] = this.pending.get(cols[i] as string) ?? null;
    if (this.out !== undefined && this.deferRow) {
      this.out.upsert(ctx, cols, this.pkValues, vals, shape.kind);
      this.curBase = true;
    } else ctx.upsertColumns(cols).run(...this.pkValues, ...vals);
    this.pending.clear();
  }

  /** Runs every queued write (before a read or write that must see them). */
  sync(): void {
    const out = this.out;
    if (out === undefined) return;
    out.flush();
    this.curCells.clear();
    this.curBase = false;
    this.queuedMeta.clear();
    this.queuedBase.clear();
    this.rowsSinceSync = 0;
  }

  /** A cell clock of the current row: queued when allowed, written at once otherwise. */
  setCell(t: TableContext, colId: bigint, cv: bigint, dbv: bigint, seq: bigint, site: bigint): void {
    // A row with a record (this merge writes records at once) needs no bare record for its cells;
    // written at once, neither does a row with cells (cl > 0: its bare record exists).
    if (this.out !== undefined && this.deferRow) {
      if (this.rid !== undefined) this.out.setCellByRid(t, this.rid, colId, cv, dbv, seq, site);
      else this.out.setCell(t, this.pk, colId, cv, dbv, seq, site, this.rec !== undefined);
      this.curCells.add(Number(colId));
    } else {
      // A row without a record or cells: a bare record, whose rid the next cells use.
      if (this.rid === undefined && this.rec === undefined && this.cl === 0) this.rid = t.stmts.bareRecord.getRaw(this.pk)?.[0] as bigint | undefined;
      if (this.rid !== undefined) t.stmts.setCellByRid.run(this.rid, colId, cv, dbv, seq, site);
      else (this.rec !== undefined || this.cl > 0 ? t.setKnownCells(1) : t.stmts.setCell).run(this.pk, colId, cv, dbv, seq, site);
    }
  }

  /**
   * Leaves the current row for the row (t, pk, pkValues): remembers the current row's queued
   * writes by key and flushes when the next row may read one of them.
   */
  enterQueued(t: TableContext, pk: Uint8Array, pkValues: readonly SqlValue[]): void {
    const prev = this.ctx;
    if (prev !== undefined && (this.curCells.size > 0 || this.curBase)) {
      if (this.curCells.size > 0) {
        let set = this.queuedMeta.get(prev);
        if (set === undefined) this.queuedMeta.set(prev, (set = new Set()));
        set.add(this.curMetaHash);
      }
      if (this.curBase) {
        let set = this.queuedBase.get(prev);
        if (set === undefined) this.queuedBase.set(prev, (set = new Set()));
        set.add(this.curBaseHash >= 0 ? this.curBaseHash : baseHash(this.pkValues));
      }
      if (this.curCells.size > 0) this.curCells.clear();
      this.curBase = false;
    }
    if (++this.rowsSinceSync >= SYNC_ROWS) this.sync();
    this.deferRow = t.pkBinary && pkValues.length === t.schema.pkColumns.length && this.pkProblem === undefined;
    this.curMetaHash = blobHash(pk);
    this.curBaseHash = this.deferRow ? baseHash(pkValues) : -1;
    const meta = this.queuedMeta.get(t);
    const base = this.queuedBase.get(t);
    if ((meta !== undefined && meta.has(this.curMetaHash)) || (base !== undefined && (!this.deferRow || base.has(this.curBaseHash)))) this.sync();
  }

  materialize(s: TableStatements): void {
    const rec = this.rec;
    if (rec === undefined || rec[1] === null) return;
    this.sync();
    this.cvsValid = false;
    s.materialize.run(this.pk, BigInt(rec[1]), rec[2], rec[3], rec[4]);
    s.clearImplicit.run(this.pk);
    rec[1] = null;
  }

  setSentinel(s: TableStatements): void {
    this.materialize(s);
    const v = this.version();
    const seq = BigInt(this.ch.seq);
    s.setSentinel.run(this.pk, BigInt(this.ch.cl), v, seq, this.siteRef);
    this.rec = [this.ch.cl, null, v, seq, this.siteRef];
    this.cl = this.ch.cl;
  }

  resurrect(ctx: TableContext): void {
    const s = ctx.stmts;
    this.flush();
    this.sync();
    this.cvsValid = false;
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: {} });
    s.insertPkOnly.run(...this.pkValues);
    this.materialize(s);
    s.resetCells.run(this.pk);
    this.setSentinel(s);
  }

  win(ctx: TableContext, colId: bigint): void {
    const ch = this.ch;
    this.pending.set(ch.col, ch.val);
    this.setCell(ctx, colId, BigInt(ch.colVersion), this.version(), BigInt(ch.seq), this.siteRef);
    if (this.cvsValid) {
      const c = ctx.byId.get(Number(colId));
      if (c !== undefined) this.cvs[c.ord] = ch.colVersion;
      else this.cvsValid = false;
    }
    if (this.cl === 0) this.cl = 1;
    this.applied++;
    this.tables.add(ctx.name);
  }

  /** Tracks the incoming group (origin site + db_version) `ch` belongs to: one local version per group. */
  enterGroup(ch: Change): void {
    this.ch = ch;
    // (Decoded changes carry a site id each: compare bytes before asking the host.)
    if (this.siteBytes !== ch.siteId && (this.siteBytes === undefined || !sameBytes(this.siteBytes, ch.siteId))) {
      this.siteBytes = ch.siteId;
      const ref = this.host.siteRef(ch.siteId);
      if (ref !== this.groupSite) this.groupVersion = 0n;
      this.groupSite = ref;
      this.siteRef = BigInt(ref);
    }
    if (ch.dbVersion !== this.groupIncoming) {
      this.groupIncoming = ch.dbVersion;
      this.groupVersion = 0n;
    }
  }

  /** Fast path for {@link insertShape}: one row record, one upsert. */
  insertRow(t: TableContext, group: readonly Change[], base: number): void {
    for (const ch of group) {
      this.ch = ch;
      this.received++;
      this.pending.set(ch.col, ch.val);
    }
    const first = group[0] as Change;
    this.enterGroup(first);
    const v = this.version();
    t.stmts.insertRowRecord.run(this.pk, BigInt(first.colVersion), v, BigInt(base), this.siteRef);
    this.rec = [1, first.colVersion, v, BigInt(base), this.siteRef];
    this.cl = 1;
    this.applied += group.length;
    this.tables.add(t.name);
  }

  /**
   * A fresh local version for a write of this database's own (a compensation, a re-stamp, an
   * eviction): above everything so far, and never shared with the incoming group in progress.
   */
  serverVersion(): bigint {
    this.clock += 1;
    this.groupVersion = 0n;
    return BigInt(this.clock);
  }

  /** Re-reads the clock state of a row (after a rollback or a write that bypassed the cache). */
  reloadRow(t: TableContext, pk: Uint8Array): void {
    this.flush();
    this.sync();
    this.ctx = undefined;
    this.enterRow(t, pk);
  }

  /**
   * The row's sentinel at causal length `cl` and every cell re-stamped at version `v` as this
   * database's write (site 0), col_version + `bump`: devices take the row from here.
   */
  restampRow(t: TableContext, cl: number, v: bigint, bump: 0 | 1): void {
    const s = t.stmts;
    this.sync();
    this.cvsValid = false;
    this.materialize(s);
    s.setSentinel.run(this.pk, BigInt(cl), v, 0n, 0n);
    for (const c of t.columns) {
      const cur = s.cell.getRaw(this.pk, BigInt(c.id));
      s.setCell.run(this.pk, BigInt(c.id), BigInt(cur === undefined ? 1 : Number(cur[0]) + bump), v, BigInt(1 + c.ord), 0n);
    }
  }

  /** Loads the clock state of the change's row when it differs from the previous change's. */
  enterRow(t: TableContext, pk: Uint8Array): void {
    // (Decoded payloads give consecutive changes of one row one key object: identity first.)
    if (t === this.ctx && (pk === this.pk || sameBytes(this.pk, pk))) return;
    this.flush();
    const pkValues = decodePk(pk);
    this.pkProblem = pkValues.length === t.schema.pkColumns.length ? pkTypeProblem(t, pkValues) : undefined;
    if (this.out !== undefined) this.enterQueued(t, pk, pkValues);
    this.ctx = t;
    this.pk = pk;
    this.pkValues = pkValues;
    if (this.pkValues.length !== t.schema.pkColumns.length) {
      throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${t.name} has ${t.schema.pkColumns.length} column(s), change carries ${this.pkValues.length}`);
    }
    const state = t.stmts.rowState;
    if (state !== undefined) {
      const r = state.getRaw(pk) as SqlValue[];
      this.rec = r[0] === null ? undefined : rowRecordOf(r);
      this.cl = this.rec !== undefined ? this.rec[0] : r[6] === 1n ? 1 : 0;
      const rid = r[7 + t.columns.length];
      this.rid = rid === null || rid === undefined ? undefined : (rid as bigint);
      const cvs = this.cvs;
      if (cvs.length !== t.columns.length) cvs.length = t.columns.length;
      for (let i = 0; i < cvs.length; i++) {
        const v = r[7 + i];
        cvs[i] = v === null || v === undefined ? undefined : Number(v);
      }
      this.cvsValid = true;
      return;
    }
    this.cvsValid = false;
    const r = t.stmts.rowRecord.getRaw(pk);
    this.rec = r === undefined ? undefined : rowRecordOf(r);
    this.rid = r === undefined ? undefined : (r[6] as bigint);
    this.cl = this.rec !== undefined ? this.rec[0] : t.stmts.anyCell.getRaw(pk) !== undefined ? 1 : 0;
  }

  /** The merge of one change (§P5). */
  merge(ch: Change): void {
    this.ch = ch;
    this.received++;
    // (Consecutive changes mostly name one table under one spelling: one lookup per run.)
    if (ch.tbl !== this.lastTbl) {
      this.lastTbl = ch.tbl;
      this.lastT = this.host.table(ch.tbl);
    }
    const t = this.lastT;
    if (t === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${ch.tbl} is not enabled for sync on this database`, { details: { table: ch.tbl } });
    }
    const isSentinel = ch.col === RIP_SENTINEL;
    const id = isSentinel ? 0 : t.colIds.get(ch.col);
    if (id === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${ch.col} does not exist in table ${t.name}`, { details: { table: t.name, column: ch.col } });
    }
    this.enterGroup(ch);
    this.enterRow(t, ch.pk);
    const s = t.stmts;
    const colId = id < SMALL_BIGINTS.length ? (SMALL_BIGINTS[id] as bigint) : BigInt(id);
    // The decision is core's (merge/decide.ts); this engine only executes it.
    switch (decideRow(t.algorithm, ch.cl, isSentinel, this.cl)) {
      case 'olderLife':
        // (A replay of the deleter's own earlier cells is stale, not a lost edit.)
        if (this.opts.onConflict !== undefined && !isSentinel && ch.cl % 2 === 1 && this.cl % 2 === 0 && this.rec !== undefined && this.rec[4] !== this.siteRef) {
          this.conflict(t, ch.col, 'update_lost_to_delete', { value: null, colVersion: this.cl, cl: this.cl, siteRef: Number(this.rec[4]) }, false);
        }
        return;
      case 'ignore':
        return;
      case 'create':
        return this.resurrect(t);
      case 'win':
        return this.win(t, colId);
      case 'resurrectThenWin':
        this.resurrect(t);
        return this.win(t, colId);
      case 'resurrect':
        this.resurrect(t);
        this.applied++;
        this.tables.add(t.name);
        return;
      case 'delete':
        return this.delete(t);
      case 'compareCell':
        break;
    }
    let cv: number | undefined;
    const c = this.cvsValid ? t.byId.get(id) : undefined;
    if (c !== undefined) cv = this.cvs[c.ord];
    else {
      if (this.curCells.has(id)) this.sync();
      const explicit = s.cell.getRaw(this.pk, colId);
      cv = explicit === undefined ? undefined : Number(explicit[0]);
    }
    const rec = this.rec;
    const local = cv !== undefined ? cv : rec !== undefined && rec[1] !== null && this.cl % 2 === 1 ? rec[1] : undefined;
    const byVersion = decideCell(ch.colVersion, local);
    if (byVersion === 'win') return this.win(t, colId);
    // An older edit changes nothing; only a conflict log needs to know what it lost to.
    if (byVersion === 'older' && this.opts.onConflict === undefined) return;
    let current: SqlValue | typeof NO_ROW;
    if (this.pending.has(ch.col)) current = this.pending.get(ch.col) ?? null;
    else {
      if (this.curBase) this.sync();
      const row = t.selectColumn(ch.col).getRaw(...this.pkValues);
      current = row === undefined ? NO_ROW : (row[0] ?? null);
    }
    const byValue = decideValue(byVersion, ch.val, current);
    if (byValue === 'fill') return this.win(t, colId);
    if (current === NO_ROW || local === undefined) return; // (type narrowing: a missing row fills, a missing clock wins)
    if (byVersion === 'older') {
      if (byValue === 'lose') this.conflict(t, ch.col, 'superseded', this.localSide(s, colId, local, current), false);
      return;
    }
    if (byValue === 'win') {
      if (this.opts.onConflict !== undefined) this.conflict(t, ch.col, 'tiebreak', this.localSide(s, colId, local, current), true);
      this.win(t, colId);
    } else if (byValue === 'lose' && this.opts.onConflict !== undefined) this.conflict(t, ch.col, 'tiebreak', this.localSide(s, colId, local, current), false);
  }

  /** Executes a `delete` decision: the base row and its cells go, the sentinel takes the change's causal length. */
  delete(t: TableContext): void {
    const s = t.stmts;
    this.flush();
    this.sync();
    this.cvsValid = false;
    this.opts.authorize?.({ table: t.name, kind: 'delete', pk: this.pkValues, values: {} });
    if (this.opts.onConflict !== undefined && this.cl % 2 === 1) {
      // Another device wrote this life of the row (its insert, or a cell since): its write is lost.
      const other = this.rec !== undefined && this.rec[4] !== this.siteRef ? Number(this.rec[4]) : s.otherWriter.getRaw(this.pk, this.siteRef)?.[0];
      const row = other === undefined ? undefined : readRow(t, this.pkValues);
      if (row !== undefined) this.conflict(t, null, 'delete_over_update', { value: null, colVersion: this.cl, cl: this.cl, siteRef: Number(other) }, true, row);
    }
    if (this.host.keepTombstoneValues) {
      const last = readRow(t, this.pkValues);
      if (last !== undefined) s.tombstonePut.run(t.name, this.pk, encodeTombstoneValues(t, last), null);
      // A row this database never held (born and deleted on the device): only its principal
      // may learn of the deletion, and a later insert of the key is not blocked by it.
      else if (this.opts.audience !== undefined && readTombstone(t, this.pk) === undefined) {
        s.tombstonePut.run(t.name, this.pk, null, COMPENSATION);
        s.evictionPut.run(this.opts.audience, t.name, this.pk, BigInt(this.ch.cl), this.serverVersion());
      }
    }
    s.deleteRow.run(...this.pkValues);
    if (this.rec !== undefined) this.rec[1] = null; // cells are dropped below: nothing to materialize
    this.setSentinel(s);
    s.dropCells.run(this.pk);
    this.applied++;
    this.tables.add(t.name);
  }

  /** The stored side of a cell: its value, col_version and the site that wrote it. */
  localSide(s: TableStatements, colId: bigint, cv: number, value: SqlValue): { value: SqlValue; colVersion: number; cl: number; siteRef: number } {
    const clock = s.cellSite.getRaw(this.pk, colId);
    const siteRef = clock !== undefined ? Number(clock[0]) : this.rec !== undefined ? Number(this.rec[4]) : 0;
    return { value, colVersion: cv, cl: this.cl, siteRef };
  }

  /** Reports a conflict between the incoming change and the stored side; `incomingWins` says which lost. */
  conflict(t: TableContext, column: string | null, kind: ConflictKind, stored: { value: SqlValue; colVersion: number; cl: number; siteRef: number }, incomingWins: boolean, row?: Record<string, SqlValue>): void {
    const report = this.opts.onConflict;
    if (report === undefined) return;
    const ch = this.ch;
    const incoming: ConflictSide = { value: column === null ? null : ch.val, colVersion: ch.colVersion, cl: ch.cl, siteId: ch.siteId };
    const local: ConflictSide = { value: stored.value, colVersion: stored.colVersion, cl: stored.cl, siteId: this.host.siteIdOf(stored.siteRef) };
    report({
      table: t.name,
      pk: this.pk,
      pkValues: [...this.pkValues],
      column,
      kind,
      winner: incomingWins ? incoming : local,
      loser: incomingWins ? local : incoming,
      ...(row === undefined ? {} : { row }),
    });
  }
}

/**
 * A whole new row in one group: every value column once, cl 1, one col_version, one origin
 * transaction and seqs laid out as `base + 1 + ordinal`. Such a row is stored as a single row
 * record with implicit cell clocks — the same clocks the per-change path would write, in the
 * compact form local inserts use.
 */
function insertShape(t: TableContext, group: readonly Change[]): { base: number } | undefined {
  const first = group[0];
  if (first === undefined || t.algorithm !== 'cls' || group.length !== t.columns.length || group.length === 0) return undefined;
  const c0 = t.columns.find((c) => c.name === first.col);
  if (c0 === undefined) return undefined;
  const base = first.seq - 1 - c0.ord;
  const seen = new Set<number>();
  for (const ch of group) {
    const col = t.colIds.get(ch.col);
    const c = col === undefined ? undefined : t.byId.get(col);
    if (c === undefined || seen.has(c.id) || ch.cl !== 1 || ch.colVersion !== first.colVersion || ch.dbVersion !== first.dbVersion) return undefined;
    if (ch.siteId !== first.siteId && !sameBytes(ch.siteId, first.siteId)) return undefined;
    if (ch.seq !== base + 1 + c.ord) return undefined;
    seen.add(c.id);
  }
  return { base };
}

/** `BigInt(i)` for the small column ids (one conversion per change otherwise). */
const SMALL_BIGINTS: readonly bigint[] = Array.from({ length: 64 }, (_, i) => BigInt(i));

/** Rows the change-by-change merge enters between two flushes of its queued writes at most. */
const SYNC_ROWS = 256;

/** The columns of an upsert (in column-id order) and its `BatchedWrites` run kind. */
interface UpsertShape {
  cols: readonly string[];
  kind: string;
}

const upsertShapes = new WeakMap<TableContext, Map<number, UpsertShape>>();

/**
 * The upsert of the value columns named in `pending` (names of `t`'s columns): the same columns in
 * column-id order, one shared array per set of columns, so a row's base write builds no strings.
 */
function upsertShape(t: TableContext, pending: ReadonlyMap<string, SqlValue>): UpsertShape {
  let mask = 0;
  for (const col of pending.keys()) {
    const c = t.byId.get(t.colIds.get(col) ?? -1);
    if (c === undefined || c.ord >= 30) {
      const cols = [...pending.keys()];
      return { cols, kind: `u\u0000${cols.join('\u0000')}` };
    }
    mask |= 1 << c.ord;
  }
  let byMask = upsertShapes.get(t);
  if (byMask === undefined) upsertShapes.set(t, (byMask = new Map()));
  let shape = byMask.get(mask);
  if (shape === undefined) {
    const cols = t.columns.filter((c) => (mask & (1 << c.ord)) !== 0).map((c) => c.name);
    shape = { cols, kind: `u\u0000${cols.join('\u0000')}` };
    byMask.set(mask, shape);
  }
  return shape;
}

/**
 * A hash (30 bits) of a row's key values: equal for keys that SQLite's BINARY comparison of the key columns
 * finds equal, for values of the storage class their columns keep (pkTypeProblem).
 */
function baseHash(values: readonly SqlValue[]): number {
  let h = HASH_SEED;
  for (const v of values) {
    // The storage class first, then the value, then a separator.
    if (v === null) h = textHash('n', h);
    else if (typeof v === 'string') h = textHash(v, textHash('s', h));
    else if (v instanceof Uint8Array) h = bytesHash(v, textHash('b', h));
    else h = textHash(String(v), textHash(typeof v === 'bigint' ? 'i' : 'r', h));
    h = textHash('\u00ff', h);
  }
  return smallHash(h);
}

/** The whole row (key and value columns) as stored, or undefined when it does not exist. */
export function readRow(t: TableContext, pkValues: readonly SqlValue[]): RowObject | undefined {
  const r = t.stmts.selectRow.getRaw(...pkValues);
  if (r === undefined) return undefined;
  const o: RowObject = {};
  t.schema.pkColumns.forEach((k, i) => (o[k.name] = pkValues[i] ?? null));
  t.columns.forEach((c, i) => (o[c.name] = r[i] ?? null));
  return o;
}

/** SQLite type affinity of a declared column type (https://sqlite.org/datatype3.html §3.1). */
function affinity(declared: string): 'integer' | 'text' | 'blob' | 'real' | 'numeric' {
  const t = declared.toUpperCase();
  if (t.includes('INT')) return 'integer';
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'text';
  if (t.includes('BLOB') || t === '') return 'blob';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'real';
  return 'numeric';
}

/**
 * Why a change's primary-key values cannot name a row of `t`, or undefined. A key value must
 * have the storage class its column's affinity keeps: an INTEGER/NUMERIC key takes integers
 * (TEXT '5' would be coerced to the row 5 under another metadata identity), a TEXT key takes
 * text (a BLOB x'6131' would read like 'a1'); untyped/BLOB keys take any non-NULL value.
 */
export function pkTypeProblem(t: TableContext, values: readonly SqlValue[]): string | undefined {
  let affs = pkAffinities.get(t);
  if (affs === undefined) pkAffinities.set(t, (affs = t.schema.pkColumns.map((c) => affinity(c.type))));
  for (let i = 0; i < t.schema.pkColumns.length; i++) {
    const c = t.schema.pkColumns[i];
    const v = values[i] ?? null;
    if (c === undefined) continue;
    const a = affs[i] as ReturnType<typeof affinity>;
    const kind = v === null ? 'NULL' : typeof v === 'string' ? 'TEXT' : v instanceof Uint8Array ? 'BLOB' : typeof v === 'bigint' || Number.isInteger(v) ? 'INTEGER' : 'REAL';
    const ok = kind === 'NULL' ? false : a === 'integer' || a === 'numeric' ? kind === 'INTEGER' : a === 'text' ? kind === 'TEXT' : a === 'real' ? false : kind !== 'REAL';
    if (!ok) return `Primary-key column ${c.name} of table ${t.name} is declared ${c.type || 'without a type'}; the change carries a ${kind} value`;
  }
  return undefined;
}

const pkAffinities = new WeakMap<TableContext, ReturnType<typeof affinity>[]>();

function isConstraintError(e: unknown): e is Error {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT');
}

/** Thrown inside a row savepoint to roll it back. */
class RowRejected extends Error {
  constructor(readonly verdict: RowVerdict, readonly operation: RowOperation) {
    super(verdict.reason);
  }
}

function rejectedValues(t: TableContext, group: readonly Change[]): Record<string, SqlValue> {
  const out: Record<string, SqlValue> = {};
  for (const ch of group) if (ch.col !== RIP_SENTINEL && t.colIds.has(ch.col)) out[ch.col] = ch.val;
  return out;
}

/**
 * Compensation of a rejected row (docs/ARCHITECTURE.md "RLS model"): server-local clocks that
 * win over the rejected changes on the device that made them, without changing any value:
 *
 * - the row is alive centrally: the cells the device wrote get col_version = max(local,
 *   incoming) + 1 (the device takes the central values back); a device delete or resurrection
 *   with a higher causal length is answered with an odd causal length above it and every cell
 *   re-stamped (the row comes back whole);
 * - the row is alive but the principal may not see it (`RowVerdict.visible` false): a removal
 *   addressed to `audience` alone (`offsync_evictions`), central clocks untouched;
 * - the row is absent or deleted centrally: a tombstone with an even causal length above both
 *   sides, addressed to `audience` only (no other device learns the key); a later permitted
 *   insert of that key is rebased over it (see `mergeRow`).
 */
function compensate(m: Merge, t: TableContext, group: readonly Change[], audience: string | null, visible: boolean): void {
  m.reloadRow(t, (group[0] as Change).pk);
  const s = t.stmts;
  const pk = m.pk;
  const v = m.serverVersion();
  let maxCl = 0;
  for (const ch of group) maxCl = Math.max(maxCl, ch.cl);
  const alive = m.cl % 2 === 1 && readRow(t, m.pkValues) !== undefined;
  if (alive && !visible && audience !== null) {
    // The device may not hold this row at all: remove it there, and only there.
    evict(t, pk, audience, Math.max(maxCl, m.cl), v);
  } else if (alive && maxCl > m.cl) {
    m.restampRow(t, maxCl % 2 === 0 ? maxCl + 1 : maxCl + 2, v, 1);
  } else if (alive) {
    const rec = m.rec;
    for (const c of t.columns) {
      let incoming = -1;
      for (const ch of group) if (ch.col === c.name) incoming = Math.max(incoming, ch.colVersion);
      if (incoming < 0) continue;
      const explicit = s.cell.getRaw(pk, BigInt(c.id));
      const local = explicit !== undefined ? Number(explicit[0]) : rec !== undefined && rec[1] !== null ? rec[1] : 0;
      s.setCell.run(pk, BigInt(c.id), BigInt(Math.max(local, incoming) + 1), v, BigInt(1 + c.ord), 0n);
    }
  } else {
    const top = Math.max(maxCl, m.cl);
    const cl = top % 2 === 0 ? top + 2 : top + 1;
    const prev = readTombstone(t, pk);
    s.setSentinel.run(pk, BigInt(cl), v, 0n, 0n);
    s.dropCells.run(pk);
    // The central tombstone is marked as a compensation (it never blocks a permitted insert) and
    // keeps the last values of a real earlier life; the rejecting principal's devices are told
    // through an eviction, so several principals' rejections of one key each reach their devices.
    const vals = prev?.lastValues === undefined ? null : encodeTombstoneValues(t, prev.lastValues);
    s.tombstonePut.run(t.name, pk, vals, COMPENSATION);
    if (audience !== null) s.evictionPut.run(audience, t.name, pk, BigInt(cl), v);
  }
  m.ctx = undefined;
}

/**
 * `offsync_tombstones.audience` of a tombstone that only the server knows (a compensation, or a
 * row born and deleted on a device): never sent by itself under RLS, and a later permitted insert
 * of the key is rebased above it. Principals are told through `offsync_evictions`.
 */
export const COMPENSATION = '*';

/** A removal of `pk` addressed to `audience` only, with a causal length above `above` (even). */
function evict(t: TableContext, pk: Uint8Array, audience: string, above: number, version: bigint): void {
  t.stmts.evictionPut.run(audience, t.name, pk, BigInt(above % 2 === 0 ? above + 2 : above + 1), version);
}

/**
 * After a judged row: if the device's latest life of the row is alive (odd causal length) but
 * the principal may not hold the row as it stands centrally — the device wrote over a row it
 * cannot see and its changes lost, or a permitted write took the row out of its sight — the
 * device gets a removal addressed to its principal.
 */
function evictIfHidden(m: Merge, t: TableContext, group: readonly Change[], opts: ApplyOptions): void {
  if (opts.canHold === undefined || opts.audience === undefined) return;
  let maxCl = 0;
  for (const ch of group) maxCl = Math.max(maxCl, ch.cl);
  if (maxCl % 2 === 0) return;
  m.reloadRow(t, (group[0] as Change).pk);
  const row = readRow(t, m.pkValues);
  const holdable = row !== undefined ? opts.canHold(t.name, m.pkValues, row) : opts.canHold(t.name, m.pkValues, undefined, readTombstone(t, m.pk));
  if (!holdable) evict(t, m.pk, opts.audience, Math.max(maxCl, m.cl), m.serverVersion());
  m.ctx = undefined;
}

/** True when a visibility column differs between the two rows. */
function visibilityChanged(cols: ReadonlySet<string>, before: RowObject, after: RowObject): boolean {
  for (const c of cols) if (compareForMerge(before[c] ?? null, after[c] ?? null) !== 0) return true;
  return false;
}

/**
 * A new life of a live row after a visibility-relevant change: the prior values are kept in
 * `offsync_prior` at a new version, the causal length moves up by 2 and every cell is re-stamped
 * there as this database's write. Devices that may still (or newly) see the row receive it whole;
 * devices that no longer may get a removal at the causal length in between (extract.ts), which the
 * new life still beats should the row come back into their sight.
 */
function startNewLife(m: Merge, t: TableContext, pk: Uint8Array, prior: RowObject): void {
  m.reloadRow(t, pk);
  const v = m.serverVersion();
  t.stmts.priorPut.run(t.name, pk, v, encodeTombstoneValues(t, prior));
  m.restampRow(t, m.cl + 2, v, 0);
  m.ctx = undefined;
}

/** Re-stamps a live row as this database's own write: sentinel and every cell at a new version, site 0. */
function restampLocal(m: Merge, t: TableContext, pk: Uint8Array): void {
  m.reloadRow(t, pk);
  m.restampRow(t, m.cl, m.serverVersion(), 0);
  m.ctx = undefined;
}

/** Merges `changes` in order. Must run inside a transaction with triggers suppressed. */
export function mergeChanges(host: MergeHost, changes: Iterable<Change>, opts: ApplyOptions): ApplyResult {
  const { authorize: _perWrite, ...rowMode } = opts;
  const m = new Merge(host, opts.judge !== undefined || opts.isolateRows === true ? rowMode : opts);
  const rejected: RejectedRow[] = [];
  const audience = opts.audience ?? null;
  let last: { dbVersion: number; seq: number } | undefined;

  /** Type check + rebase + merge of one row's changes; true when the row must be re-stamped as local. */
  const mergeRow = (t: TableContext | undefined, input: Change[]): boolean => {
    const first = input[0] as Change;
    if (t === undefined) {
      for (const ch of input) m.merge(ch); // throws UNKNOWN_TABLE
      return false;
    }
    m.ch = first;
    m.enterRow(t, first.pk);
    let group = input;
    let rebasedFrom: { cl: number } | undefined;
    if (m.cl > 0 && m.cl % 2 === 0) {
      // A tombstone that only compensated a rejected write must not block a permitted insert.
      let maxCl = 0;
      for (const ch of group) maxCl = Math.max(maxCl, ch.cl);
      const aud = maxCl <= m.cl && group.some((ch) => ch.cl % 2 === 1) ? readTombstone(t, m.pk)?.audience : undefined;
      if (aud != null) {
        const shift = m.cl;
        rebasedFrom = { cl: m.cl };
        group = group.map((ch) => ({ ...ch, cl: ch.cl + shift }));
      }
    }
    const pk = m.pk;
    const shape = m.cl === 0 ? insertShape(t, group) : undefined;
    if (shape !== undefined) m.insertRow(t, group, shape.base);
    else for (const ch of group) m.merge(ch);
    if (rebasedFrom === undefined) return false;
    m.flush();
    // The evictions of the principals the compensation answered stay: they remove the forged row
    // from their devices, and the new life (a causal length above them) comes back if they may see it.
    t.stmts.tombstonePut.run(t.name, pk, null, null);
    return true;
  };

  const reject = (t: TableContext, group: Change[], operation: RowOperation, verdict: RowVerdict, compensated = true): void => {
    const first = group[0] as Change;
    rejected.push({
      table: t.name,
      pk: first.pk,
      pkValues: decodePk(first.pk),
      operation,
      code: verdict.code,
      reason: verdict.reason,
      policy: verdict.policy ?? null,
      values: rejectedValues(t, group),
    });
    if (!compensated) {
      m.ctx = undefined;
      return;
    }
    let visible = verdict.visible ?? true;
    if (opts.canHold !== undefined) {
      const row = readRow(t, decodePk(first.pk));
      visible = row !== undefined && opts.canHold(t.name, decodePk(first.pk), row);
    }
    compensate(m, t, group, audience, visible);
  };

  /** Rejects a row whose key values have the wrong types; true when it was rejected. */
  const rejectBadKey = (t: TableContext | undefined, group: Change[]): boolean => {
    if (t === undefined) return false;
    const first = group[0] as Change;
    m.ch = first;
    m.enterRow(t, first.pk);
    const problem = m.pkProblem;
    if (problem === undefined) return false;
    m.sync();
    if (opts.rejectRows !== true && opts.judge === undefined) {
      // A device takes a removal under such a key (the server's compensation of a rejected
      // write of that key, e.g. a BLOB written into a TEXT key column): refusing it would stick
      // every download. Anything else with a wrong-typed key refuses the batch.
      if (group.every((ch) => ch.col === RIP_SENTINEL && ch.cl % 2 === 0)) return false;
      throw new CoreError(CoreErrorCode.PK_INVALID, problem, { details: { table: t.name } });
    }
    m.received += group.length;
    // No compensation for a key that SQLite's comparison matches to a row (TEXT '5' = INTEGER 5 in
    // an INTEGER column): no client holds such a key (the column's affinity stored the matched
    // value), and a removal under it would reach, and delete, that row on every device holding it.
    reject(t, group, 'INSERT', { code: RejectionCode.PK_TYPE_MISMATCH, reason: problem }, readRow(t, m.pkValues) === undefined);
    return true;
  };

  if (opts.judge === undefined && opts.isolateRows !== true) {
    // A batch whose first row is known and whose other keys may all be new (a page of an initial
    // sync that starts inside the row the previous page ended with): that row takes the merge
    // below, then the rest is offered to the fresh merge with the group state it leaves.
    const batch = Array.isArray(changes) ? (changes as readonly Change[]) : undefined;
    let cut = batch === undefined ? 0 : knownHeadCut(host, batch, opts);
    if (batch !== undefined) {
      const fast = (cut === 0 ? mergeFresh(host, batch, opts) : undefined) ?? mergeGrouped(host, batch, opts);
      if (fast !== undefined) return fast;
    }
    if (cut === KNOWN_HEAD) cut = 0;
    // Queued writes (see `Merge.out`) only where no callback could observe a single write.
    if (!observesSingleWrites(host, opts) && opts.visibilityColumns === undefined) m.out = new BatchedWrites();
    let group: Change[] = [];
    const flushGroup = (): void => {
      const first = group[0];
      if (first === undefined) return;
      const t = host.table(first.tbl);
      const g = group;
      group = [];
      if (rejectBadKey(t, g)) return;
      const vis = t === undefined ? undefined : opts.visibilityColumns?.get(t.name.toLowerCase());
      const before = vis === undefined || t === undefined ? undefined : readRow(t, m.pkValues);
      if (mergeRow(t, g) && t !== undefined) restampLocal(m, t, first.pk);
      if (vis !== undefined && before !== undefined && t !== undefined) {
        m.flush();
        const after = readRow(t, decodePk(first.pk));
        if (after !== undefined && visibilityChanged(vis, before, after)) startNewLife(m, t, first.pk, before);
      }
    };
    let lastCh: Change | undefined;
    try {
      let i = 0;
      for (const ch of changes) {
        if (i++ === cut && batch !== undefined && cut > 0) {
          flushGroup();
          m.flush();
          m.sync();
          const tail = freshTail(host, batch, cut, opts, m);
          if (tail !== undefined) {
            const tables = new Set(m.tables);
            for (const name of tail.tables) tables.add(name);
            return { received: m.received + tail.received, applied: m.applied + tail.applied, tables: [...tables], last: tail.last, dbVersion: tail.dbVersion, rejected };
          }
        }
        const head = group[0];
        if (head !== undefined && (head.tbl !== ch.tbl || (head.pk !== ch.pk && !sameBytes(head.pk, ch.pk)))) flushGroup();
        group.push(ch);
        lastCh = ch;
      }
      flushGroup();
      m.flush();
      m.sync();
    } catch (e) {
      // A queued write that fails came before whatever threw here: report it, as the merge
      // writing at once would have.
      m.sync();
      throw e;
    }
    if (lastCh !== undefined) last = { dbVersion: lastCh.dbVersion, seq: lastCh.seq };
    host.setClock(m.clock);
    return { received: m.received, applied: m.applied, tables: [...m.tables], last, dbVersion: m.clock, rejected };
  }

  // Row by row: validate the whole batch first (schema errors refuse it whole), then merge each
  // row in a savepoint, judge the transition, and roll back + compensate a refused row.
  const rows = new Map<string, { t: TableContext; changes: Change[] }>();
  const sites = new Map<string, Uint8Array>();
  for (const ch of changes) {
    const t = host.table(ch.tbl);
    if (t === undefined) throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${ch.tbl} is not enabled for sync on this database`, { details: { table: ch.tbl } });
    if (ch.col !== RIP_SENTINEL && !t.colIds.has(ch.col)) {
      throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${ch.col} does not exist in table ${t.name}`, { details: { table: t.name, column: ch.col } });
    }
    const key = `${t.name.toLowerCase()}\u0000${bytesKey(ch.pk)}`;
    const row = rows.get(key);
    if (row === undefined) rows.set(key, { t, changes: [ch] });
    else row.changes.push(ch);
    sites.set(bytesKey(ch.siteId), ch.siteId);
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
  }
  for (const id of sites.values()) host.siteRef(id); // outside the row savepoints
  for (const { t, changes: group } of rows.values()) {
    m.ctx = undefined;
    if (rejectBadKey(t, group)) continue;
    const first = group[0] as Change;
    const pkValues = m.pkValues;
    const before = readRow(t, pkValues);
    const applied = m.applied;
    const received = m.received;
    const hadTable = m.tables.has(t.name);
    let accepted = true;
    // A new life sends removals through the feed (prior values); no eviction on top of it.
    let renewed = false;
    try {
      host.savepoint(() => {
        let operation: RowOperation = before === undefined ? 'INSERT' : 'UPDATE';
        try {
          const restamp = mergeRow(t, group);
          m.flush();
          if (m.applied === applied) return;
          const after = readRow(t, pkValues);
          if (before === undefined && after === undefined) return;
          operation = before === undefined ? 'INSERT' : after === undefined ? 'DELETE' : 'UPDATE';
          const verdict = opts.judge?.({ table: t.name, pk: first.pk, pkValues, operation, old: before, new: after });
          if (verdict !== undefined) throw new RowRejected(verdict, operation);
          if (restamp) restampLocal(m, t, first.pk);
          const vis = opts.visibilityColumns?.get(t.name.toLowerCase());
          if (vis !== undefined && before !== undefined && after !== undefined && visibilityChanged(vis, before, after)) {
            startNewLife(m, t, first.pk, before);
            renewed = true;
          }
        } catch (e) {
          if (e instanceof RowRejected || !isConstraintError(e)) throw e;
          throw new RowRejected({ code: RejectionCode.CONSTRAINT_VIOLATION, reason: e.message }, operation);
        }
      });
    } catch (e) {
      if (!(e instanceof RowRejected)) throw e;
      m.pending.clear();
      m.ctx = undefined;
      m.applied = applied;
      m.received = received + group.length;
      if (!hadTable) m.tables.delete(t.name);
      reject(t, group, e.operation, e.verdict);
      accepted = false;
    }
    if (accepted && !renewed) evictIfHidden(m, t, group, opts);
  }
  host.setClock(m.clock);
  return { received: m.received, applied: m.applied, tables: [...m.tables], last, dbVersion: m.clock, rejected };
}

/** A row of a fresh merge: its state after each change, in batch order (mirrors `Merge.merge`). */
interface FreshRow {
  t: TableContext;
  pk: Uint8Array;
  pkValues: SqlValue[];
  cl: number;
  /** Sentinel clock [cl, group, seq, site], or undefined. */
  sent: number[] | undefined;
  /**
   * Where the row's cell clocks start in its merge's {@link FreshClocks}: per value column (by
   * ordinal), [col_version, group, seq, site]; group -1 = no clock.
   */
  at: number;
  cellCount: number;
  /** Values written since the row last came to life (what the base row holds from this batch), by ordinal; undefined: none. */
  values: (SqlValue | undefined)[];
  valueCount: number;
  /** A delete of this batch removed the base row (and nothing brought it back yet). */
  deleted: boolean;
  deletedOnce: boolean;
  /** A resurrection recreated the base row (its key alone, when no value follows). */
  revived: boolean;
}

/**
 * The cell clocks of every row of one fresh merge, in one growing Float64Array (clocks are safe
 * integers): no clock array per row.
 */
class FreshClocks {
  k = new Float64Array(4096);
  #used = 0;

  /** Room for `n` cells without clocks; returns where they start. */
  alloc(n: number): number {
    const at = this.#used;
    const end = at + 4 * n;
    if (end > this.k.length) {
      let size = this.k.length * 2;
      while (size < end) size *= 2;
      const k = new Float64Array(size);
      k.set(this.k.subarray(0, at));
      this.k = k;
    }
    for (let i = at + 1; i < end; i += 4) this.k[i] = -1;
    this.#used = end;
    return at;
  }
}

function freshRow(t: TableContext, pk: Uint8Array, pkValues: SqlValue[], clocks: FreshClocks): FreshRow {
  const n = t.columns.length;
  return { t, pk, pkValues, cl: 0, sent: undefined, at: clocks.alloc(n), cellCount: 0, values: new Array<SqlValue | undefined>(n), valueCount: 0, deleted: false, deletedOnce: false, revived: false };
}

function clearCells(r: FreshRow, k: Float64Array): void {
  for (let i = 0; i < r.t.columns.length; i++) {
    k[r.at + 4 * i + 1] = -1;
    r.values[i] = undefined;
  }
  r.cellCount = 0;
  r.valueCount = 0;
}

/**
 * The key values of `pk` for a grouped merge, or undefined when the key does not decode, has the
 * wrong arity or a value of the wrong type for `t` (the grouped merges then leave the batch to the
 * change-by-change merge, which refuses or rejects it with its own error).
 */
function groupedPkValues(t: TableContext, pk: Uint8Array): SqlValue[] | undefined {
  let pkValues: SqlValue[];
  try {
    pkValues = decodePk(pk);
  } catch {
    return undefined;
  }
  return pkValues.length === t.schema.pkColumns.length && pkTypeProblem(t, pkValues) === undefined ? pkValues : undefined;
}

/**
 * The incoming groups of a batch — runs of one (origin site, db_version), as `Merge.enterGroup`
 * delimits them — for the grouped merges: each group's db_version, site ref and whether any of
 * its changes won (only winning groups take a local version).
 */
class IncomingGroups {
  readonly dbv: number[] = [];
  readonly site: number[] = [];
  readonly wins: boolean[] = [];
  /** Index of the current change's group (-1 before the first). */
  index = -1;
  /** Site ref of the current change. */
  siteRef = -1;
  #siteBytes: Uint8Array | undefined;
  #curSite = -1;
  #curDbv = -1;
  readonly #host: { siteRef(siteId: Uint8Array): number };

  constructor(host: { siteRef(siteId: Uint8Array): number }) {
    this.#host = host;
  }

  /** Enters the next change of the batch (site ids compared by bytes before asking the host). */
  enter(ch: Change): void {
    const bytes = this.#siteBytes;
    if (bytes !== ch.siteId && (bytes === undefined || !sameBytes(bytes, ch.siteId))) {
      this.#siteBytes = ch.siteId;
      const ref = this.#host.siteRef(ch.siteId);
      if (ref !== this.siteRef) this.#curSite = -1;
      this.siteRef = ref;
    }
    if (this.#curSite !== this.siteRef || ch.dbVersion !== this.#curDbv) {
      this.#curSite = this.siteRef;
      this.#curDbv = ch.dbVersion;
      this.index++;
      this.dbv.push(ch.dbVersion);
      this.site.push(this.siteRef);
      this.wins.push(false);
    }
  }
}

/** Options under which a merge must make its writes one by one (the grouped merges then stand aside). */
function observesSingleWrites(host: MergeHost, opts: ApplyOptions): boolean {
  return opts.authorize !== undefined || opts.onConflict !== undefined || host.keepTombstoneValues;
}

/** A table the grouped merges may take: causal-length CRDT, no visibility columns. */
function groupable(t: TableContext, opts: ApplyOptions): boolean {
  return t.algorithm === 'cls' && opts.visibilityColumns?.get(t.name.toLowerCase()) === undefined;
}

/** True when the table holds any clock at all. */
const holdsMetadata = (t: TableContext): boolean => Number(t.stmts.anyMetadata.getRaw()?.[0] ?? 1) !== 0;

/**
 * The incoming group a merge ended in and the local version it gave that group (0n: none yet):
 * a fresh merge of the batch's rest continues it (`Merge.groupSite`, `groupIncoming`, `groupVersion`).
 */
interface GroupCarry {
  site: number;
  dbv: number;
  version: bigint;
}

/** {@link knownHeadCut}: the target knows the batch's first key, so the fresh merge cannot take the batch. */
const KNOWN_HEAD = -1;

/**
 * The number of changes of the batch's first row when the target knows its key (a record, bare or
 * not, or a base row) and not the next row's, so the fresh merge could take the rest;
 * {@link KNOWN_HEAD} when it knows the first key and the rest does not start with a new one; else
 * 0. Two existence checks of one key each.
 */
function knownHeadCut(host: MergeHost, changes: readonly Change[], opts: ApplyOptions): number {
  const first = changes[0];
  if (first === undefined || observesSingleWrites(host, opts)) return 0;
  let n = 1;
  while (n < changes.length && (changes[n] as Change).tbl === first.tbl && sameBytes((changes[n] as Change).pk, first.pk)) n++;
  if (n === changes.length) return 0;
  const t = host.table(first.tbl);
  if (t === undefined || !groupable(t, opts) || !holdsMetadata(t)) return 0;
  const pkValues = groupedPkValues(t, first.pk);
  if (pkValues === undefined || !anyKnownKey(t, [{ pk: first.pk, pkValues }])) return 0;
  // The rest is worth offering only if it starts with a new key (a batch of known rows, the usual
  // exchange between replicas, would pay a fresh merge's whole pass to find one).
  const next = changes[n] as Change;
  const nt = next.tbl === first.tbl ? t : host.table(next.tbl);
  const nextValues = nt === undefined ? undefined : groupedPkValues(nt, next.pk);
  // (A known first row and a known next one: the usual exchange between replicas, which the fresh
  // merge would pay a whole pass over the batch to refuse.)
  if (nt === undefined || nextValues === undefined || anyKnownKey(nt, [{ pk: next.pk, pkValues: nextValues }])) return KNOWN_HEAD;
  return n;
}

/**
 * The fresh merge of `changes` from `cut` on, after the change-by-change merge `m` took the ones
 * before (its writes made): the clock and the group in progress carry over, so the local versions
 * are those one merge of the whole batch assigns. Undefined when the rest needs the general merge.
 */
function freshTail(host: MergeHost, changes: readonly Change[], cut: number, opts: ApplyOptions, m: Merge): ApplyResult | undefined {
  host.setClock(m.clock);
  return mergeFresh(host, changes.slice(cut), opts, { site: m.groupSite, dbv: m.groupIncoming, version: m.groupVersion });
}

/**
 * The merge of a batch whose keys are all new to the target, grouped by (table, pk) across the
 * whole batch: every row's changes are merged in memory in batch order, with exactly the
 * decisions `Merge.merge` takes for a row without metadata, then each row is written once — one
 * base write, one row record whose implicit cells carry the clock most of its cells share,
 * explicit cells only for the others — with the local versions the change-by-change merge
 * assigns (one per incoming group with a winning change, in batch order, from the current clock).
 * Into a table that holds no clock at all (a fresh device's first page, a new database) no lookup
 * is made; into one that does (the later pages of an initial sync), one existence check per chunk
 * of the batch's keys (`TableContext.anyKnownKey`: a row record, bare or not, or a base row)
 * comes before any write. Returns undefined (nothing written but site references) when the batch
 * needs the general merge: options that observe single writes (authorize, conflicts, visibility,
 * tombstone values), a key the target knows, a grow-only table, an unknown table or column, a bad
 * key, or a tie that needs a stored value.
 */
function mergeFresh(host: MergeHost, changes: readonly Change[], opts: ApplyOptions, carry?: GroupCarry): ApplyResult | undefined {
  if (changes.length === 0 || observesSingleWrites(host, opts)) return undefined;
  const byName = new Map<string, TableContext | null>();
  /** Tables that hold metadata: the batch's keys are checked against them before anything is written. */
  const withMetadata = new Set<TableContext>();
  const tableOf = (name: string): TableContext | undefined => {
    let t = byName.get(name);
    if (t === undefined) {
      const ctx = host.table(name);
      const ok = ctx !== undefined && groupable(ctx, opts);
      if (ok && holdsMetadata(ctx)) withMetadata.add(ctx);
      t = ok ? ctx : null;
      byName.set(name, t);
    }
    return t ?? undefined;
  };
  let prevTbl: string | undefined;
  let prevT: TableContext | undefined;
  for (const ch of changes) {
    if (ch.tbl !== prevTbl) {
      prevTbl = ch.tbl;
      prevT = tableOf(ch.tbl);
    }
    if (prevT === undefined) return undefined;
    if (ch.col !== RIP_SENTINEL && !prevT.colIds.has(ch.col)) return undefined;
  }
  const authoritative = opts.rejectRows === true;
  // Incoming groups (origin site + db_version runs, as `Merge.enterGroup` delimits them).
  const groups = new IncomingGroups(host);
  const { dbv: groupDbv, site: groupSite, wins: groupWins } = groups;
  let siteRef = -1;
  let gi = -1;
  const rowsByTable = new Map<TableContext, RowsByKey<FreshRow>>();
  const order: FreshRow[] = [];
  let row: FreshRow | undefined;
  let applied = 0;
  const tables = new Set<string>();
  const clocks = new FreshClocks();
  const win = (r: FreshRow, ch: Change, ord: number, g: number): void => {
    const k = r.at + 4 * ord;
    const c = clocks.k;
    if (c[k + 1] === -1) r.cellCount++;
    c[k] = ch.colVersion;
    c[k + 1] = g;
    c[k + 2] = ch.seq;
    c[k + 3] = groupSite[g] as number;
    if (r.values[ord] === undefined) r.valueCount++;
    r.values[ord] = ch.val;
    if (r.cl === 0) r.cl = 1;
    groupWins[g] = true;
    applied++;
    tables.add(r.t.name);
  };
  const resurrect = (r: FreshRow, ch: Change, g: number): void => {
    const k = clocks.k;
    for (let i = r.at; i < r.at + 4 * r.t.columns.length; i += 4) if (k[i + 1] !== -1) k[i] = 0;
    r.sent = [ch.cl, g, ch.seq, groupSite[g] as number];
    r.cl = ch.cl;
    r.deleted = false;
    r.revived = true;
    groupWins[g] = true;
  };
  prevTbl = undefined;
  for (const ch of changes) {
    groups.enter(ch);
    gi = groups.index;
    siteRef = groups.siteRef;
    if (ch.tbl !== prevTbl) {
      prevTbl = ch.tbl;
      prevT = tableOf(ch.tbl);
    }
    const t = prevT as TableContext;
    if (row === undefined || row.t !== t || !sameBytes(row.pk, ch.pk)) {
      let rows = rowsByTable.get(t);
      if (rows === undefined) rowsByTable.set(t, (rows = new RowsByKey()));
      row = rows.find(ch.pk);
      if (row === undefined) {
        const pkValues = groupedPkValues(t, ch.pk);
        if (pkValues === undefined) return undefined;
        row = freshRow(t, ch.pk, pkValues, clocks);
        rows.add(row);
        order.push(row);
      }
    }
    const r = row;
    // The decision is core's (merge/decide.ts), taken on the row's state in memory.
    const action = decideRow(t.algorithm, ch.cl, ch.col === RIP_SENTINEL, r.cl);
    if (action === 'olderLife' || action === 'ignore') continue;
    if (action === 'delete') {
      r.deleted = true;
      r.deletedOnce = true;
      r.revived = false;
      clearCells(r, clocks.k);
      r.sent = [ch.cl, gi, ch.seq, siteRef];
      r.cl = ch.cl;
      groupWins[gi] = true;
      applied++;
      tables.add(t.name);
      continue;
    }
    if (action === 'resurrect') {
      resurrect(r, ch, gi);
      applied++;
      tables.add(t.name);
      continue;
    }
    if (action === 'create') return undefined; // grow-only: never here (such tables take the general merge)
    const c = t.byId.get(t.colIds.get(ch.col) as number);
    if (c === undefined) return undefined; // a column the table no longer has: the general merge reports it
    const ord = c.ord;
    if (action === 'resurrectThenWin') resurrect(r, ch, gi);
    if (action !== 'compareCell') {
      win(r, ch, ord, gi);
      continue;
    }
    const byVersion = decideCell(ch.colVersion, clocks.k[r.at + 4 * ord + 1] === -1 ? undefined : (clocks.k[r.at + 4 * ord] as number));
    if (byVersion === 'win') {
      win(r, ch, ord, gi);
      continue;
    }
    if (byVersion === 'older') continue;
    // The tie needs the stored value: a column default, or a value the column's affinity may have
    // converted (the change-by-change merge compares a value it wrote in an earlier run of the
    // row as the column stored it).
    const current = r.values[ord];
    if (current === undefined || !storedAsGiven(columnAffinities(t)[ord] as ReturnType<typeof affinity>, current)) return undefined;
    if (decideValue('tie', ch.val, current) === 'win') win(r, ch, ord, gi);
  }
  for (const t of withMetadata) {
    const rows = rowsByTable.get(t);
    if (rows !== undefined && anyKnownKey(t, rows.list)) return undefined;
  }
  // Local versions, in batch order: one per incoming group that wrote anything.
  let clock = host.clock();
  const version: bigint[] = new Array<bigint>(groupDbv.length);
  for (let g = 0; g < groupDbv.length; g++) {
    if (!groupWins[g]) continue;
    if (g === 0 && carry !== undefined && carry.version !== 0n && carry.site === groupSite[0] && carry.dbv === groupDbv[0]) {
      version[0] = carry.version; // the group the merge before this one numbered
      continue;
    }
    clock = authoritative ? clock + 1 : Math.max(clock + 1, groupDbv[g] as number);
    version[g] = BigInt(clock);
  }
  const siteBig = new Map<number, bigint>();
  const big = (n: number): bigint => {
    let b = siteBig.get(n);
    if (b === undefined) siteBig.set(n, (b = BigInt(n)));
    return b;
  };
  const out = new BatchedWrites();
  for (const r of order) writeFreshRow(r, clocks.k, version, big, out);
  out.flush();
  host.setClock(clock);
  const lastCh = changes[changes.length - 1] as Change;
  return { received: changes.length, applied, tables: [...tables], last: { dbVersion: lastCh.dbVersion, seq: lastCh.seq }, dbVersion: clock, rejected: [] };
}

/** True when the target knows any key of `rows` (one table's): one `anyKnownKey` read per chunk of keys. */
/** A row of a batch by its key: the key blob and its decoded values. */
interface KeyedRow {
  readonly pk: Uint8Array;
  readonly pkValues: readonly SqlValue[];
}

function anyKnownKey(t: TableContext, rows: readonly KeyedRow[]): boolean {
  const width = t.schema.pkColumns.length;
  for (let at = 0; at < rows.length; ) {
    const left = rows.length - at;
    let n = 1;
    while (n < left && n < GROUP_CHUNK) n *= 2;
    const take = Math.min(n, left);
    const params = new Array<SqlValue>(n * (1 + width));
    for (let j = 0; j < n; j++) {
      const r = rows[at + Math.min(j, take - 1)] as KeyedRow;
      params[j] = r.pk;
      for (let k = 0; k < width; k++) params[n + j * width + k] = r.pkValues[k] as SqlValue;
    }
    if (Number(t.anyKnownKey(n).getRaw(...params)?.[0] ?? 1) !== 0) return true;
    at += take;
  }
  return false;
}

/** Writes a fresh row; `k` holds its cell clocks from `r.at` on (`FreshClocks.k`). */
function writeFreshRow(r: FreshRow, k: Float64Array, version: readonly bigint[], big: (n: number) => bigint, out: BatchedWrites): void {
  if (r.cl === 0) return;
  const t = r.t;
  const cols = t.columns;
  if (r.deletedOnce) out.deleteRow(t, r.pkValues);
  if (!r.deleted) {
    if (r.valueCount === cols.length) out.upsert(t, t.columnNames, r.pkValues, r.values as SqlValue[]); // (every value set)
    else if (r.valueCount > 0) {
      const names: string[] = [];
      const vals: SqlValue[] = [];
      for (const c of cols) {
        const v = r.values[c.ord];
        if (v === undefined) continue;
        names.push(c.name);
        vals.push(v);
      }
      out.upsert(t, names, r.pkValues, vals);
    } else if (r.revived) out.insertPkOnly(t, r.pkValues);
  }
  const sent = r.sent;
  // (No record of the key before a fresh merge: the record's upsert inserts, like setSentinel or insertRowRecord.)
  if (sent !== undefined) out.putRowRecord(t, r.pk, BigInt(sent[0] as number), 1n, null, version[sent[1] as number] as bigint, BigInt(sent[2] as number), big(sent[3] as number));
  const o = r.at;
  // A live row whose every cell has a clock keeps the clock most of them share as implicit cells
  // (one row record, like a local insert); the other cells stay explicit.
  let best = -1;
  if (sent === undefined && r.cl === 1 && r.cellCount === cols.length && cols.length > 0) {
    let bestCount = 0;
    for (let i = 0; i < cols.length && bestCount <= cols.length - i; i++) {
      let n = 0;
      for (let j = 0; j < cols.length; j++) {
        if (k[o + 4 * j] === k[o + 4 * i] && k[o + 4 * j + 1] === k[o + 4 * i + 1] && k[o + 4 * j + 3] === k[o + 4 * i + 3] && (k[o + 4 * j + 2] as number) - j === (k[o + 4 * i + 2] as number) - i) n++;
      }
      if (n > bestCount) {
        bestCount = n;
        best = i;
      }
    }
  }
  const bi = 4 * best;
  if (best >= 0) out.putRowRecord(t, r.pk, 1n, 0n, BigInt(k[o + bi] as number), version[k[o + bi + 1] as number] as bigint, BigInt((k[o + bi + 2] as number) - 1 - best), big(k[o + bi + 3] as number));
  for (let j = 0; j < cols.length; j++) {
    const g = k[o + 4 * j + 1] as number;
    if (g === -1) continue;
    if (best >= 0 && k[o + 4 * j] === k[o + bi] && g === k[o + bi + 1] && k[o + 4 * j + 3] === k[o + bi + 3] && (k[o + 4 * j + 2] as number) - j === (k[o + bi + 2] as number) - best) continue;
    out.setCell(t, r.pk, BigInt((cols[j] as { id: number }).id), BigInt(k[o + 4 * j] as number), version[g] as bigint, BigInt(k[o + 4 * j + 2] as number), big(k[o + 4 * j + 3] as number), sent !== undefined || best >= 0);
  }
}

/** An explicit cell of a grouped row; `dbv` ≥ 0 is a stored version, -(g + 1) the local version of incoming group g. */
interface GCell {
  cv: number;
  dbv: number;
  seq: number;
  site: number;
  dirty: boolean;
}

/** A row record of a grouped row (`dbv` as in {@link GCell}). */
interface GRecord {
  cl: number;
  sent: number;
  icv: number | null;
  dbv: number;
  seq: number;
  site: number;
}

/** Where a value column's current value comes from, in a grouped row (see `GRow.src`). */
const SRC_STORED = 0;
const SRC_PENDING = 1;
const SRC_WRITTEN = 2;

/**
 * One row of a grouped merge: its changes (batch indices), its clock state as loaded and as the
 * merge leaves it, and what the merge did to its base row — kept so that every read the
 * change-by-change merge would make of the database is answered from memory.
 */
interface GRow {
  t: TableContext;
  pk: Uint8Array;
  pkValues: SqlValue[];
  /** Batch indices of the row's changes, in batch order. */
  idx: number[];
  /** Incoming group of each change. */
  grp: number[];
  /** Table name each change carried (consecutive changes under another spelling are another run). */
  lastTbl: string;
  loaded: boolean;
  rec: GRecord | undefined;
  recDirty: boolean;
  cells: Map<number, GCell>;
  cellsDropped: boolean;
  cl: number;
  /** The base row as stored before the batch: undefined until read; `stored` null when absent. */
  storedKnown: boolean;
  stored: SqlValue[] | null;
  storedOff: number;
  /**
   * Per value column (by ordinal): SRC_STORED — what the base row held before the batch (or, after
   * a delete or on a row the batch created, the column default); SRC_PENDING — a winning value not
   * yet written (`Merge.pending`); SRC_WRITTEN — written by this batch since its last delete.
   */
  src: number[];
  val: SqlValue[];
  pendingCount: number;
  /** The batch deleted the base row (at least once). */
  deleted: boolean;
  /** Since the last delete (or the start), a write created or kept the base row. */
  created: boolean;
  /** A key-only insert (resurrection) since the last delete, before any value. */
  pkInsert: boolean;
  /** Columns written since the last delete. */
  written: number;
}

const affinities = new WeakMap<TableContext, ReturnType<typeof affinity>[]>();

/** The affinity of each value column of `t`, by ordinal. */
function columnAffinities(t: TableContext): ReturnType<typeof affinity>[] {
  let a = affinities.get(t);
  if (a === undefined) {
    const declared = new Map(t.schema.columns.map((c) => [c.name, c.type]));
    a = t.columns.map((c) => affinity(declared.get(c.name) ?? ''));
    affinities.set(t, a);
  }
  return a;
}

/** Values that SQLite stores exactly as given in a column of this affinity (a read gives them back unchanged). */
function storedAsGiven(aff: ReturnType<typeof affinity>, v: SqlValue): boolean {
  if (v === null || v instanceof Uint8Array) return true;
  if (aff === 'blob') return true;
  if (typeof v === 'string') return aff === 'text';
  if (typeof v === 'bigint') return aff === 'integer' || aff === 'numeric';
  return false;
}

/** Large batches (rows) take the grouped merge only with this many changes per row or more (see mergeGroupedRows). */
const GROUPED_MIN_ROWS = 1000;
const GROUPED_MIN_PER_ROW = 3;

/** Batched-read chunk sizes: powers of two up to this (a short last chunk repeats its last key). */
const GROUP_CHUNK = 256;

/**
 * The merge of a batch grouped by (table, pk) across the whole batch, for targets that hold
 * metadata: each row's clock state (row record, explicit cells and, where the key allows the
 * join, its values) is read once, with one statement per chunk of keys (`TableContext.stateByPk`),
 * its changes are merged in memory in batch order with the decisions of merge/decide.ts — the
 * exact steps `Merge` takes change by change (materialize, resurrect, delete, the insert-shaped
 * fast path per consecutive run), with every read it would make answered from memory — and the
 * row is written once: one base write (a delete, a key-only insert and one upsert at most, in
 * that order), its row record and the cells whose clocks changed. Local versions are assigned
 * afterwards per incoming group with a winning change, in batch order, as `Merge.version` does.
 * The result (rows, metadata, feed, counts) is the change-by-change merge's. Returns undefined,
 * having written nothing but site references, whenever the batch needs that merge: options that
 * observe single writes, grow-only tables, visibility columns, tombstone values or compensating
 * tombstones, unknown tables or columns, bad keys, or a tie against a value memory cannot give
 * exactly (a column default, a value the column's affinity may have converted).
 */
function mergeGrouped(host: MergeHost, changes: readonly Change[], opts: ApplyOptions): ApplyResult | undefined {
  if (changes.length === 0 || observesSingleWrites(host, opts)) return undefined;
  try {
    return mergeGroupedRows(host, changes, opts);
  } catch (e) {
    if (e === GROUPED_BAIL) return undefined;
    throw e;
  }
}

/** Thrown by {@link mergeGroupedRows} before it writes anything when the batch needs the change-by-change merge. */
const GROUPED_BAIL = new Error('grouped merge not applicable');

function mergeGroupedRows(host: MergeHost, changes: readonly Change[], opts: ApplyOptions): ApplyResult {
  const bail = (): never => {
    throw GROUPED_BAIL;
  };
  const byName = new Map<string, TableContext | null>();
  const tableOf = (name: string): TableContext | undefined => {
    let t = byName.get(name);
    if (t === undefined) {
      const ctx = host.table(name);
      // A tombstone with an audience may rebase an insert over it (mergeChanges `mergeRow`).
      const ok = ctx !== undefined && groupable(ctx, opts) && ctx.stmts.anyAudience.getRaw(ctx.name) === undefined;
      t = ok ? ctx : null;
      byName.set(name, t);
    }
    return t ?? undefined;
  };
  const authoritative = opts.rejectRows === true;
  const groups = new IncomingGroups(host);
  const { dbv: groupDbv, site: groupSite, wins: groupWins } = groups;
  /** Batch index of each group's last change. */
  const groupEnd: number[] = [];
  let gi = -1;
  const rowsByTable = new Map<TableContext, RowsByKey<GRow>>();
  const order: GRow[] = [];
  let prevTbl: string | undefined;
  let prevT: TableContext | undefined;
  let row: GRow | undefined;
  let prevRow: GRow | undefined;
  for (let i = 0; i < changes.length; i++) {
    const ch = changes[i] as Change;
    groups.enter(ch);
    gi = groups.index;
    groupEnd[gi] = i;
    if (ch.tbl !== prevTbl) {
      prevTbl = ch.tbl;
      prevT = tableOf(ch.tbl);
    }
    const t = prevT;
    if (t === undefined) return bail();
    if (ch.col !== RIP_SENTINEL) {
      const id = t.colIds.get(ch.col);
      if (id === undefined || !t.byId.has(id)) return bail();
    }
    if (row === undefined || row.t !== t || !sameBytes(row.pk, ch.pk)) {
      let rows = rowsByTable.get(t);
      if (rows === undefined) rowsByTable.set(t, (rows = new RowsByKey()));
      row = rows.find(ch.pk);
      if (row === undefined) {
        const pkValues = groupedPkValues(t, ch.pk);
        if (pkValues === undefined) return bail();
        const n = t.columns.length;
        row = {
          t, pk: ch.pk, pkValues, idx: [], grp: [], lastTbl: ch.tbl, loaded: false, rec: undefined, recDirty: false, cells: new Map(), cellsDropped: false, cl: 0,
          storedKnown: false, stored: null, storedOff: 0, src: new Array<number>(n).fill(SRC_STORED), val: new Array<SqlValue>(n), pendingCount: 0, deleted: false, created: false, pkInsert: false, written: 0,
        };
        rows.add(row);
        order.push(row);
        // The density check below, early: a conflicting exchange is told by its first rows.
        if (order.length === GROUPED_MIN_ROWS && i < GROUPED_MIN_PER_ROW * GROUPED_MIN_ROWS) return bail();
      }
    } else if (row === prevRow && row.lastTbl !== ch.tbl) return bail(); // one run of the general merge under two spellings
    row.idx.push(i);
    row.grp.push(gi);
    row.lastTbl = ch.tbl;
    prevRow = row;
  }

  // Measured (bench/core.bench.ts, file databases in WAL): on large batches of about two changes
  // per row (a conflicting exchange) the change-by-change merge's point lookups are as cheap and
  // its writes follow its reads more closely (~25% less wall time); the grouped merge pays off from
  // about three changes per row (a replica catching up: ~15% less CPU).
  if (order.length >= GROUPED_MIN_ROWS && changes.length < GROUPED_MIN_PER_ROW * order.length) return bail();

  /** Reads the state of `list` (rows of one table) with one statement per chunk of keys. */
  const load = (t: TableContext, list: readonly GRow[]): void => {
    out.flush();
    for (let at = 0; at < list.length; ) {
      const left = list.length - at;
      let n = 1;
      while (n < left && n < GROUP_CHUNK) n *= 2;
      const take = Math.min(n, left);
      const keys: Uint8Array[] = new Array<Uint8Array>(n);
      for (let j = 0; j < n; j++) keys[j] = (list[at + Math.min(j, take - 1)] as GRow).pk;
      for (const r of t.stateByPk(n).iterateRaw(...keys)) {
        const j = r[0] as number;
        if (j >= take) continue; // a key repeated to fill the chunk
        const g = list[at + j] as GRow;
        if (!g.loaded) {
          g.loaded = true;
          if (r[1] !== null) {
            g.rec = { cl: r[1] as number, sent: r[2] as number, icv: r[3] as number | null, dbv: r[4] as number, seq: r[5] as number, site: r[6] as number };
            g.cl = g.rec.cl;
          }
          if (r[12] !== null) {
            g.storedKnown = true;
            g.stored = r[12] === 1 ? r : null;
            g.storedOff = 13;
          }
        }
        if (r[7] !== null) g.cells.set(r[7] as number, { cv: r[8] as number, dbv: r[9] as number, seq: r[10] as number, site: r[11] as number, dirty: false });
      }
      for (let j = at; j < at + take; j++) {
        const g = list[j] as GRow;
        if (g.rec === undefined && g.cells.size > 0) g.cl = 1;
      }
      at += take;
    }
  };

  let applied = 0;
  const tableFirst = new Map<string, number>();
  const touch = (t: TableContext, i: number): void => {
    const f = tableFirst.get(t.name);
    if (f === undefined || i < f) tableFirst.set(t.name, i);
  };
  const out = new BatchedWrites();
  const readStored = (r: GRow): void => {
    if (r.storedKnown) return;
    out.flush();
    r.storedKnown = true;
    r.stored = r.t.stmts.selectRow.getRaw(...r.pkValues) ?? null;
    r.storedOff = 0;
  };
  /** The base row's value of a column as a read would return it now, NO_ROW, or undefined when memory cannot tell. */
  /**
   * Makes the base-row writes of `r` so far (the change-by-change merge has made them by now), so
   * that a read returns what it would there: a column default, a value its affinity converted.
   */
  const syncBase = (r: GRow): void => {
    writeGroupedBase(r, out);
    r.deleted = false;
    r.pkInsert = false;
    r.written = 0;
    for (let o = 0; o < r.src.length; o++) if (r.src[o] === SRC_WRITTEN) r.src[o] = SRC_STORED;
    r.storedKnown = false;
    readStored(r);
  };
  /** The base row's value of a column as a read would return it now, or NO_ROW. */
  const current = (r: GRow, ord: number): SqlValue | typeof NO_ROW => {
    const src = r.src[ord];
    if (src === SRC_PENDING) return r.val[ord] ?? null;
    let exists = r.created;
    if (!exists && !r.deleted) {
      readStored(r);
      exists = r.stored !== null;
    }
    if (!exists) return NO_ROW;
    if (src === SRC_WRITTEN) {
      const v = r.val[ord] ?? null;
      if (storedAsGiven(columnAffinities(r.t)[ord] as ReturnType<typeof affinity>, v)) return v;
      syncBase(r); // the value as the column stored it
    } else if (r.deleted) syncBase(r); // recreated by this batch: the column default
    else {
      readStored(r);
      if (r.stored === null) syncBase(r); // created by this batch: the column default
    }
    return r.stored === null ? NO_ROW : (r.stored[r.storedOff + ord] ?? null);
  };
  const flush = (r: GRow): void => {
    if (r.pendingCount === 0) return;
    for (let o = 0; o < r.src.length; o++) {
      if (r.src[o] !== SRC_PENDING) continue;
      r.src[o] = SRC_WRITTEN;
      r.written++;
    }
    r.pendingCount = 0;
    r.created = true;
  };
  const materialize = (r: GRow): void => {
    const rec = r.rec;
    if (rec === undefined || rec.icv === null) return;
    for (const c of r.t.columns) if (!r.cells.has(c.id)) r.cells.set(c.id, { cv: rec.icv, dbv: rec.dbv, seq: rec.seq + 1 + c.ord, site: rec.site, dirty: true });
    rec.icv = null;
    r.recDirty = true;
  };
  const setSentinel = (r: GRow, ch: Change, g: number): void => {
    materialize(r);
    r.rec = { cl: ch.cl, sent: 1, icv: null, dbv: -(g + 1), seq: ch.seq, site: groupSite[g] as number };
    r.recDirty = true;
    r.cl = ch.cl;
    groupWins[g] = true;
  };
  const resurrect = (r: GRow, ch: Change, g: number): void => {
    flush(r);
    if (!r.created) r.pkInsert = true;
    r.created = true;
    materialize(r);
    for (const c of r.cells.values()) {
      c.cv = 0;
      c.dirty = true;
    }
    setSentinel(r, ch, g);
  };
  const win = (r: GRow, ch: Change, ord: number, colId: number, g: number, i: number): void => {
    if (r.src[ord] !== SRC_PENDING) {
      if (r.src[ord] === SRC_WRITTEN) r.written--;
      r.src[ord] = SRC_PENDING;
      r.pendingCount++;
    }
    r.val[ord] = ch.val;
    const c = r.cells.get(colId);
    if (c === undefined) r.cells.set(colId, { cv: ch.colVersion, dbv: -(g + 1), seq: ch.seq, site: groupSite[g] as number, dirty: true });
    else {
      c.cv = ch.colVersion;
      c.dbv = -(g + 1);
      c.seq = ch.seq;
      c.site = groupSite[g] as number;
      c.dirty = true;
    }
    if (r.cl === 0) r.cl = 1;
    groupWins[g] = true;
    applied++;
    touch(r.t, i);
  };

  const mergeRow = (r: GRow): void => {
    const t = r.t;
    const n = r.idx.length;
    for (let k = 0; k < n; ) {
      // One run of consecutive changes of the row (the general merge's group).
      let end = k + 1;
      while (end < n && r.idx[end] === (r.idx[end - 1] as number) + 1) end++;
      if (r.cl === 0) {
        const run: Change[] = [];
        for (let j = k; j < end; j++) run.push(changes[r.idx[j] as number] as Change);
        const shape = insertShape(t, run);
        if (shape !== undefined) {
          const first = run[0] as Change;
          const g = r.grp[k] as number;
          for (const ch of run) {
            const ord = (t.byId.get(t.colIds.get(ch.col) as number) as ValueColumn).ord;
            if (r.src[ord] !== SRC_PENDING) {
              if (r.src[ord] === SRC_WRITTEN) r.written--;
              r.src[ord] = SRC_PENDING;
              r.pendingCount++;
            }
            r.val[ord] = ch.val;
          }
          r.rec = { cl: 1, sent: 0, icv: first.colVersion, dbv: -(g + 1), seq: shape.base, site: groupSite[g] as number };
          r.recDirty = true;
          r.cl = 1;
          groupWins[g] = true;
          applied += run.length;
          touch(t, r.idx[k] as number);
          flush(r);
          k = end;
          continue;
        }
      }
      for (let j = k; j < end; j++) {
        const i = r.idx[j] as number;
        const g = r.grp[j] as number;
        const ch = changes[i] as Change;
        const isSentinel = ch.col === RIP_SENTINEL;
        const colId = isSentinel ? 0 : (t.colIds.get(ch.col) as number);
        const action = decideRow(t.algorithm, ch.cl, isSentinel, r.cl);
        if (action === 'olderLife' || action === 'ignore') continue;
        if (action === 'create') throw new Error('grow-only table in the grouped merge'); // excluded by tableOf
        if (action === 'delete') {
          flush(r);
          r.deleted = true;
          r.created = false;
          r.pkInsert = false;
          r.written = 0;
          r.src.fill(SRC_STORED);
          if (r.rec !== undefined) r.rec.icv = null;
          setSentinel(r, ch, g);
          r.cells.clear();
          r.cellsDropped = true;
          applied++;
          touch(t, i);
          continue;
        }
        if (action === 'resurrect') {
          resurrect(r, ch, g);
          applied++;
          touch(t, i);
          continue;
        }
        const ord = (t.byId.get(colId) as ValueColumn).ord;
        if (action === 'resurrectThenWin') resurrect(r, ch, g);
        if (action !== 'compareCell') {
          win(r, ch, ord, colId, g, i);
          continue;
        }
        const cell = r.cells.get(colId);
        const rec = r.rec;
        const local = cell !== undefined ? cell.cv : rec !== undefined && rec.icv !== null && r.cl % 2 === 1 ? rec.icv : undefined;
        const byVersion = decideCell(ch.colVersion, local);
        if (byVersion === 'win') {
          win(r, ch, ord, colId, g, i);
          continue;
        }
        if (byVersion === 'older') continue;
        const cur = current(r, ord);
        const byValue = decideValue('tie', ch.val, cur);
        if (byValue === 'fill' || byValue === 'win') win(r, ch, ord, colId, g, i);
      }
      flush(r);
      k = end;
    }
  };

  // Chunk by chunk, in order of first appearance: read the rows' state, merge them, then assign
  // the local versions of the groups no later row can win in (one per incoming group with a
  // winning change, in batch order) and write every row whose groups all have their version.
  let clock = host.clock();
  const version: bigint[] = new Array<bigint>(groupDbv.length);
  let finalized = -1;
  const big = (n: number): bigint => (n < 0 ? (version[-n - 1] as bigint) : BigInt(n));
  let waiting: GRow[] = [];
  const byTable = new Map<TableContext, GRow[]>();
  for (let at = 0; at < order.length; at += GROUP_CHUNK) {
    const chunk = order.slice(at, at + GROUP_CHUNK);
    byTable.clear();
    for (const r of chunk) {
      const list = byTable.get(r.t);
      if (list === undefined) byTable.set(r.t, [r]);
      else list.push(r);
    }
    for (const [t, list] of byTable) load(t, list);
    for (const r of chunk) mergeRow(r);
    // Every change before the next row's first appearance belongs to a merged row.
    const next = order[at + GROUP_CHUNK];
    const horizon = next === undefined ? changes.length : (next.idx[0] as number);
    while (finalized + 1 < groupDbv.length && (groupEnd[finalized + 1] as number) < horizon) {
      const g = ++finalized;
      if (!groupWins[g]) continue;
      clock = authoritative ? clock + 1 : Math.max(clock + 1, groupDbv[g] as number);
      version[g] = BigInt(clock);
    }
    waiting.push(...chunk);
    const still: GRow[] = [];
    for (const r of waiting) {
      if ((r.grp[r.grp.length - 1] as number) <= finalized) writeGroupedRow(r, big, out);
      else still.push(r);
    }
    waiting = still;
  }
  out.flush();
  host.setClock(clock);
  const lastCh = changes[changes.length - 1] as Change;
  const tables = [...tableFirst.entries()].sort((a, b) => a[1] - b[1]).map(([name]) => name);
  return { received: changes.length, applied, tables, last: { dbVersion: lastCh.dbVersion, seq: lastCh.seq }, dbVersion: clock, rejected: [] };
}

function writeGroupedRow(r: GRow, big: (n: number) => bigint, out: BatchedWrites): void {
  writeGroupedBase(r, out);
  const t = r.t;
  const rec = r.rec;
  if (r.recDirty && rec !== undefined) out.putRowRecord(t, r.pk, BigInt(rec.cl), BigInt(rec.sent), rec.icv === null ? null : BigInt(rec.icv), big(rec.dbv), BigInt(rec.seq), BigInt(rec.site));
  if (r.cellsDropped) out.dropCells(t, r.pk);
  for (const [col, c] of r.cells) {
    if (!c.dirty && !r.cellsDropped) continue;
    out.setCell(t, r.pk, BigInt(col), BigInt(c.cv), big(c.dbv), BigInt(c.seq), BigInt(c.site), rec !== undefined);
  }
}

/** The base-row writes of a grouped row: a delete, a key-only insert, one upsert, each at most once and in that order. */
function writeGroupedBase(r: GRow, out: BatchedWrites): void {
  const t = r.t;
  if (r.deleted) out.deleteRow(t, r.pkValues);
  if (r.pkInsert) out.insertPkOnly(t, r.pkValues);
  if (r.written > 0) {
    const names: string[] = [];
    const vals: SqlValue[] = [];
    for (const c of t.columns) {
      if (r.src[c.ord] !== SRC_WRITTEN) continue;
      names.push(c.name);
      vals.push(r.val[c.ord] ?? null);
    }
    out.upsert(t, names, r.pkValues, vals);
  }
}
