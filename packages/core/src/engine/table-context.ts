/**
 * Per-table runtime state of the engine: schema, stable column ids and the prepared
 * statements the merge and the change feed use. Rebuilt whenever the table's schema changes.
 */
import type { SqlDriver, SqlStatement } from '../storage/driver.ts';
import type { TableSchema } from '../schema/introspect.ts';
import type { CrdtAlgorithm, SqlValue } from '../types.ts';
import { metaTableName, quoteIdent } from './sql-gen.ts';

export interface TableContext {
  readonly name: string;
  readonly algorithm: CrdtAlgorithm;
  readonly schema: TableSchema;
  /** Value column name → stable id (≥ 1). The sentinel is id 0. */
  readonly colIds: ReadonlyMap<string, number>;
  /** Stable id → value column name. */
  readonly colNames: ReadonlyMap<number, string>;
  /** Value columns (names) in the order `selectRow` returns them. */
  readonly rowColumns: readonly string[];
  readonly stmts: TableStatements;
  /** Per-column statements, created on first use. */
  upsertColumn(col: string): SqlStatement;
  selectColumn(col: string): SqlStatement;
}

export interface TableStatements {
  /** (pk) → [col_version] of the sentinel. */
  sentinel: SqlStatement;
  /** (pk) → any meta row. */
  anyMeta: SqlStatement;
  /** (pk, col) → [col_version]. */
  cell: SqlStatement;
  /** (pk, col, col_version, db_version, seq, site) upsert of one clock. */
  setClock: SqlStatement;
  /** (pk) → reset all cell clocks to 0 (resurrection). */
  resetCells: SqlStatement;
  /** (pk) → drop all cell clocks (delete). */
  dropCells: SqlStatement;
  /** (...pkValues) → delete the base row. */
  deleteRow: SqlStatement;
  /** (...pkValues) → INSERT OR IGNORE a row holding only its primary key. */
  insertPkOnly: SqlStatement;
  /** (...pkValues) → [value columns…] of the base row. */
  selectRow: SqlStatement;
  /** (after_version, after_seq) → change feed rows; see extract.ts. */
  feed: SqlStatement;
  /** (after_version, after_seq, site) → change feed without one site. */
  feedExcludingSite: SqlStatement;
  /** (after_version, after_seq) → local changes only (site 0). */
  feedLocal: SqlStatement;
}

export function createTableContext(
  driver: SqlDriver,
  schema: TableSchema,
  algorithm: CrdtAlgorithm,
  colIds: ReadonlyMap<string, number>,
): TableContext {
  const t = quoteIdent(schema.name);
  const m = quoteIdent(metaTableName(schema.name));
  const pkNames = schema.pkColumns.map((c) => quoteIdent(c.name));
  const where = pkNames.map((n) => `${n} = ?`).join(' AND ');
  const marks = pkNames.map(() => '?').join(', ');
  const rowColumns = schema.valueColumns.map((c) => c.name);
  const colNames = new Map<number, string>();
  for (const [name, id] of colIds) colNames.set(id, name);
  const feedSelect = `SELECT m.pk, m.col, m.col_version, m.db_version, m.seq, m.site, COALESCE(s.col_version, 1)
    FROM ${m} m LEFT JOIN ${m} s ON s.pk = m.pk AND s.col = 0
    WHERE (m.db_version, m.seq) > (?, ?)`;
  const order = 'ORDER BY m.db_version, m.seq';
  const stmts: TableStatements = {
    sentinel: driver.prepare(`SELECT col_version FROM ${m} WHERE pk = ? AND col = 0`),
    anyMeta: driver.prepare(`SELECT 1 FROM ${m} WHERE pk = ? LIMIT 1`),
    cell: driver.prepare(`SELECT col_version FROM ${m} WHERE pk = ? AND col = ?`),
    setClock: driver.prepare(
      `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (pk, col) DO UPDATE SET col_version = excluded.col_version, db_version = excluded.db_version,
       seq = excluded.seq, site = excluded.site`,
    ),
    resetCells: driver.prepare(`UPDATE ${m} SET col_version = 0 WHERE pk = ? AND col <> 0`),
    dropCells: driver.prepare(`DELETE FROM ${m} WHERE pk = ? AND col <> 0`),
    deleteRow: driver.prepare(`DELETE FROM ${t} WHERE ${where}`),
    insertPkOnly: driver.prepare(`INSERT OR IGNORE INTO ${t} (${pkNames.join(', ')}) VALUES (${marks})`),
    selectRow: driver.prepare(`SELECT ${rowColumns.length ? rowColumns.map(quoteIdent).join(', ') : '1'} FROM ${t} WHERE ${where}`),
    feed: driver.prepare(`${feedSelect} ${order}`),
    feedExcludingSite: driver.prepare(`${feedSelect} AND m.site <> ? ${order}`),
    feedLocal: driver.prepare(`${feedSelect} AND m.site = 0 ${order}`),
  };
  const upserts = new Map<string, SqlStatement>();
  const selects = new Map<string, SqlStatement>();
  return {
    name: schema.name,
    algorithm,
    schema,
    colIds,
    colNames,
    rowColumns,
    stmts,
    upsertColumn(col) {
      let s = upserts.get(col);
      if (s === undefined) {
        const c = quoteIdent(col);
        s = driver.prepare(
          `INSERT INTO ${t} (${pkNames.join(', ')}, ${c}) VALUES (${marks}, ?) ON CONFLICT DO UPDATE SET ${c} = excluded.${c}`,
        );
        upserts.set(col, s);
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

/** Row values of `selectRow` keyed by column id, for the change feed. */
export function rowValueIndex(ctx: TableContext): Map<number, number> {
  const out = new Map<number, number>();
  ctx.rowColumns.forEach((name, i) => {
    const id = ctx.colIds.get(name);
    if (id !== undefined) out.set(id, i);
  });
  return out;
}

export type PkValues = SqlValue[];
