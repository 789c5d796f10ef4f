/**
 * The merge (docs/PROTOCOL.md §P5) over the PostgreSQL clock tables, async. Runs inside
 * one transaction opened by the engine with the triggers silenced; the same decisions as the
 * SQLite engine's `engine/apply.ts`: per-row buffering of winning values into one upsert, one
 * local db_version per incoming (site, db_version) group = max(clock + 1, incoming).
 */
import { sameBytes } from '../../codec/bytes.ts';
import { decodePk } from '../../codec/pk.ts';
import type { ApplyOptions, ApplyResult, RejectedRow } from '../../engine/apply.ts';
import { CoreError, CoreErrorCode } from '../../errors.ts';
import { decideCell, decideRow, decideValue, NO_ROW } from '../../merge/decide.ts';
import type { Change, SqlValue } from '../../types.ts';
import { RIP_SENTINEL } from '../../types.ts';
import { quoteIdent, toParam } from './conn.ts';
import type { PgConn } from './conn.ts';
import type { PgTableContext } from './context.ts';
import { fromPg } from './introspect.ts';

export interface PgMergeHost {
  table(name: string): PgTableContext | undefined;
  siteRef(c: PgConn, siteId: Uint8Array): Promise<number>;
}

/**
 * Row-level security the PostgreSQL way (docs/ARCHITECTURE.md "PostgreSQL row-level security"):
 * every base-table write of the merge runs under `SET LOCAL ROLE role`, with the caller's claims
 * in `request.jwt.claims` (and `request.jwt.claim.sub`), so the database's own policies decide.
 * Metadata writes stay with the connection's user.
 */
export interface PgRowSecurity {
  role: string;
  /** The claims as a JSON object text. */
  claims: string;
  /** The user id (`sub`), or '' when none. */
  sub: string;
}

export interface PgApplyOptions extends ApplyOptions {
  rowSecurity?: PgRowSecurity;
}

/** SQLSTATEs that refuse one row, not the batch, in an authoritative merge: RLS, integrity, data. */
function rejectsRow(e: unknown): e is Error & { code: string } {
  const code = e instanceof Error ? Reflect.get(e, 'code') : undefined;
  return typeof code === 'string' && (code === '42501' || /^2[23][0-9A-Z]{3}$/.test(code));
}

const rowSecurityError = (table: string): Error =>
  Object.assign(new Error(`row-level security refused the delete of a row of ${table}`), { code: '42501' });

const SAVEPOINT = 'offsync_row';


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
  /** A resurrection whose base row is written at the flush, whole (so RLS checks the row as it ends). */
  insertPending = false;
  ch!: Change;
  /** Per-row savepoints (authoritative merges): a refused row is rolled back alone. */
  readonly isolate: boolean;
  /** The current row's state when the merge entered it, and what it applied. */
  rowStartCl = 0;
  rowApplied = 0;
  rowMaxColVersion = 0;
  rowMaxCl = 0;
  readonly rowValues = new Map<string, SqlValue>();
  inRow = false;
  readonly rejectedKeys = new Set<string>();
  readonly rejected: RejectedRow[] = [];

  constructor(
    readonly c: PgConn,
    readonly host: PgMergeHost,
    readonly opts: PgApplyOptions,
    public clock: number,
  ) {
    this.isolate = opts.rejectRows === true;
  }

  version(): number {
    if (this.groupVersion === 0) {
      // Authoritative merges number server-side (clock + 1): adopting a device's db_version would
      // let one upload push the clock to its bound (clock poisoning, docs/PROTOCOL.md "Limits").
      this.clock = this.isolate ? this.clock + 1 : Math.max(this.clock + 1, this.ch.dbVersion);
      this.groupVersion = this.clock;
    }
    return this.groupVersion;
  }

  /** Runs a base-table statement under the caller's role (RLS), else as the connection's user. */
  async base(sql: string, params: readonly unknown[]): Promise<unknown[][]> {
    const rs = this.opts.rowSecurity;
    if (rs === undefined) return this.c.q(sql, params);
    await this.c.q(`SET LOCAL ROLE ${quoteIdent(rs.role)}`);
    const rows = await this.c.q(sql, params);
    await this.c.q('RESET ROLE');
    return rows;
  }

  async flush(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    if (this.pending.size === 0) {
      if (this.insertPending) await this.base(ctx.sql.insertPkOnly, this.pkParams);
      this.insertPending = false;
      return;
    }
    const cols = [...this.pending.keys()];
    const vals = [...this.pending.values()].map(toParam);
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: Object.fromEntries(this.pending) });
    this.pending.clear();
    this.insertPending = false;
    await this.base(ctx.upsert(cols), [...this.pkParams, ...vals]);
  }

  /** Writes the current row and, in an authoritative merge, closes its savepoint; a refusal rejects the row alone. */
  async finishRow(): Promise<void> {
    try {
      await this.flush();
      if (this.inRow) await this.c.q(`RELEASE SAVEPOINT ${SAVEPOINT}`);
      this.inRow = false;
    } catch (e) {
      if (!this.isolate || !this.inRow || !rejectsRow(e)) throw e;
      await this.rejectRow(e);
    }
  }

  /**
   * Rolls the current row back to its savepoint, records the rejection and compensates: the
   * central cells are re-stamped above everything the device sent for the row, so the device
   * takes the central values back on its next download (docs/ARCHITECTURE.md "PostgreSQL
   * row-level security"). A row that does not exist centrally has nothing to re-stamp.
   */
  async rejectRow(e: Error & { code: string }): Promise<void> {
    const t = this.ctx as PgTableContext;
    await this.c.q(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    await this.c.q(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    this.inRow = false;
    this.applied -= this.rowApplied;
    this.pending.clear();
    this.insertPending = false;
    this.rejectedKeys.add(rowKey(t.name, this.pk));
    const operation = this.rowMaxCl % 2 === 0 && this.rowMaxCl > 0 ? 'DELETE' : this.rowStartCl % 2 === 1 ? 'UPDATE' : 'INSERT';
    this.rejected.push({
      table: t.name,
      pk: this.pk,
      pkValues: this.pkValues,
      operation,
      code: e.code === '42501' ? 'rls_denied' : 'constraint_violation',
      reason: e.message,
      policy: null,
      values: Object.fromEntries(this.rowValues),
    });
    this.groupVersion = 0;
    const v = this.version();
    this.groupVersion = 0;
    if (this.rowStartCl > 0) {
      // Only the cells the device wrote: other columns may hold other devices' newer writes.
      const cols = [...this.rowValues.keys()].map((c) => t.colIds.get(c)).filter((id): id is number => id !== undefined);
      if (cols.length > 0) await this.c.q(t.sql.restamp, [this.pk, this.rowMaxColVersion, v, cols]);
      // A refused delete or resurrection: the central life must outrank the device's.
      if (this.rowMaxCl > this.rowStartCl) {
        const alive = this.rowStartCl % 2 === 1;
        const next = this.rowMaxCl + ((this.rowMaxCl % 2 === 1) === alive ? 2 : 1);
        await this.c.q(t.sql.setCell, [this.pk, 0, next, v, 0, 0]);
      }
    } else if (this.rowMaxCl % 2 === 1) {
      // A refused insert of a row this database never let exist: a tombstone of its own above the
      // device's life, so the device deletes its copy (docs/PROTOCOL.md "Rejected changes and compensation").
      await this.c.q(t.sql.setCell, [this.pk, 0, this.rowMaxCl + 1, v, 0, 0]);
    }
    this.ctx = undefined;
  }

  async setClock(ctx: PgTableContext, col: number, colVersion: number): Promise<void> {
    await this.c.q(ctx.sql.setCell, [this.pk, col, colVersion, this.version(), this.ch.seq, this.site]);
  }

  async resurrect(ctx: PgTableContext): Promise<void> {
    await this.flush();
    this.opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: this.pkValues, values: {} });
    this.insertPending = true;
    await this.c.q(ctx.sql.resetCells, [this.pk]);
    await this.setClock(ctx, 0, this.ch.cl);
    this.cl = this.ch.cl;
  }

  async win(ctx: PgTableContext, colId: number): Promise<void> {
    this.pending.set(this.ch.col, this.ch.val);
    await this.setClock(ctx, colId, this.ch.colVersion);
    if (this.cl === 0) this.cl = 1;
    this.applied++;
    this.rowApplied++;
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
    await this.finishRow();
    this.ctx = t;
    this.pk = pk;
    this.pkValues = decodePk(pk);
    if (this.pkValues.length !== t.schema.pkColumns.length) {
      throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${t.name} has ${t.schema.pkColumns.length} column(s), change carries ${this.pkValues.length}`);
    }
    this.pkParams = t.pkParams(this.pkValues);
    const [r] = await this.c.q(t.sql.rowState, [pk]);
    this.cl = r?.[0] != null ? Number(r[0]) : Number(r?.[1] ?? 0) > 0 ? 1 : 0;
    this.rowStartCl = this.cl;
    this.rowApplied = 0;
    this.rowMaxColVersion = 0;
    this.rowMaxCl = 0;
    this.rowValues.clear();
    if (this.isolate) {
      await this.c.q(`SAVEPOINT ${SAVEPOINT}`);
      this.inRow = true;
    }
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
    if (this.rejectedKeys.size > 0 && this.rejectedKeys.has(rowKey(t.name, ch.pk))) return; // refused earlier in this batch
    await this.enterGroup(ch);
    await this.enterRow(t, ch.pk);
    this.rowMaxCl = Math.max(this.rowMaxCl, ch.cl);
    if (!isSentinel) {
      this.rowMaxColVersion = Math.max(this.rowMaxColVersion, ch.colVersion);
      this.rowValues.set(ch.col, ch.val);
    }
    // The decision is core's (merge/decide.ts); this engine only executes it.
    switch (decideRow(t.algorithm, ch.cl, isSentinel, this.cl)) {
      case 'olderLife':
      case 'ignore':
        return;
      case 'create':
        return this.resurrect(t);
      case 'win':
        return this.win(t, id);
      case 'resurrectThenWin':
        await this.resurrect(t);
        return this.win(t, id);
      case 'resurrect':
        await this.resurrect(t);
        this.applied++;
        this.rowApplied++;
        this.tables.add(t.name);
        return;
      case 'delete': {
        await this.flush();
        this.opts.authorize?.({ table: t.name, kind: 'delete', pk: this.pkValues, values: {} });
        this.insertPending = false;
        const gone = await this.base(t.sql.deleteRow, this.pkParams);
        // Under RLS a DELETE skips rows its USING clause hides: a live row that stays is a refusal.
        if (this.opts.rowSecurity !== undefined && gone.length === 0 && this.cl % 2 === 1) throw rowSecurityError(t.name);
        await this.setClock(t, 0, ch.cl);
        await this.c.q(t.sql.dropCells, [this.pk]);
        this.cl = ch.cl;
        this.applied++;
        this.rowApplied++;
        this.tables.add(t.name);
        return;
      }
      case 'compareCell':
        break;
    }
    const [cell] = await this.c.q(t.sql.cell, [this.pk, id]);
    const byVersion = decideCell(ch.colVersion, cell === undefined ? undefined : Number(cell[0]));
    if (byVersion === 'win') return this.win(t, id);
    if (byVersion === 'older') return;
    let current: SqlValue | typeof NO_ROW;
    if (this.pending.has(ch.col)) current = this.pending.get(ch.col) ?? null;
    else {
      const [row] = await this.c.q(t.selectColumn(ch.col), this.pkParams); // as the owner: the merge's own read
      current = row === undefined ? NO_ROW : fromPg(t.pgColumn.get(ch.col) as NonNullable<ReturnType<typeof t.pgColumn.get>>, row[0]);
    }
    const byValue = decideValue('tie', ch.val, current);
    if (byValue === 'win' || byValue === 'fill') await this.win(t, id);
  }
}

/** Merges `changes` in order on `c`, which must be inside a transaction with triggers silenced. */
export async function pgMergeChanges(c: PgConn, host: PgMergeHost, clock: number, changes: Iterable<Change>, opts: PgApplyOptions): Promise<ApplyResult> {
  const m = new PgMerge(c, host, opts, clock);
  const rs = opts.rowSecurity;
  if (rs !== undefined) {
    await c.q(`SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true), set_config('request.jwt.claim.role', $3, true)`, [rs.claims, rs.sub, rs.role]);
  }
  let last: { dbVersion: number; seq: number } | undefined;
  for (const ch of changes) {
    try {
      await m.merge(ch);
    } catch (e) {
      // A refusal inside the current row (its delete, say) rejects that row alone.
      if (!m.isolate || !m.inRow || !rejectsRow(e)) throw e;
      await m.rejectRow(e);
    }
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
  }
  await m.finishRow();
  return { received: m.received, applied: m.applied, tables: [...m.tables], last, dbVersion: m.clock, rejected: m.rejected };
}

const rowKey = (table: string, pk: Uint8Array): string => `${table}\u0000${Buffer.from(pk).toString('hex')}`;
