/**
 * Per-table runtime state of the engine: schema, stable column ids and the prepared
 * statements for the clock tables (layout in sql-gen.ts `metaTableSql`). Rebuilt whenever
 * the table's schema changes.
 */
import type { SqlDriver, SqlStatement } from '../storage/driver.ts';
import type { TableSchema } from '../schema/introspect.ts';
import type { CrdtAlgorithm, SqlValue } from '../types.ts';
import { BARE_CL, BARE_RECORD_COLUMNS, bareRecordValues, cellsTableName, orderedColumns, pkBlobSql, quoteIdent, quoteText, rowsTableName } from './sql-gen.ts';

export interface ValueColumn {
  name: string;
  id: number;
  /** Position among value columns ordered by id: implicit cells use seq = row seq + 1 + ord. */
  ord: number;
}

export interface TableContext {
  readonly name: string;
  readonly algorithm: CrdtAlgorithm;
  readonly schema: TableSchema;
  /** Value column name → stable id (≥ 1). The sentinel is id 0. */
  readonly colIds: ReadonlyMap<string, number>;
  /** Value columns ordered by id. */
  readonly columns: readonly ValueColumn[];
  /** Their names, in that order. */
  readonly columnNames: readonly string[];
  /**
   * True when nothing in the table's definition names a collation: rows are then told apart by
   * their key values exactly as SQLite's BINARY comparison does (apply.ts queues the writes of
   * the change-by-change merge only for such tables).
   */
  readonly pkBinary: boolean;
  readonly byId: ReadonlyMap<number, ValueColumn>;
  readonly stmts: TableStatements;
  /**
   * Upsert of the given value columns of one row (pk values, then the column values). The
   * conflict target is the primary key: a change can only ever write the row its key names; a
   * clash with another UNIQUE constraint raises a constraint error (a rejected change).
   */
  upsertColumns(cols: readonly string[]): SqlStatement;
  selectColumn(col: string): SqlStatement;
  /**
   * `rowsJoined` restricted to dead rows and the live rows whose base row satisfies `where` (an
   * expression over this table's columns; named parameters allowed): an RLS SELECT pushed into
   * the feed's SQL (`RowFilter.sqlVisible`). Prepared once per expression.
   */
  rowsJoinedVisible(where: string): SqlStatement;
  /**
   * The batched read of the grouped merge (apply.ts `mergeGrouped`): for exactly `n` keys (one
   * parameter each; a key may repeat), every key's row record, each of its explicit cells (one
   * result row per cell, at least one per key) and, when the key allows the join, its values →
   * [key index, cl, sent, icv, db_version, seq, site, col, col_version, db_version, seq, site,
   * found, ...values in `columns` order]; the record's columns are NULL when it has none, the
   * cell's when it has none, `found` and the values as in `rowsJoined`. Clocks arrive as numbers.
   */
  stateByPk(n: number): SqlStatement;
  /**
   * The existence check of the fresh merge into a table that holds metadata (apply.ts
   * `mergeFresh`), for exactly `n` keys (a key may repeat): the `n` key blobs, then the `n` keys'
   * values in key-column order → [1] when any of them has a row record (bare or not: every
   * explicit cell has one) or a base row (compared as `selectRow` compares: the key columns'
   * affinity and collation), else [0].
   */
  anyKnownKey(n: number): SqlStatement;
  /**
   * Multi-row forms of the merge's writes (apply-writes.ts): `n` rows of parameters in one
   * statement, executed row by row in order like `n` runs of the single-row statement.
   * `upsertRows(cols, n)` is `upsertColumns(cols)`; the others are `insertPkOnly`,
   * `putRowRecord` and `setCell`.
   */
  upsertRows(cols: readonly string[], n: number): SqlStatement;
  insertPkOnlyRows(n: number): SqlStatement;
  putRowRecords(n: number): SqlStatement;
  setCells(n: number): SqlStatement;
  /** `setCells` for rows that have a record (bare or not) when it runs: no bare record is made. */
  setKnownCells(n: number): SqlStatement;
  /** `setCells` by rid (rid, col, col_version, db_version, seq, site): `stmts.setCellByRid` for `n` rows. */
  setCellsByRid(n: number): SqlStatement;
}

export interface TableStatements {
  /** (pk) → [cl, sent, icv, db_version, seq, site, rid] */
  rowRecord: SqlStatement;
  /** (pk) → any explicit cell. */
  anyCell: SqlStatement;
  /**
   * (pk) → the row's state in one read, for tables of at most {@link ROW_STATE_COLUMNS} value
   * columns (undefined otherwise): [cl, sent, icv, db_version, seq, site] of the row record
   * (NULLs when it has none), then 1/0 whether it has any explicit cell (only when it has no
   * record, else NULL), then each value column's explicit col_version (NULL when implicit or
   * absent) in `columns` order, then the record's rid (bare or not; NULL without one). The merge
   * reads a row with it instead of `rowRecord`, `anyCell` and one `cell` per change (apply.ts
   * `Merge.enterRow`).
   */
  rowState: SqlStatement | undefined;
  /** () → [1] when the table has any clock at all (apply.ts `mergeFresh` needs none). */
  anyMetadata: SqlStatement;
  /** (pk, col) → [col_version] */
  cell: SqlStatement;
  /** (pk, col) → [site] of an explicit cell (conflict reports). */
  cellSite: SqlStatement;
  /** (pk, site) → [site] of an explicit cell written by another site, if any. */
  otherWriter: SqlStatement;
  /** (pk) → [col] of explicit cells. */
  cellCols: SqlStatement;
  /** (pk, col, col_version, db_version, seq, site) */
  setCell: SqlStatement;
  /** (pk) → [rid] of a new bare record, nothing when the key has a record (bare or not). */
  bareRecord: SqlStatement;
  /** (rid, col, col_version, db_version, seq, site): `setCell` for a row whose rid the caller read. */
  setCellByRid: SqlStatement;
  /** (pk, cl, db_version, seq, site): sentinel clock, no implicit cells. */
  setSentinel: SqlStatement;
  /** (pk, icv, db_version, seq, site): a new live row whose cells are all implicit. */
  insertRowRecord: SqlStatement;
  /** (pk, cl, sent, icv, db_version, seq, site): the whole row record, inserted or replaced (grouped merge). */
  putRowRecord: SqlStatement;
  /** (pk, icv, db_version, seq, site): write explicit cells for every implicit one (then clear icv). */
  materialize: SqlStatement;
  clearImplicit: SqlStatement;
  /** (pk) → explicit cells to col_version 0 (resurrection). */
  resetCells: SqlStatement;
  /** (pk) → drop explicit cells (delete). */
  dropCells: SqlStatement;
  /** (...pkValues) */
  deleteRow: SqlStatement;
  insertPkOnly: SqlStatement;
  /** (...pkValues) → value columns in `columns` order. */
  selectRow: SqlStatement;
  /** (tbl, pk) → [vals, audience] of `offsync_tombstones`. */
  tombstoneGet: SqlStatement;
  /** (tbl, pk, vals, audience) */
  tombstonePut: SqlStatement;
  /** (tbl) → a row when the table has a tombstone with an audience (a compensation; apply.ts `mergeRow` may rebase over it). */
  anyAudience: SqlStatement;
  /** (audience, tbl, pk, cl, db_version): a removal addressed to one principal only. */
  evictionPut: SqlStatement;
  /** (audience, tbl (ignored: the statement is per table), db_version) → [pk, cl, db_version] after the version. */
  evictionsFeed: SqlStatement;
  /** (tbl, pk, db_version, vals): the row's values before a visibility-relevant change. */
  priorPut: SqlStatement;
  /** (tbl, pk, db_version) → [vals] of the earliest such change after the version. */
  priorAfter: SqlStatement;
  /** (tbl, db_version) → a row when the table has any prior values after the version. */
  priorAny: SqlStatement;
  /**
   * One-pass feed (extract.ts): every row record with `db_version ≥ ?`, in (db_version, seq, pk)
   * order, LEFT JOINed with each of its explicit cells (one result row per cell, consecutive) →
   * [pk, cl, sent, icv, db_version, seq, site, col, col_version, db_version, seq, site, found,
   * ...values in `columns` order]. `found` is 1/0 when the row's values were joined from the base
   * table (a single TEXT key, decoded in SQL), NULL when the caller must read them itself.
   */
  rowsJoined: SqlStatement;
  /**
   * ((db_version, seq) > (?, ?), then ? = the rows' db_version bound of {@link rowsJoined}): the
   * explicit cells that stream does not deliver in order — of rows outside its range, or older
   * than their row record → [pk, col, col_version, db_version, seq, site, cl]. Optionally by site.
   */
  cellsResidual: SqlStatement;
  cellsResidualExcluding: SqlStatement;
  cellsResidualLocal: SqlStatement;
}

/** Value columns at most for {@link TableStatements.rowState} (one index lookup per column and row). */
export const ROW_STATE_COLUMNS = 8;

export function createTableContext(
  driver: SqlDriver,
  schema: TableSchema,
  algorithm: CrdtAlgorithm,
  colIds: ReadonlyMap<string, number>,
): TableContext {
  const t = quoteIdent(schema.name);
  const r = quoteIdent(rowsTableName(schema.name));
  const c = quoteIdent(cellsTableName(schema.name));
  const pkNames = schema.pkColumns.map((k) => quoteIdent(k.name));
  const where = pkNames.map((n) => `${n} = ?`).join(' AND ');
  const marks = pkNames.map(() => '?').join(', ');
  const columns = orderedColumns(colIds, schema.valueColumns.map((v) => v.name));
  const byId = new Map(columns.map((v) => [v.id, v]));
  const implicitSource = columns.length === 0 ? 'SELECT 0 AS col, 0 AS ord WHERE 0' : columns.map((v) => `SELECT ${v.id} AS col, ${v.ord} AS ord`).join(' UNION ALL ');
  // Clock integers are safe integers (the clock guards refuse anything else): read as REAL they
  // arrive as JS numbers, without a BigInt per column and row.
  const f = (x: string): string => `CAST(${x} AS REAL)`;
  const joined = joinedValuesSql(driver, schema, columns.map((v) => v.name), t);
  const rowsJoinedHead = `SELECT r.pk, ${f('r.cl')}, ${f('r.sent')}, ${f('r.icv')}, ${f('r.db_version')}, ${f('r.seq')}, ${f('r.site')}, ${f('x.col')}, ${f('x.col_version')}, ${f('x.db_version')}, ${f('x.seq')}, ${f('x.site')}, ${joined.select}
    FROM ${r} r LEFT JOIN ${c} x ON x.rid = r.rid ${joined.join}
    WHERE r.db_version >= ?`;
  const rowsJoinedSql = `${rowsJoinedHead} ORDER BY r.db_version, r.seq, r.pk`;
  const visible = new Map<string, SqlStatement>();
  // The cells are walked in the (db_version, seq) index alone (it holds rid and col) and judged
  // against their row record (by rowid); only a cell that stays is looked up for its col_version
  // and site (`v`, the same cell: always there). Without that, every cell of the table is read in
  // full, even at cursor 0, where the stream is usually empty (extract-speed.ts: ~65 → ~40 ms CPU
  // for 90k cells). CROSS JOIN keeps the order x, r, v. A bare record (no record: cl 1 for its
  // cells) has a db_version below every bound.
  const residualSql = `SELECT r.pk, ${f('x.col')}, ${f('v.col_version')}, ${f('x.db_version')}, ${f('x.seq')}, ${f('v.site')}, ${f(`CASE r.cl WHEN ${BARE_CL} THEN 1 ELSE r.cl END`)}
    FROM ${c} x CROSS JOIN ${r} r ON r.rid = x.rid CROSS JOIN ${c} v ON v.rid = x.rid AND v.col = x.col
    WHERE (x.db_version, x.seq) > (?, ?) AND (r.db_version < ? OR (x.db_version, x.seq) < (r.db_version, r.seq))`;
  const multi = new Map<string, SqlStatement>();
  /** `head VALUES (row), … (n times) tail`, prepared once per text. */
  const rowsOf = (key: string, n: number, head: string, row: string, tail: string): SqlStatement => {
    const k = `${key}\u0001${n}`;
    let s = multi.get(k);
    if (s === undefined) {
      s = driver.prepare(`${head} VALUES ${Array.from({ length: n }, () => row).join(', ')}${tail}`);
      multi.set(k, s);
    }
    return s;
  };
  const upsertHead = (q: readonly string[]): string => `INSERT INTO ${t} (${[...pkNames, ...q].join(', ')})`;
  const upsertTail = (q: readonly string[]): string => ` ON CONFLICT (${pkNames.join(', ')}) DO UPDATE SET ${q.map((x) => `${x} = excluded.${x}`).join(', ')}`;
  const cellsUpsert = `ON CONFLICT (rid, col) DO UPDATE SET col_version = excluded.col_version, db_version = excluded.db_version,
       seq = excluded.seq, site = excluded.site`;
  const recordsUpsert = `ON CONFLICT (pk) DO UPDATE SET cl = excluded.cl, sent = excluded.sent, icv = excluded.icv,
       db_version = excluded.db_version, seq = excluded.seq, site = excluded.site`;
  /** The merge's writes for `n` rows (n = 1: the single-row statements). */
  const upsertRows = (cols: readonly string[], n: number): SqlStatement => {
    const q = cols.map(quoteIdent);
    return rowsOf(`u\u0000${cols.join('\u0000')}`, n, upsertHead(q), `(${marks}${', ?'.repeat(q.length)})`, upsertTail(q));
  };
  const insertPkOnlyRows = (n: number): SqlStatement => rowsOf('k', n, `INSERT OR IGNORE INTO ${t} (${pkNames.join(', ')})`, `(${marks})`, '');
  const putRowRecords = (n: number): SqlStatement =>
    rowsOf('r', n, `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)`, '(?, ?, ?, ?, ?, ?, ?)', ` ${recordsUpsert}`);
  // Cells by key: the rows' keys get bare records first where they have none (one statement over
  // the same parameters), then the cells are written under their records' rids, in order.
  const setKnownCells = (n: number): SqlStatement =>
    rowsOf('c', n, `INSERT INTO ${c} (rid, col, col_version, db_version, seq, site)`, `((SELECT rid FROM ${r} WHERE pk = ?), ?, ?, ?, ?, ?)`, ` ${cellsUpsert}`);
  const setCellsByRid = (n: number): SqlStatement => rowsOf('R', n, `INSERT INTO ${c} (rid, col, col_version, db_version, seq, site)`, '(?, ?, ?, ?, ?, ?)', ` ${cellsUpsert}`);
  const setCells = (n: number): SqlStatement =>
    firstOfSix(rowsOf('b', n, `INSERT INTO ${r} ${BARE_RECORD_COLUMNS}`, `(${bareRecordValues('?')})`, ' ON CONFLICT (pk) DO NOTHING'), setKnownCells(n));
  // The rid of key ?, for the statements that read or change a row's explicit cells.
  const ridOf = `(SELECT rid FROM ${r} WHERE pk = ?)`;
  // A record column, NULL for a bare record (which stands for none).
  const rec = (x: string): string => `CASE WHEN r.cl <> ${BARE_CL} THEN ${x} END`;
  const stmts: TableStatements = {
    rowRecord: driver.prepare(`SELECT cl, sent, icv, db_version, seq, site, rid FROM ${r} WHERE pk = ? AND cl <> ${BARE_CL}`),
    anyCell: driver.prepare(`SELECT 1 FROM ${c} WHERE rid = ${ridOf} LIMIT 1`),
    rowState:
      columns.length > ROW_STATE_COLUMNS
        ? undefined
        : driver.prepare(
            `SELECT ${rec('r.cl')}, r.sent, r.icv, r.db_version, r.seq, r.site, CASE WHEN r.pk IS NULL OR r.cl = ${BARE_CL} THEN EXISTS (SELECT 1 FROM ${c} x WHERE x.rid = r.rid) END${columns.map((v) => `, (SELECT x.col_version FROM ${c} x WHERE x.rid = r.rid AND x.col = ${v.id})`).join('')}, r.rid
             FROM (SELECT ? AS k) q LEFT JOIN ${r} r ON r.pk = q.k`,
          ),
    anyMetadata: driver.prepare(`SELECT EXISTS (SELECT 1 FROM ${r}) OR EXISTS (SELECT 1 FROM ${c})`),
    cell: driver.prepare(`SELECT col_version FROM ${c} WHERE rid = ${ridOf} AND col = ?`),
    cellSite: driver.prepare(`SELECT site FROM ${c} WHERE rid = ${ridOf} AND col = ?`),
    otherWriter: driver.prepare(`SELECT site FROM ${c} WHERE rid = ${ridOf} AND site <> ? LIMIT 1`),
    cellCols: driver.prepare(`SELECT col FROM ${c} WHERE rid = ${ridOf}`),
    setCell: setCells(1),
    bareRecord: driver.prepare(`INSERT INTO ${r} ${BARE_RECORD_COLUMNS} VALUES (${bareRecordValues('?')}) ON CONFLICT (pk) DO NOTHING RETURNING rid`),
    setCellByRid: setCellsByRid(1),
    setSentinel: driver.prepare(
      `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site) VALUES (?, ?, 1, NULL, ?, ?, ?)
       ON CONFLICT (pk) DO UPDATE SET cl = excluded.cl, sent = 1, icv = NULL, db_version = excluded.db_version,
       seq = excluded.seq, site = excluded.site`,
    ),
    // (Over a bare record only: a real one is never there when the merge inserts a row.)
    insertRowRecord: driver.prepare(
      `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site) VALUES (?, 1, 0, ?, ?, ?, ?)
       ON CONFLICT (pk) DO UPDATE SET cl = 1, sent = 0, icv = excluded.icv, db_version = excluded.db_version, seq = excluded.seq, site = excluded.site WHERE cl = ${BARE_CL}`,
    ),
    putRowRecord: putRowRecords(1),
    materialize: driver.prepare(
      `INSERT OR IGNORE INTO ${c} (rid, col, col_version, db_version, seq, site)
       SELECT ${ridOf}, x.col, ?, ?, ? + 1 + x.ord, ? FROM (${implicitSource}) x`,
    ),
    clearImplicit: driver.prepare(`UPDATE ${r} SET icv = NULL WHERE pk = ?`),
    resetCells: driver.prepare(`UPDATE ${c} SET col_version = 0 WHERE rid = ${ridOf}`),
    dropCells: driver.prepare(`DELETE FROM ${c} WHERE rid = ${ridOf}`),
    deleteRow: driver.prepare(`DELETE FROM ${t} WHERE ${where}`),
    insertPkOnly: insertPkOnlyRows(1),
    selectRow: driver.prepare(`SELECT ${columns.length ? columns.map((v) => quoteIdent(v.name)).join(', ') : '1'} FROM ${t} WHERE ${where}`),
    tombstoneGet: driver.prepare('SELECT vals, audience FROM offsync_tombstones WHERE tbl = ? AND pk = ?'),
    tombstonePut: driver.prepare('INSERT OR REPLACE INTO offsync_tombstones (tbl, pk, vals, audience) VALUES (?, ?, ?, ?)'),
    anyAudience: driver.prepare('SELECT 1 FROM offsync_tombstones WHERE tbl = ? AND audience IS NOT NULL LIMIT 1'),
    evictionPut: driver.prepare('INSERT OR REPLACE INTO offsync_evictions (audience, tbl, pk, cl, db_version) VALUES (?, ?, ?, ?, ?)'),
    // The table name is a literal: statements are cached by text, and the feed iterates this one
    // for several tables at once (one statement per text cannot be iterated twice).
    evictionsFeed: driver.prepare(`SELECT pk, cl, db_version FROM offsync_evictions WHERE audience = ? AND tbl = ${quoteText(schema.name)} AND ? IS NOT NULL AND db_version > ? ORDER BY db_version, pk`),
    priorPut: driver.prepare('INSERT OR REPLACE INTO offsync_prior (tbl, pk, db_version, vals) VALUES (?, ?, ?, ?)'),
    priorAfter: driver.prepare('SELECT vals FROM offsync_prior WHERE tbl = ? AND pk = ? AND db_version > ? ORDER BY db_version LIMIT 1'),
    priorAny: driver.prepare('SELECT 1 FROM offsync_prior WHERE tbl = ? AND db_version > ? LIMIT 1'),
    rowsJoined: driver.prepare(rowsJoinedSql),
    cellsResidual: driver.prepare(`${residualSql} ORDER BY x.db_version, x.seq`),
    cellsResidualExcluding: driver.prepare(`${residualSql} AND v.site <> ? ORDER BY x.db_version, x.seq`),
    cellsResidualLocal: driver.prepare(`${residualSql} AND v.site = 0 ORDER BY x.db_version, x.seq`),
  };
  const selects = new Map<string, SqlStatement>();
  const byPk = new Map<number, SqlStatement>();
  const knownByN = new Map<number, SqlStatement>();
  return {
    name: schema.name,
    algorithm,
    schema,
    colIds,
    columns,
    columnNames: columns.map((v) => v.name),
    pkBinary: !/\bCOLLATE\b/i.test(schema.createSql),
    byId,
    stmts,
    upsertColumns: (cols) => upsertRows(cols, 1),
    rowsJoinedVisible(where) {
      let s = visible.get(where);
      if (s === undefined) {
        // Inner scope first: the policy's column names (and `<table>.col`) name the subquery's row.
        const keys = `SELECT ${pkBlobSql(schema, t, false)} FROM ${t} AS ${t} WHERE (${where})`;
        s = driver.prepare(`${rowsJoinedHead} AND (r.cl % 2 = 0 OR r.pk IN (${keys})) ORDER BY r.db_version, r.seq, r.pk`);
        if (visible.size >= 64) visible.clear();
        visible.set(where, s);
      }
      return s;
    },
    upsertRows,
    insertPkOnlyRows,
    putRowRecords,
    setCells,
    setKnownCells,
    setCellsByRid,
    stateByPk(n) {
      let s = byPk.get(n);
      if (s === undefined) {
        const keyed = joinedValuesSql(driver, schema, columns.map((v) => v.name), t, 'k.pk');
        const keys = Array.from({ length: n }, (_, i) => `(${i}.0, ?)`).join(', ');
        s = driver.prepare(`WITH k(i, pk) AS (VALUES ${keys})
          SELECT k.i, ${['r.cl', 'r.sent', 'r.icv', 'r.db_version', 'r.seq', 'r.site'].map((x) => rec(f(x))).join(', ')}, ${f('x.col')}, ${f('x.col_version')}, ${f('x.db_version')}, ${f('x.seq')}, ${f('x.site')}, ${keyed.select}
          FROM k LEFT JOIN ${r} r ON r.pk = k.pk LEFT JOIN ${c} x ON x.rid = r.rid ${keyed.join}`);
        byPk.set(n, s);
      }
      return s;
    },
    anyKnownKey(n) {
      let s = knownByN.get(n);
      if (s === undefined) {
        const blobs = Array.from({ length: n }, () => '?').join(', ');
        const base =
          pkNames.length === 1
            ? `${pkNames[0] as string} IN (${blobs})`
            : `(${pkNames.join(', ')}) IN (VALUES ${Array.from({ length: n }, () => `(${marks})`).join(', ')})`;
        s = driver.prepare(`SELECT EXISTS (SELECT 1 FROM ${r} WHERE pk IN (${blobs})) OR EXISTS (SELECT 1 FROM ${t} WHERE ${base})`);
        knownByN.set(n, s);
      }
      return s;
    },
    selectColumn(col) {
      let s = selects.get(col);
      if (s === undefined) {
        s = driver.prepare(`SELECT ${quoteIdent(col)} FROM ${t} WHERE ${where}`);
        selects.set(col, s);
      }
      return s;
    },
  };
}

export type PkValues = SqlValue[];

/**
 * `a` with the first of every six parameters (the keys of `setCells` rows), then `b` with all of
 * them, as one statement to the caller (reads are `b`'s).
 */
function firstOfSix(a: SqlStatement, b: SqlStatement): SqlStatement {
  return {
    run: (...p) => {
      const keys: SqlValue[] = [];
      for (let i = 0; i < p.length; i += 6) keys.push(p[i] as SqlValue);
      a.run(...keys);
      return b.run(...p);
    },
    get: (...p) => b.get(...p),
    all: (...p) => b.all(...p),
    getRaw: (...p) => b.getRaw(...p),
    iterateRaw: (...p) => b.iterateRaw(...p),
  };
}

/**
 * The base-table join of the one-pass feed. A single key column of TEXT affinity is decoded from
 * the pk blob in SQL (`[01][type 3 + 8·w][length: w bytes][UTF-8]`, docs/PROTOCOL.md §P4), so the
 * row's values arrive with its clocks; the comparison is the one `selectRow` makes (the column's
 * collation, TEXT against TEXT). Any other key (or a blob whose key is not TEXT) reports `found`
 * NULL and the feed reads the row by its decoded key.
 */
function joinedValuesSql(driver: SqlDriver, schema: TableSchema, columns: readonly string[], t: string, pk = 'r.pk'): { select: string; join: string } {
  const none = { select: 'NULL', join: '' };
  const [only, ...more] = schema.pkColumns;
  if (only === undefined || more.length > 0 || columns.length === 0) return none;
  const decl = only.type.toUpperCase();
  const textAffinity = !decl.includes('INT') && (decl.includes('CHAR') || decl.includes('CLOB') || decl.includes('TEXT'));
  if (!textAffinity) return none;
  const enc = driver.prepare('PRAGMA encoding').getRaw()?.[0];
  if (enc !== 'UTF-8') return none;
  const w = `(CASE hex(substr(${pk}, 1, 2)) WHEN '010B' THEN 1 WHEN '0113' THEN 2 WHEN '011B' THEN 3 WHEN '0123' THEN 4 END)`;
  const k = quoteIdent(only.name);
  return {
    select: `CASE WHEN ${w} IS NULL THEN NULL WHEN b.${k} IS NOT NULL THEN 1.0 ELSE 0.0 END, ${columns.map((n) => `b.${quoteIdent(n)}`).join(', ')}`,
    join: `LEFT JOIN ${t} b ON b.${k} = CAST(substr(${pk}, 3 + ${w}) AS TEXT)`,
  };
}
