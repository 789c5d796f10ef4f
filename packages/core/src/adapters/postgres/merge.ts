/**
 * The merge (docs/PROTOCOL.md §P5) over the PostgreSQL clock tables, async. Runs inside
 * one transaction opened by the engine with the triggers silenced; the same decisions as the
 * SQLite engine's `engine/apply.ts`: per-row buffering of winning values into one upsert, one
 * local db_version per incoming (site, db_version) group = max(clock + 1, incoming).
 */
import { sameBytes } from '../../codec/bytes.ts';
import { decodePk } from '../../codec/pk.ts';
import type { ApplyOptions, ApplyResult } from '../../engine/apply.ts';
import { CoreError, CoreErrorCode } from '../../errors.ts';
import { compareForMerge } from '../../merge/compare.ts';
import type { Change, SqlValue } from '../../types.ts';
import { RIP_SENTINEL } from '../../types.ts';
import { toParam } from './conn.ts';
import type { PgConn } from './conn.ts';
import type { PgTableContext } from './context.ts';
import { fromPg } from './introspect.ts';

export interface PgMergeHost {
  table(name: string): PgTableContext | undefined;
  siteRef(c: PgConn, siteId: Uint8Array): Promise<number>;
}


class PgMerge {
  readonly tables = new Set<string>();
  received = 0;
  applied = 0;
  groupVersion = 0;
  groupIncoming = -1;
  siteBytes: Uint8Array | undefined;
  site = -1;
  ctx: PgTableContext | undefined;
  pk: Uint8Array = new Uint8Array(0);
  pkValues: SqlValue[] = [];
  pkParams: unknown[] = [];
  cl = 0;
  readonly pending = new Map<string, SqlValue>();
  ch!: Change;

  constructor(
    readonly c: PgConn,
    readonly host: PgMergeHost,
    readonly opts: ApplyOptions,
    public clock: number,
  ) {}

  version(): number {
    if (this.groupVersion === 0) {
      this.clock = Math.max(this.clock + 1, this.ch.dbVersion);
      this.groupVersion = this.clock;
    }
    return this.groupVersion;
  }

  async flush(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined || this.pending.size === 0) return;
    const cols = [...this.pending.keys()];
    const vals = [...this.pending.values()].map(toParam);
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: Object.fromEntries(this.pending) });
    this.pending.clear();
    await this.c.q(ctx.upsert(cols), [...this.pkParams, ...vals]);
  }

  async setClock(ctx: PgTableContext, col: number, colVersion: number): Promise<void> {
    await this.c.q(ctx.sql.setCell, [this.pk, col, colVersion, this.version(), this.ch.seq, this.site]);
  }

  async resurrect(ctx: PgTableContext): Promise<void> {
    await this.flush();
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: {} });
    await this.c.q(ctx.sql.insertPkOnly, this.pkParams);
    await this.c.q(ctx.sql.resetCells, [this.pk]);
    await this.setClock(ctx, 0, this.ch.cl);
    this.cl = this.ch.cl;
  }

  async win(ctx: PgTableContext, colId: number): Promise<void> {
    this.pending.set(this.ch.col, this.ch.val);
    await this.setClock(ctx, colId, this.ch.colVersion);
    if (this.cl === 0) this.cl = 1;
    this.applied++;
    this.tables.add(ctx.name);
  }

  async enterGroup(ch: Change): Promise<void> {
    if (this.siteBytes !== ch.siteId && !sameBytes(this.siteBytes, ch.siteId)) {
      const ref = await this.host.siteRef(this.c, ch.siteId);
      if (ref !== this.site) this.groupVersion = 0;
      this.site = ref;
    }
    this.siteBytes = ch.siteId;
    if (ch.dbVersion !== this.groupIncoming) {
      this.groupIncoming = ch.dbVersion;
      this.groupVersion = 0;
    }
  }

  async enterRow(t: PgTableContext, pk: Uint8Array): Promise<void> {
    if (t === this.ctx && sameBytes(this.pk, pk)) return;
    await this.flush();
    this.ctx = t;
    this.pk = pk;
    this.pkValues = decodePk(pk);
    if (this.pkValues.length !== t.schema.pkColumns.length) {
      throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${t.name} has ${t.schema.pkColumns.length} column(s), change carries ${this.pkValues.length}`);
    }
    this.pkParams = t.pkParams(this.pkValues);
    const [r] = await this.c.q(t.sql.rowState, [pk]);
    this.cl = r?.[0] != null ? Number(r[0]) : Number(r?.[1] ?? 0) > 0 ? 1 : 0;
  }

  /** The merge of one change (§P5). */
  async merge(ch: Change): Promise<void> {
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
    await this.enterGroup(ch);
    await this.enterRow(t, ch.pk);
    if (ch.cl < this.cl) return; // an older life of the row
    if (t.algorithm === 'gos') {
      if (ch.cl % 2 === 0) return;
      if (!isSentinel) return this.win(t, id);
      if (this.cl === 0) await this.resurrect(t);
      return;
    }
    if (ch.cl % 2 === 0) {
      if (ch.cl === this.cl) return;
      await this.flush();
      this.opts.authorize?.({ table: t.name, kind: 'delete', pk: this.pkValues, values: {} });
      await this.c.q(t.sql.deleteRow, this.pkParams);
      await this.setClock(t, 0, ch.cl);
      await this.c.q(t.sql.dropCells, [this.pk]);
      this.cl = ch.cl;
      this.applied++;
      this.tables.add(t.name);
      return;
    }
    if (isSentinel) {
      if (ch.cl === this.cl) return;
      await this.resurrect(t);
      this.applied++;
      this.tables.add(t.name);
      return;
    }
    const needsResurrect = ch.cl > this.cl;
    const known = this.cl > 0;
    if (needsResurrect && (known || ch.cl > 1)) await this.resurrect(t);
    if (needsResurrect || !known) return this.win(t, id);
    const [cell] = await this.c.q(t.sql.cell, [this.pk, id]);
    if (cell === undefined || ch.colVersion > Number(cell[0])) return this.win(t, id);
    if (ch.colVersion < Number(cell[0])) return;
    let current: SqlValue;
    if (this.pending.has(ch.col)) current = this.pending.get(ch.col) ?? null;
    else {
      const [row] = await this.c.q(t.selectColumn(ch.col), this.pkParams);
      if (row === undefined) return this.win(t, id);
      current = fromPg(t.pgColumn.get(ch.col) as NonNullable<ReturnType<typeof t.pgColumn.get>>, row[0]);
    }
    if (compareForMerge(ch.val, current) > 0) await this.win(t, id);
  }
}

/** Merges `changes` in order on `c`, which must be inside a transaction with triggers silenced. */
export async function pgMergeChanges(c: PgConn, host: PgMergeHost, clock: number, changes: Iterable<Change>, opts: ApplyOptions): Promise<ApplyResult> {
  const m = new PgMerge(c, host, opts, clock);
  let last: { dbVersion: number; seq: number } | undefined;
  for (const ch of changes) {
    await m.merge(ch);
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
  }
  await m.flush();
  return { received: m.received, applied: m.applied, tables: [...m.tables], last, dbVersion: m.clock, rejected: [] };
}
