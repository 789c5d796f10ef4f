/**
 * Multi-row writes of the grouped merges (apply.ts `mergeFresh`, `mergeGrouped`): their writes
 * are queued per target table and consecutive writes of one statement shape are sent as ONE
 * multi-row statement (`INSERT … VALUES (…), (…) [ON CONFLICT …]`), which SQLite executes row by
 * row in order — exactly the single-row statements in the same order, minus their per-statement
 * cost (~2 µs each through better-sqlite3: bind, step, reset, result object).
 *
 * Order: each table's writes run in the order they were queued (a change of shape ends a run),
 * so a base table's rowids, its upserts over earlier writes and a metadata row dropped then
 * re-written come out as before. Writes to DIFFERENT tables may run in another order than queued:
 * merges run with the tracking triggers silenced (`offsync_clock.applying`), so no write to one
 * table reads or changes another. Callers flush ({@link BatchedWrites.flush}) before every read
 * of a table they wrote and before returning.
 */
import type { SqlStatement } from '../storage/driver.ts';
import type { SqlValue } from '../types.ts';
import type { TableContext } from './table-context.ts';

/** Rows per statement at most (a power of two); fewer for wide rows (see {@link MAX_PARAMS}). */
const MAX_ROWS = 64;
/** Bound parameters per statement at most: SQLite's historical SQLITE_MAX_VARIABLE_NUMBER. */
const MAX_PARAMS = 999;

/** One table's queue: the current run of one statement shape, its parameters row after row. */
class Run {
  kind: string | undefined;
  width = 0;
  rows = 0;
  /** Largest power of two of rows per statement for this run's width. */
  cap = MAX_ROWS;
  params: SqlValue[] = [];
  prepare: ((n: number) => SqlStatement) | undefined;
}

function capFor(width: number): number {
  let cap = MAX_ROWS;
  while (cap > 1 && cap * width > MAX_PARAMS) cap /= 2;
  return cap;
}

function flushRun(q: Run): void {
  const prepare = q.prepare;
  if (q.rows === 0 || prepare === undefined) return;
  const p = q.params;
  const w = q.width;
  let off = 0;
  let left = q.rows;
  while (left > 0) {
    let n = q.cap;
    while (n > left) n /= 2;
    const stmt = prepare(n);
    stmt.run(...(off === 0 && n * w === p.length ? p : p.slice(off, off + n * w)));
    off += n * w;
    left -= n;
  }
  q.rows = 0;
  q.params = [];
}

/** The queues of one table: base rows, row records, explicit cells. */
class TableWrites {
  readonly base = new Run();
  readonly records = new Run();
  readonly cells = new Run();

  constructor(readonly t: TableContext) {}

  /** Starts a run of `kind` on `q` unless it is the current one; `single`: one row per statement. */
  enter(q: Run, kind: string, width: number, prepare: (n: number) => SqlStatement, single = false): void {
    if (q.kind === kind) return;
    if (q === this.cells) this.flushCells();
    else flushRun(q);
    q.kind = kind;
    q.width = width;
    q.cap = single ? 1 : capFor(width);
    q.prepare = prepare;
  }

  /** The cells' run, after the records' (a cell written for a row whose record is queued finds it). */
  flushCells(): void {
    flushRun(this.records);
    flushRun(this.cells);
  }

  flush(): void {
    flushRun(this.base);
    this.flushCells();
  }
}

/** The queued writes of one merge, per table (see the module comment). */
export class BatchedWrites {
  readonly #tables = new Map<TableContext, TableWrites>();
  #last: TableWrites | undefined;
  #pending = false;

  /** A row's parameters are queued on `q`: a full statement's worth runs at once. */
  #rowDone(q: Run): void {
    if (++q.rows === q.cap) flushRun(q);
    this.#pending = true;
  }

  #of(t: TableContext): TableWrites {
    const last = this.#last;
    if (last !== undefined && last.t === t) return last;
    let w = this.#tables.get(t);
    if (w === undefined) this.#tables.set(t, (w = new TableWrites(t)));
    this.#last = w;
    return w;
  }

  /** `t.upsertColumns(cols)` with (…pkValues, …values); `kind` names the column list (one string per list, not per row). */
  upsert(t: TableContext, cols: readonly string[], pkValues: readonly SqlValue[], values: readonly SqlValue[], kind = cols === t.columnNames ? '*' : `u\u0000${cols.join('\u0000')}`): void {
    const w = this.#of(t);
    const q = w.base;
    if (q.kind !== kind) w.enter(q, kind, pkValues.length + values.length, (n) => t.upsertRows(cols, n));
    for (const v of pkValues) q.params.push(v);
    for (const v of values) q.params.push(v);
    this.#rowDone(q);
  }

  /** `t.stmts.insertPkOnly` with (…pkValues). */
  insertPkOnly(t: TableContext, pkValues: readonly SqlValue[]): void {
    const w = this.#of(t);
    w.enter(w.base, 'k', pkValues.length, (n) => t.insertPkOnlyRows(n));
    const q = w.base;
    for (const v of pkValues) q.params.push(v);
    this.#rowDone(q);
  }

  /** `t.stmts.deleteRow` with (…pkValues): one statement per row, in the base table's order. */
  deleteRow(t: TableContext, pkValues: readonly SqlValue[]): void {
    const w = this.#of(t);
    w.enter(w.base, 'd', pkValues.length, () => t.stmts.deleteRow, true);
    const q = w.base;
    for (const v of pkValues) q.params.push(v);
    this.#rowDone(q);
  }

  /** `t.stmts.putRowRecord` (pk, cl, sent, icv, db_version, seq, site). */
  putRowRecord(t: TableContext, pk: Uint8Array, cl: bigint, sent: bigint, icv: bigint | null, dbv: bigint, seq: bigint, site: bigint): void {
    const w = this.#of(t);
    const q = w.records;
    if (q.kind !== 'r') w.enter(q, 'r', 7, (n) => t.putRowRecords(n));
    q.params.push(pk, cl, sent, icv, dbv, seq, site);
    this.#rowDone(q);
  }

  /**
   * `t.stmts.setCell` (pk, col, col_version, db_version, seq, site). `known`: the row has a
   * record in the table or queued here (cells run after the records queued before them), so
   * no bare record is needed (`TableContext.setKnownCells`).
   */
  setCell(t: TableContext, pk: Uint8Array, col: bigint, cv: bigint, dbv: bigint, seq: bigint, site: bigint, known = false): void {
    const w = this.#of(t);
    const q = w.cells;
    const kind = known ? 'C' : 'c';
    if (q.kind !== kind) w.enter(q, kind, 6, known ? (n) => t.setKnownCells(n) : (n) => t.setCells(n));
    q.params.push(pk, col, cv, dbv, seq, site);
    if (++q.rows === q.cap) w.flushCells();
    this.#pending = true;
  }

  /** `t.stmts.setCellByRid` (rid, col, col_version, db_version, seq, site): a row whose rid the caller read. */
  setCellByRid(t: TableContext, rid: bigint, col: bigint, cv: bigint, dbv: bigint, seq: bigint, site: bigint): void {
    const w = this.#of(t);
    const q = w.cells;
    if (q.kind !== 'R') w.enter(q, 'R', 6, (n) => t.setCellsByRid(n));
    q.params.push(rid, col, cv, dbv, seq, site);
    if (++q.rows === q.cap) w.flushCells();
    this.#pending = true;
  }

  /** `t.stmts.dropCells` (pk): one statement, in the cells' order. */
  dropCells(t: TableContext, pk: Uint8Array): void {
    const w = this.#of(t);
    w.enter(w.cells, 'x', 1, () => t.stmts.dropCells, true);
    const q = w.cells;
    q.params.push(pk);
    this.#rowDone(q);
  }

  /** Runs every queued write. */
  flush(): void {
    if (!this.#pending) return;
    for (const w of this.#tables.values()) w.flush();
    this.#pending = false;
  }
}
