/**
 * The merge (docs/PROTOCOL.md §P5) over the PostgreSQL clock tables, async and set-based. Runs
 * inside one transaction opened by the engine with the triggers silenced; the decisions are
 * core's (`merge/decide.ts`), as in the SQLite engine's `engine/apply.ts`.
 *
 * How (issue 10 "batching"): the batch is validated whole first (unknown table or column, key
 * arity, site ids refuse it whole), then its changes are grouped by (table, pk) — a row is merged
 * and judged as a whole, as SQLite's authoritative merge does — and each table's rows are merged
 * in chunks of {@link CHUNK}: one query reads the chunk's clock rows, one which base rows exist,
 * one the base rows a value tie needs, the decisions run in JS over that state (`simulate`, step by step exactly as a
 * per-change merge would), and the outcome is written with one statement per table and kind
 * (batch-sql.ts): deletes, key-only inserts, one insert or UPDATE per column set, then the clock
 * rows. A row whose values cannot travel in the arrays (a blob into a non-blob column), or whose
 * decision needs a value only a write would show, is merged change by change (`stepRow`).
 * One local db_version per incoming (site, db_version) group = max(clock + 1, incoming), or
 * clock + 1 in an authoritative merge (`rejectRows`, the server's: no clock poisoning).
 *
 * Row-level refusal (authoritative merges, docs/ARCHITECTURE.md "PostgreSQL row-level security"):
 * a chunk's base-table writes run in a savepoint under one `SET LOCAL ROLE`; when PostgreSQL
 * refuses any of them (42501, class 22/23) or RLS skips a delete or an update, the chunk is rolled back to the
 * savepoint and its rows are written again one by one, each in its own savepoint with the same
 * statements for that row alone, so exactly the refused rows are rolled back, reported and
 * compensated, and the others commit.
 */
import { decodePk } from '../../codec/pk.ts';
import type { ApplyOptions, ApplyResult, RejectedRow } from '../../engine/apply.ts';
import { CoreError, CoreErrorCode } from '../../errors.ts';
import { decideCell, decideRow, decideValue, NO_ROW } from '../../merge/decide.ts';
import type { Change, SqlValue } from '../../types.ts';
import { RIP_SENTINEL } from '../../types.ts';
import { batchSql, fitsArray, keyColumns } from './batch-sql.ts';
import type { PgBatchSql } from './batch-sql.ts';
import { hexKey, quoteIdent, toBytes, toParam } from './conn.ts';
import type { PgConn } from './conn.ts';
import type { PgTableContext } from './context.ts';
import { fromPg } from './introspect.ts';
import type { PgColumn } from './introspect.ts';

export interface PgMergeHost {
  table(name: string): PgTableContext | undefined;
  siteRef(c: PgConn, siteId: Uint8Array): Promise<number>;
  /** Metadata schema and synced tables' schema (for the set-based statements). */
  meta: string;
  nsp: string;
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

/** Rows per set-based statement. */
export const CHUNK = 500;

/** SQLSTATEs that refuse one row, not the batch, in an authoritative merge: RLS, integrity, data. */
function rejectsRow(e: unknown): e is Error & { code: string } {
  const code = e instanceof Error ? Reflect.get(e, 'code') : undefined;
  return typeof code === 'string' && (code === '42501' || /^2[23][0-9A-Z]{3}$/.test(code));
}

/** 21000: one set-based statement would touch a base row twice (two key blobs, one key value). */
const touchesTwice = (e: unknown): boolean => e instanceof Error && Reflect.get(e, 'code') === '21000';

const rowSecurityError = (what: 'delete' | 'update', table: string): Error & { code: string } =>
  Object.assign(new Error(`row-level security refused the ${what} of a row of ${table}`), { code: '42501' });

/** A set-based statement left rows out (RLS hid them, or two key blobs name one row): the chunk is written row by row. */
class RowByRow extends Error {}

/** One incoming change of a row, with what the validation resolved. */
interface Incoming {
  ch: Change;
  /** Column id (0 = sentinel). */
  colId: number;
  /** Index of its (site, db_version) group in the batch. */
  group: number;
  site: number;
}

/** A clock row: `group` ≥ 0 takes that group's local version, else `dbv` stays. */
interface Cell {
  cv: number;
  dbv: string;
  group: number;
  seq: number;
  site: number;
}

/** A base-table write of a row, in the order a per-change merge would issue it. */
/**
 * `upsert` of a row that exists (`exists`) is written as an UPDATE of those columns, else as an
 * INSERT: an `INSERT … ON CONFLICT DO UPDATE` of a few columns would have PostgreSQL check INSERT
 * policies against a row of defaults, refusing a user's edit of their own row.
 */
type BaseOp = { kind: 'delete'; expectAlive: boolean } | { kind: 'insertPk' } | { kind: 'upsert'; values: Map<string, SqlValue>; exists: boolean };

type AuthEvent = { kind: 'upsert' | 'delete'; values: Record<string, SqlValue> };

interface Outcome {
  cells: Map<number, Cell>;
  dirty: Set<number>;
  /** The row's writes collapsed: at most one delete, then at most one insert or upsert. */
  net: BaseOp[];
  applied: number;
  touched: boolean;
  startCl: number;
  maxCl: number;
  maxColVersion: number;
  values: Map<string, SqlValue>;
  auth: AuthEvent[];
  groups: Set<number>;
}

interface RowWork {
  t: PgTableContext;
  pk: Uint8Array;
  pkValues: SqlValue[];
  pkParams: unknown[];
  ins: Incoming[];
  /** Clock rows before the merge. */
  cells: Map<number, Cell>;
  /** The base row before the merge (value columns as read), null when absent, undefined when not read. */
  base?: unknown[] | null;
  /** Whether the base row exists before the merge. */
  exists: boolean;
  out?: Outcome;
  rejected?: Error & { code: string };
}

/** Thrown by the batch reader when the decision needs the base row (read for the chunk, then decided again). */
const NEED_BASE = Symbol('needBase');
/** Thrown when a value can only be known by writing first (a row re-created in the batch): the row is merged step by step. */
const NEED_STEPS = Symbol('needSteps');

/** What the decisions see of the base table, and how a row's writes are carried out. */
interface RowIo {
  write(op: BaseOp): Promise<void>;
  /** The current value of `col` (not among the row's unwritten winners). */
  read(col: string, view: BaseView): Promise<SqlValue | typeof NO_ROW>;
}

/** What the merge knows of the base row at a point of the row's decisions. */
interface BaseView {
  /** Values written so far by the merge (since the last delete). */
  written: ReadonlyMap<string, SqlValue>;
  /** Whether the row's columns other than `written` are its state before the merge ('initial') or it was deleted. */
  source: 'initial' | 'absent';
  /** Whether the merge inserted (or upserted) the row since `source` held. */
  created: boolean;
}

/**
 * The per-change merge of one row (§P5), decided by core: the same sequence of decisions,
 * clock writes and base-table writes a change-by-change merge makes, over the row's clock rows in
 * memory; base writes go to `io` (recorded for the set-based write, or run at once).
 */
async function simulate(w: RowWork, io: RowIo): Promise<Outcome> {
  const t = w.t;
  const cells = new Map(w.cells);
  const dirty = new Set<number>();
  let cl = cells.get(0)?.cv ?? (cells.size > 0 ? 1 : 0);
  const startCl = cl;
  const pending = new Map<string, SqlValue>();
  let insertPending = false;
  let written = new Map<string, SqlValue>();
  let source: BaseView['source'] = 'initial';
  let created = false;
  const ops: BaseOp[] = [];
  const auth: AuthEvent[] = [];
  const groups = new Set<number>();
  const values = new Map<string, SqlValue>();
  let applied = 0;
  let touched = false;
  let maxCl = 0;
  let maxColVersion = 0;
  const emit = async (op: BaseOp): Promise<void> => {
    ops.push(op);
    await io.write(op);
  };
  const setCell = (col: number, cv: number, x: Incoming): void => {
    cells.set(col, { cv, dbv: '', group: x.group, seq: x.ch.seq, site: x.site });
    dirty.add(col);
    groups.add(x.group);
  };
  const flush = async (): Promise<void> => {
    if (pending.size === 0) {
      if (insertPending) {
        insertPending = false;
        created = true;
        await emit({ kind: 'insertPk' });
      }
      return;
    }
    const vals = new Map(pending);
    auth.push({ kind: 'upsert', values: Object.fromEntries(pending) });
    pending.clear();
    insertPending = false;
    for (const [k, v] of vals) written.set(k, v);
    const exists = created || (source === 'initial' && w.exists);
    created = true;
    await emit({ kind: 'upsert', values: vals, exists });
  };
  const resurrect = async (x: Incoming): Promise<void> => {
    await flush();
    auth.push({ kind: 'upsert', values: {} });
    insertPending = true;
    for (const [col, c] of cells) {
      if (col === 0) continue;
      cells.set(col, { ...c, cv: 0 });
      dirty.add(col);
    }
    setCell(0, x.ch.cl, x);
    cl = x.ch.cl;
  };
  const win = (x: Incoming): void => {
    pending.set(x.ch.col, x.ch.val);
    setCell(x.colId, x.ch.colVersion, x);
    if (cl === 0) cl = 1;
    applied++;
    touched = true;
  };
  for (const x of w.ins) {
    const ch = x.ch;
    const isSentinel = ch.col === RIP_SENTINEL;
    maxCl = Math.max(maxCl, ch.cl);
    if (!isSentinel) {
      maxColVersion = Math.max(maxColVersion, ch.colVersion);
      values.set(ch.col, ch.val);
    }
    // The decision is core's (merge/decide.ts); this engine only executes it.
    switch (decideRow(t.algorithm, ch.cl, isSentinel, cl)) {
      case 'olderLife':
      case 'ignore':
        continue;
      case 'create':
        await resurrect(x);
        continue;
      case 'win':
        win(x);
        continue;
      case 'resurrectThenWin':
        await resurrect(x);
        win(x);
        continue;
      case 'resurrect':
        await resurrect(x);
        applied++;
        touched = true;
        continue;
      case 'delete': {
        await flush();
        auth.push({ kind: 'delete', values: {} });
        insertPending = false;
        await emit({ kind: 'delete', expectAlive: cl % 2 === 1 });
        written = new Map();
        source = 'absent';
        created = false;
        setCell(0, ch.cl, x);
        for (const col of [...cells.keys()]) {
          if (col === 0) continue;
          cells.delete(col);
          dirty.delete(col);
        }
        cl = ch.cl;
        applied++;
        touched = true;
        continue;
      }
      case 'compareCell':
        break;
    }
    const byVersion = decideCell(ch.colVersion, cells.get(x.colId)?.cv);
    if (byVersion === 'win') {
      win(x);
      continue;
    }
    if (byVersion === 'older') continue;
    const current = pending.has(ch.col) ? (pending.get(ch.col) ?? null) : await io.read(ch.col, { written, source, created });
    const byValue = decideValue('tie', ch.val, current);
    if (byValue === 'win' || byValue === 'fill') win(x);
  }
  await flush();
  return { cells, dirty, net: collapse(ops, startCl, w.exists), applied, touched, startCl, maxCl, maxColVersion, values, auth, groups };
}

/**
 * A row's writes reduced to their effect: the writes before its last delete are overwritten by
 * it, so one delete (that must find the row when it was alive before the merge), then one write
 * of what the row holds after it — an UPDATE of the written columns when the row exists, else an
 * insert. Policies see the row as it ends, as the whole-row judge does.
 */
function collapse(ops: readonly BaseOp[], startCl: number, exists: boolean): BaseOp[] {
  let last = -1;
  ops.forEach((op, i) => {
    if (op.kind === 'delete') last = i;
  });
  const out: BaseOp[] = last >= 0 ? [{ kind: 'delete', expectAlive: startCl % 2 === 1 }] : [];
  const vals = new Map<string, SqlValue>();
  let insert = false;
  for (const op of ops.slice(last + 1)) {
    if (op.kind === 'upsert') for (const [k, v] of op.values) vals.set(k, v);
    insert = true;
  }
  if (vals.size > 0) out.push({ kind: 'upsert', values: vals, exists: last < 0 && exists });
  // A key-only insert of a row that exists changes nothing (and would have RLS judge a row of defaults).
  else if (insert && !(last < 0 && exists)) out.push({ kind: 'insertPk' });
  return out;
}

/** A refused row's outline for its rejection and compensation: its state before, what it sent. */
function summarize(w: RowWork): Outcome {
  const startCl = w.cells.get(0)?.cv ?? (w.cells.size > 0 ? 1 : 0);
  let maxCl = 0;
  let maxColVersion = 0;
  const values = new Map<string, SqlValue>();
  for (const { ch } of w.ins) {
    maxCl = Math.max(maxCl, ch.cl);
    if (ch.col === RIP_SENTINEL) continue;
    maxColVersion = Math.max(maxColVersion, ch.colVersion);
    values.set(ch.col, ch.val);
  }
  return { cells: new Map(w.cells), dirty: new Set(), net: [], applied: 0, touched: true, startCl, maxCl, maxColVersion, values, auth: [], groups: new Set() };
}

/** Reads for the set-based path: the base row as read for the chunk, or what the merge wrote. */
function batchIo(w: RowWork): RowIo {
  return {
    async write() {},
    async read(col, view) {
      if (view.written.has(col)) return view.written.get(col) ?? null;
      if (view.source === 'absent') {
        if (view.created) throw NEED_STEPS; // a column default: known only once the row is written
        return NO_ROW;
      }
      if (w.base === undefined) throw NEED_BASE;
      if (w.base === null) {
        if (view.created) throw NEED_STEPS;
        return NO_ROW;
      }
      const i = w.t.columns.findIndex((c) => c.name === col);
      return fromPg(w.t.pgColumn.get(col) as PgColumn, w.base[i]);
    },
  };
}

class PgMerge {
  readonly tables = new Set<string>();
  received = 0;
  applied = 0;
  readonly rejected: RejectedRow[] = [];
  /** Local db_version of each incoming group, allocated on first use. */
  readonly versions = new Map<number, number>();
  /** The incoming db_version of each group (for a non-authoritative merge's max(clock + 1, incoming)). */
  readonly groupIncoming: number[] = [];
  readonly isolate: boolean;

  constructor(
    readonly c: PgConn,
    readonly host: PgMergeHost,
    readonly opts: PgApplyOptions,
    public clock: number,
  ) {
    this.isolate = opts.rejectRows === true;
  }

  versionOf(group: number): number {
    let v = this.versions.get(group);
    if (v === undefined) {
      // Authoritative merges number server-side (clock + 1): adopting a device's db_version would
      // let one upload push the clock to its bound (clock poisoning, docs/PROTOCOL.md "Limits").
      this.clock = this.isolate ? this.clock + 1 : Math.max(this.clock + 1, this.groupIncoming[group] ?? 0);
      v = this.clock;
      this.versions.set(group, v);
    }
    return v;
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

  /** One base write of one row, as its own statement (under the role when `asRole`). */
  async writeOne(w: RowWork, op: BaseOp, asRole: boolean): Promise<void> {
    const t = w.t;
    const run = (sql: string, params: readonly unknown[]): Promise<unknown[][]> => (asRole ? this.base(sql, params) : this.c.q(sql, params));
    if (op.kind === 'insertPk') await run(t.sql.insertPkOnly, w.pkParams);
    else if (op.kind === 'upsert' && !op.exists) await run(t.upsert([...op.values.keys()]), [...w.pkParams, ...[...op.values.values()].map(toParam)]);
    else if (op.kind === 'upsert') {
      const done = await run(batchSql(this.host.meta, this.host.nsp, t).updateOne([...op.values.keys()]), [...w.pkParams, ...[...op.values.values()].map(toParam)]);
      // Under RLS an UPDATE skips rows its USING clause hides: a row left as it was is a refusal.
      if (this.opts.rowSecurity !== undefined && done.length === 0) throw rowSecurityError('update', t.name);
    } else {
      const gone = await run(t.sql.deleteRow, w.pkParams);
      // Under RLS a DELETE skips rows its USING clause hides: a live row that stays is a refusal.
      if (this.opts.rowSecurity !== undefined && gone.length === 0 && op.expectAlive) throw rowSecurityError('delete', t.name);
    }
  }

  /** Merges a row change by change, its writes issued at once (values that exist only once written). */
  async stepRow(w: RowWork): Promise<void> {
    const io: RowIo = {
      write: (op) => this.writeOne(w, op, true),
      read: async (col) => {
        const [row] = await this.c.q(w.t.selectColumn(col), w.pkParams); // as the owner: the merge's own read
        return row === undefined ? NO_ROW : fromPg(w.t.pgColumn.get(col) as PgColumn, row[0]);
      },
    };
    let out: Outcome | undefined;
    await this.isolated(w, async () => {
      out = await simulate(w, io);
    });
    // A row refused part-way has no outcome: what the rejection needs is read off its changes.
    w.out = out ?? summarize(w);
  }

  /** Runs `fn` for one row in a savepoint when refusals reject rows; a refusal marks the row rejected. */
  async isolated(w: RowWork, fn: () => Promise<void>): Promise<void> {
    if (!this.isolate) return fn();
    await this.c.q('SAVEPOINT offsync_row');
    try {
      await fn();
      await this.c.q('RELEASE SAVEPOINT offsync_row');
    } catch (e) {
      if (!rejectsRow(e)) throw e;
      await this.c.q('ROLLBACK TO SAVEPOINT offsync_row');
      await this.c.q('RELEASE SAVEPOINT offsync_row');
      w.rejected = e;
    }
  }

  /** Merges one chunk of rows of one table. */
  async chunk(t: PgTableContext, rows: RowWork[]): Promise<void> {
    const s = batchSql(this.host.meta, this.host.nsp, t);
    // 1. The chunk's clock rows, in one query.
    const byPk = new Map<string, RowWork>();
    for (const w of rows) byPk.set(hexKey(w.pk), w);
    for (const r of await this.c.q(s.readCells, [rows.map((w) => Buffer.from(w.pk))])) {
      const w = byPk.get(hexKey(toBytes(r[0])));
      w?.cells.set(Number(r[1]), { cv: Number(r[2]), dbv: String(r[3]), group: -1, seq: Number(r[4]), site: Number(r[5]) });
    }
    // Which base rows exist (an edit of an existing row is an UPDATE), in one query.
    const keyed = rows.filter((w) => t.schema.pkColumns.every((k, i) => fitsArray(k, w.pkParams[i])));
    for (const r of await this.c.q(s.existing, [keyed.map((_, i) => i), ...keyColumns(t, keyed.map((w) => w.pkParams))])) (keyed[Number(r[0])] as RowWork).exists = true;
    // 2. Decide; rows whose value ties need their base row get it in one query and are decided again.
    const stepped: RowWork[] = [];
    const needBase: RowWork[] = [];
    const decide = async (w: RowWork, list: RowWork[]): Promise<void> => {
      try {
        w.out = await simulate(w, batchIo(w));
      } catch (e) {
        if (e === NEED_BASE) list.push(w);
        else if (e === NEED_STEPS) stepped.push(w);
        else throw e;
      }
    };
    for (const w of rows) {
      if (!this.fits(w)) stepped.push(w);
      else await decide(w, needBase);
    }
    if (needBase.length > 0) {
      for (const w of needBase) w.base = null;
      const found = await this.c.q(s.selectRows, [needBase.map((_, i) => i), ...keyColumns(t, needBase.map((w) => w.pkParams))]);
      for (const r of found) (needBase[Number(r[0])] as RowWork).base = r.slice(1);
      for (const w of needBase) await decide(w, []);
    }
    // 3. Rows that cannot be written set-based are merged change by change, each in its savepoint.
    for (const w of stepped) await this.stepRow(w);
    const steps = new Set(stepped);
    const batched = rows.filter((w) => !steps.has(w));
    for (const w of rows) for (const a of w.out?.auth ?? []) this.opts.authorize?.({ table: t.name, kind: a.kind, pk: w.pkValues, values: a.values });
    // 4. Base rows set-based under the role; a refusal sends the chunk back row by row.
    await this.writeBase(t, s, batched);
    // 5. Clock rows and compensation, set-based, as the connection's user.
    await this.writeMeta(t, s, rows);
  }

  /** Whether every key and value parameter of the row fits the set-based statements' arrays. */
  fits(w: RowWork): boolean {
    const t = w.t;
    if (!t.schema.pkColumns.every((k, i) => fitsArray(k, w.pkParams[i]))) return false;
    return w.ins.every((x) => x.colId === 0 || fitsArray(t.pgColumn.get(x.ch.col) as PgColumn, toParam(x.ch.val)));
  }

  async writeBase(t: PgTableContext, s: PgBatchSql, rows: RowWork[]): Promise<void> {
    const writes = rows.filter((w) => (w.out?.net.length ?? 0) > 0);
    if (writes.length === 0) return;
    const rs = this.opts.rowSecurity;
    await this.c.q('SAVEPOINT offsync_chunk');
    try {
      if (rs !== undefined) await this.c.q(`SET LOCAL ROLE ${quoteIdent(rs.role)}`);
      const deletes = writes.filter((w) => w.out?.net[0]?.kind === 'delete');
      if (deletes.length > 0) {
        const gone = new Set((await this.c.q(s.deleteRows, [deletes.map((_, i) => i), ...keyColumns(t, deletes.map((w) => w.pkParams))])).map((r) => Number(r[0])));
        const refused = deletes.find((w, i) => !gone.has(i) && (w.out?.net[0] as { expectAlive: boolean }).expectAlive);
        if (rs !== undefined && refused !== undefined) throw new RowByRow();
      }
      const pkOnly = writes.filter((w) => w.out?.net.at(-1)?.kind === 'insertPk');
      if (pkOnly.length > 0) await this.c.q(s.insertPkOnly, keyColumns(t, pkOnly.map((w) => w.pkParams)));
      const byCols = new Map<string, { cols: string[]; rows: RowWork[]; update: boolean }>();
      for (const w of writes) {
        const op = w.out?.net.at(-1);
        if (op?.kind !== 'upsert') continue;
        const cols = [...op.values.keys()].sort();
        const key = `${op.exists ? 'u' : 'i'}\u0000${cols.join('\u0000')}`;
        let g = byCols.get(key);
        if (g === undefined) byCols.set(key, (g = { cols, rows: [], update: op.exists }));
        g.rows.push(w);
      }
      for (const { cols, rows: group, update } of byCols.values()) {
        const vals = cols.map((col) => group.map((w) => toParam((w.out?.net.at(-1) as { values: Map<string, SqlValue> }).values.get(col) ?? null)));
        const keys = keyColumns(t, group.map((w) => w.pkParams));
        if (!update) await this.c.q(s.upsert(cols), [...keys, ...vals]);
        else if ((await this.c.q(s.update(cols), [group.map((_, i) => i), ...keys, ...vals])).length < group.length) throw new RowByRow();
      }
      if (rs !== undefined) await this.c.q('RESET ROLE');
      await this.c.q('RELEASE SAVEPOINT offsync_chunk');
    } catch (e) {
      if (!(e instanceof RowByRow) && !touchesTwice(e) && (!this.isolate || !rejectsRow(e))) throw e;
      await this.c.q('ROLLBACK TO SAVEPOINT offsync_chunk');
      await this.c.q('RELEASE SAVEPOINT offsync_chunk');
      // Row by row, the same statements for each row alone: exactly the refused rows fail.
      if (rs !== undefined) await this.c.q(`SET LOCAL ROLE ${quoteIdent(rs.role)}`);
      for (const w of writes) {
        await this.isolated(w, async () => {
          for (const op of w.out?.net ?? []) await this.writeOne(w, op, false);
        });
      }
      if (rs !== undefined) await this.c.q('RESET ROLE');
    }
  }

  async writeMeta(t: PgTableContext, s: PgBatchSql, rows: RowWork[]): Promise<void> {
    // Versions: the chunk's groups in batch order, then one of its own per compensation.
    const groups = new Set<number>();
    for (const w of rows) for (const g of w.out?.groups ?? []) groups.add(g);
    for (const g of [...groups].sort((a, b) => a - b)) this.versionOf(g);
    const up = { pk: [] as Buffer[], col: [] as number[], cv: [] as string[], dbv: [] as string[], seq: [] as string[], site: [] as string[] };
    const put = (pk: Buffer, col: number, cv: number, dbv: number | string, seq: number, site: number): void => {
      up.pk.push(pk);
      up.col.push(col);
      up.cv.push(String(cv));
      up.dbv.push(String(dbv));
      up.seq.push(String(seq));
      up.site.push(String(site));
    };
    const del = { pk: [] as Buffer[], col: [] as number[] };
    const restamp = { pk: [] as Buffer[], col: [] as number[], above: [] as string[], v: [] as string[] };
    for (const w of rows) {
      const out = w.out;
      if (out === undefined) continue;
      const pk = Buffer.from(w.pk);
      if (out.touched) this.tables.add(t.name);
      if (w.rejected !== undefined) {
        this.compensate(w, out, pk, put, restamp);
        continue;
      }
      this.applied += out.applied;
      for (const col of w.cells.keys()) {
        if (!out.cells.has(col)) {
          del.pk.push(pk);
          del.col.push(col);
        }
      }
      for (const col of out.dirty) {
        const c = out.cells.get(col) as Cell;
        put(pk, col, c.cv, c.group >= 0 ? this.versionOf(c.group) : c.dbv, c.seq, c.site);
      }
    }
    if (del.pk.length > 0) await this.c.q(s.deleteCells, [del.pk, del.col]);
    if (restamp.pk.length > 0) await this.c.q(s.restampCells, [restamp.pk, restamp.col, restamp.above, restamp.v]);
    for (let i = 0; i < up.pk.length; i += CHUNK * 8) {
      const part = (a: unknown[]): unknown[] => a.slice(i, i + CHUNK * 8);
      await this.c.q(s.upsertCells, [part(up.pk), part(up.col), part(up.cv), part(up.dbv), part(up.seq), part(up.site)]);
    }
  }

  /**
   * Records a refused row and compensates: the central cells are re-stamped above everything the
   * device sent for the row, so the device takes the central values back on its next download
   * (docs/ARCHITECTURE.md "PostgreSQL row-level security"). A row that does not exist centrally
   * has nothing to re-stamp.
   */
  compensate(w: RowWork, out: Outcome, pk: Buffer, put: (pk: Buffer, col: number, cv: number, dbv: number, seq: number, site: number) => void, restamp: { pk: Buffer[]; col: number[]; above: string[]; v: string[] }): void {
    const t = w.t;
    const e = w.rejected as Error & { code: string };
    const operation = out.maxCl % 2 === 0 && out.maxCl > 0 ? 'DELETE' : out.startCl % 2 === 1 ? 'UPDATE' : 'INSERT';
    this.rejected.push({
      table: t.name,
      pk: w.pk,
      pkValues: w.pkValues,
      operation,
      code: e.code === '42501' ? 'rls_denied' : 'constraint_violation',
      reason: e.message,
      policy: null,
      values: Object.fromEntries(out.values),
    });
    this.clock += 1;
    const v = this.clock;
    if (out.startCl > 0) {
      // Only the cells the device wrote: other columns may hold other devices' newer writes.
      for (const name of out.values.keys()) {
        const id = t.colIds.get(name);
        if (id === undefined || !w.cells.has(id)) continue;
        restamp.pk.push(pk);
        restamp.col.push(id);
        restamp.above.push(String(out.maxColVersion));
        restamp.v.push(String(v));
      }
      // A refused delete or resurrection: the central life must outrank the device's.
      if (out.maxCl > out.startCl) {
        const alive = out.startCl % 2 === 1;
        put(pk, 0, out.maxCl + ((out.maxCl % 2 === 1) === alive ? 2 : 1), v, 0, 0);
      }
    } else if (out.maxCl % 2 === 1) {
      // A refused insert of a row this database never let exist: a tombstone of its own above the
      // device's life, so the device deletes its copy (docs/PROTOCOL.md "Rejected changes and compensation").
      put(pk, 0, out.maxCl + 1, v, 0, 0);
    }
  }
}

/** Merges `changes` on `c`, which must be inside a transaction with triggers silenced. */
export async function pgMergeChanges(c: PgConn, host: PgMergeHost, clock: number, changes: Iterable<Change>, opts: PgApplyOptions): Promise<ApplyResult> {
  const m = new PgMerge(c, host, opts, clock);
  const rs = opts.rowSecurity;
  if (rs !== undefined) {
    await c.q(`SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true), set_config('request.jwt.claim.role', $3, true)`, [rs.claims, rs.sub, rs.role]);
  }
  // Validation, groups and rows, in batch order: any error here refuses the batch whole.
  const sites = new Map<string, number>();
  const tables = new Map<PgTableContext, RowWork[]>();
  const rows = new Map<string, RowWork>();
  let last: { dbVersion: number; seq: number } | undefined;
  let prevSite = -1;
  let prevIncoming = -1;
  for (const ch of changes) {
    m.received++;
    const t = host.table(ch.tbl);
    if (t === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${ch.tbl} is not enabled for sync on this database`, { details: { table: ch.tbl } });
    }
    const isSentinel = ch.col === RIP_SENTINEL;
    const colId = isSentinel ? 0 : t.colIds.get(ch.col);
    if (colId === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${ch.col} does not exist in table ${t.name}`, { details: { table: t.name, column: ch.col } });
    }
    const siteKey = hexKey(ch.siteId);
    let site = sites.get(siteKey);
    if (site === undefined) sites.set(siteKey, (site = await host.siteRef(c, ch.siteId)));
    if (site !== prevSite || ch.dbVersion !== prevIncoming) m.groupIncoming.push(ch.dbVersion);
    prevSite = site;
    prevIncoming = ch.dbVersion;
    const key = `${t.name}\u0000${hexKey(ch.pk)}`;
    let w = rows.get(key);
    if (w === undefined) {
      const pkValues = decodePk(ch.pk);
      if (pkValues.length !== t.schema.pkColumns.length) {
        throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${t.name} has ${t.schema.pkColumns.length} column(s), change carries ${pkValues.length}`);
      }
      w = { t, pk: ch.pk, pkValues, pkParams: t.pkParams(pkValues), ins: [], cells: new Map(), exists: false };
      rows.set(key, w);
      let list = tables.get(t);
      if (list === undefined) tables.set(t, (list = []));
      list.push(w);
    }
    w.ins.push({ ch, colId, group: m.groupIncoming.length - 1, site });
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
  }
  // Tables in the order the batch first names them; each table's rows in chunks.
  for (const [t, list] of tables) {
    for (let i = 0; i < list.length; i += CHUNK) await m.chunk(t, list.slice(i, i + CHUNK));
  }
  return { received: m.received, applied: m.applied, tables: [...m.tables], last, dbVersion: m.clock, rejected: m.rejected };
}
