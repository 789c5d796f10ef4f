/**
 * The merge of incoming changes into a database (protocol reference C.4, C.5, C.7).
 *
 * A batch is applied inside one transaction by the caller: either every change is merged or,
 * when anything throws (unknown table/column, a constraint, a refused RLS check), nothing is.
 * Base-table writes happen with the tracking triggers suppressed (`offsync_clock.applying`).
 * Winning values of consecutive changes to one row are buffered and written as one upsert
 * (C.4 step 5), so a row-level policy sees the whole new row.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import { compareForMerge } from '../merge/compare.ts';
import type { Change, SqlValue } from '../types.ts';
import { RIP_SENTINEL } from '../types.ts';
import { sameBytes } from '../codec/bytes.ts';
import { decodePk } from '../codec/pk.ts';
import type { TableContext, TableStatements } from './table-context.ts';

/** A base-table write the merge is about to make; `authorize` may veto it by throwing. */
export interface RowWrite {
  table: string;
  kind: 'upsert' | 'delete';
  /** Primary-key values in declaration order. */
  pk: readonly SqlValue[];
  /** For upserts: the value columns being written (a pk-only resurrection writes none). */
  values: Readonly<Record<string, SqlValue>>;
}

export interface ApplyOptions {
  /** Called before every base-table write; throw (e.g. CoreError RLS_DENIED) to refuse the whole batch. */
  authorize?: (write: RowWrite) => void;
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
}

export interface MergeHost {
  table(name: string): TableContext | undefined;
  siteRef(siteId: Uint8Array): number;
  clock(): number;
  setClock(v: number): void;
}

type RowRecord = [cl: number, icv: number | null, ver: bigint, seq: bigint, site: bigint];


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
  cl = 0;
  readonly pending = new Map<string, SqlValue>();
  ch!: Change;

  constructor(
    readonly host: MergeHost,
    readonly opts: ApplyOptions,
  ) {
    this.clock = host.clock();
  }

  version(): bigint {
    if (this.groupVersion === 0n) {
      const v = Math.max(this.clock + 1, this.ch.dbVersion);
      this.clock = v;
      this.groupVersion = BigInt(v);
    }
    return this.groupVersion;
  }

  flush(): void {
    const ctx = this.ctx;
    if (ctx === undefined || this.pending.size === 0) return;
    const cols = [...this.pending.keys()];
    const vals = [...this.pending.values()];
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: Object.fromEntries(this.pending) });
    ctx.upsertColumns(cols).run(...this.pkValues, ...vals);
    this.pending.clear();
  }

  materialize(s: TableStatements): void {
    const rec = this.rec;
    if (rec === undefined || rec[1] === null) return;
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
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: {} });
    s.insertPkOnly.run(...this.pkValues);
    this.materialize(s);
    s.resetCells.run(this.pk);
    this.setSentinel(s);
  }

  win(ctx: TableContext, colId: bigint): void {
    const ch = this.ch;
    this.pending.set(ch.col, ch.val);
    ctx.stmts.setCell.run(this.pk, colId, BigInt(ch.colVersion), this.version(), BigInt(ch.seq), this.siteRef);
    if (this.cl === 0) this.cl = 1;
    this.applied++;
    this.tables.add(ctx.name);
  }

  /** Tracks the incoming group (origin site + db_version) `ch` belongs to: one local version per group. */
  enterGroup(ch: Change): void {
    this.ch = ch;
    if (this.siteBytes !== ch.siteId) {
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

  /** Loads the clock state of the change's row when it differs from the previous change's. */
  enterRow(t: TableContext, pk: Uint8Array): void {
    if (t === this.ctx && sameBytes(this.pk, pk)) return;
    this.flush();
    this.ctx = t;
    this.pk = pk;
    this.pkValues = decodePk(pk);
    if (this.pkValues.length !== t.schema.pkColumns.length) {
      throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${t.name} has ${t.schema.pkColumns.length} column(s), change carries ${this.pkValues.length}`);
    }
    const r = t.stmts.rowRecord.getRaw(pk);
    this.rec = r === undefined ? undefined : [Number(r[0]), r[2] === null ? null : Number(r[2]), r[3] as bigint, r[4] as bigint, r[5] as bigint];
    this.cl = this.rec !== undefined ? this.rec[0] : t.stmts.anyCell.getRaw(pk) !== undefined ? 1 : 0;
  }

  /** C.4 for one change. */
  merge(ch: Change): void {
    this.ch = ch;
    this.received++;
    const t = this.host.table(ch.tbl);
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
    const colId = BigInt(id);
    if (ch.cl < this.cl) return; // an older life of the row
    if (t.algorithm === 'gos') {
      // Grow-only: values are upserted without version checks; deletes never travel.
      if (ch.cl % 2 === 0) return;
      if (!isSentinel) this.win(t, colId);
      else if (this.cl === 0) this.resurrect(t);
      return;
    }
    if (ch.cl % 2 === 0) {
      if (ch.cl === this.cl) return;
      this.flush();
      this.opts.authorize?.({ table: t.name, kind: 'delete', pk: this.pkValues, values: {} });
      s.deleteRow.run(...this.pkValues);
      if (this.rec !== undefined) this.rec[1] = null; // cells are dropped below: nothing to materialize
      this.setSentinel(s);
      s.dropCells.run(this.pk);
      this.applied++;
      this.tables.add(t.name);
      return;
    }
    if (isSentinel) {
      if (ch.cl === this.cl) return;
      this.resurrect(t);
      this.applied++;
      this.tables.add(t.name);
      return;
    }
    const needsResurrect = ch.cl > this.cl;
    const known = this.cl > 0;
    if (needsResurrect && (known || ch.cl > 1)) this.resurrect(t);
    if (needsResurrect || !known) return this.win(t, colId);
    const explicit = s.cell.getRaw(this.pk, colId);
    const rec = this.rec;
    const local = explicit !== undefined ? Number(explicit[0]) : rec !== undefined && rec[1] !== null && this.cl % 2 === 1 ? rec[1] : undefined;
    if (local === undefined || ch.colVersion > local) return this.win(t, colId);
    if (ch.colVersion < local) return;
    let current: SqlValue;
    if (this.pending.has(ch.col)) current = this.pending.get(ch.col) ?? null;
    else {
      const row = t.selectColumn(ch.col).getRaw(...this.pkValues);
      if (row === undefined) return this.win(t, colId);
      current = row[0] ?? null;
    }
    if (compareForMerge(ch.val, current) > 0) this.win(t, colId);
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

/** Merges `changes` in order. Must run inside a transaction with triggers suppressed. */
export function mergeChanges(host: MergeHost, changes: Iterable<Change>, opts: ApplyOptions): ApplyResult {
  const m = new Merge(host, opts);
  let last: { dbVersion: number; seq: number } | undefined;
  let group: Change[] = [];
  const mergeGroup = (): void => {
    const first = group[0];
    if (first === undefined) return;
    const t = host.table(first.tbl);
    if (t !== undefined) {
      m.ch = first;
      m.enterRow(t, first.pk);
      const shape = m.cl === 0 ? insertShape(t, group) : undefined;
      if (shape !== undefined) {
        m.insertRow(t, group, shape.base);
        group = [];
        return;
      }
    }
    for (const ch of group) m.merge(ch);
    group = [];
  };
  for (const ch of changes) {
    const head = group[0];
    if (head !== undefined && (head.tbl !== ch.tbl || !sameBytes(head.pk, ch.pk))) mergeGroup();
    group.push(ch);
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
  }
  mergeGroup();
  m.flush();
  host.setClock(m.clock);
  return { received: m.received, applied: m.applied, tables: [...m.tables], last, dbVersion: m.clock };
}
