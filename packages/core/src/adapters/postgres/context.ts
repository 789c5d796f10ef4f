/**
 * Per-table runtime state of the PostgreSQL engine: schema, stable column ids and the SQL
 * texts the merge and the feed run against the clock table and the base table.
 */
import { orderedColumns } from '../../engine/sql-gen.ts';
import type { ValueColumn } from '../../engine/table-context.ts';
import type { CrdtAlgorithm, SqlValue } from '../../types.ts';
import { quoteIdent, toParam } from './conn.ts';
import { metaTable } from './ddl.ts';
import { readExpr, writeExpr } from './introspect.ts';
import type { PgColumn, PgTableSchema } from './introspect.ts';

export interface PgTableContext {
  readonly name: string;
  readonly algorithm: CrdtAlgorithm;
  readonly schema: PgTableSchema;
  readonly colIds: ReadonlyMap<string, number>;
  /** Value columns ordered by id (ord = position). */
  readonly columns: readonly ValueColumn[];
  readonly byId: ReadonlyMap<number, ValueColumn>;
  /** Value column name → PostgreSQL column. */
  readonly pgColumn: ReadonlyMap<string, PgColumn>;
  readonly sql: {
    /** (pk) → [sentinel col_version | null, count of clock rows] */
    rowState: string;
    /** (pk, col) → [col_version] */
    cell: string;
    /** (pk, col, col_version, db_version, seq, site) */
    setCell: string;
    /** (pk) */
    resetCells: string;
    dropCells: string;
    /** (pk, above, db_version, col ids): these value cells re-stamped above `above` as a server write (compensation). */
    restamp: string;
    /** (...pk values) → one row per deleted row */
    deleteRow: string;
    insertPkOnly: string;
    /** (...pk values) → value columns in `columns` order, read as their value class. */
    selectRow: string;
  };
  selectColumn(col: string): string;
  /** Upsert of pk + the given value columns. */
  upsert(cols: readonly string[]): string;
  /** Query parameters for primary-key values (declaration order). */
  pkParams(values: readonly SqlValue[]): unknown[];
}

export function createPgTableContext(
  meta: string,
  nsp: string,
  schema: PgTableSchema,
  algorithm: CrdtAlgorithm,
  colIds: ReadonlyMap<string, number>,
): PgTableContext {
  const m = metaTable(meta, schema.name);
  const t = `${quoteIdent(nsp)}.${quoteIdent(schema.name)}`;
  const columns = orderedColumns(colIds, schema.valueColumns.map((v) => v.name));
  const pgColumn = new Map(schema.valueColumns.map((c) => [c.name, c]));
  const pkNames = schema.pkColumns.map((k) => quoteIdent(k.name));
  const where = schema.pkColumns.map((k, i) => `${quoteIdent(k.name)} = ${writeExpr(k, `$${i + 1}`)}`).join(' AND ');
  const pkVals = schema.pkColumns.map((k, i) => writeExpr(k, `$${i + 1}`)).join(', ');
  const np = schema.pkColumns.length;
  const col = (name: string): PgColumn => pgColumn.get(name) as PgColumn;
  const upserts = new Map<string, string>();
  return {
    name: schema.name,
    algorithm,
    schema,
    colIds,
    columns,
    byId: new Map(columns.map((c) => [c.id, c])),
    pgColumn,
    sql: {
      rowState: `SELECT max(col_version) FILTER (WHERE col = 0)::text, count(*)::int FROM ${m} WHERE pk = $1`,
      cell: `SELECT col_version::text FROM ${m} WHERE pk = $1 AND col = $2`,
      setCell: `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (pk, col) DO UPDATE SET col_version = EXCLUDED.col_version, db_version = EXCLUDED.db_version,
        seq = EXCLUDED.seq, site = EXCLUDED.site`,
      resetCells: `UPDATE ${m} SET col_version = 0 WHERE pk = $1 AND col <> 0`,
      dropCells: `DELETE FROM ${m} WHERE pk = $1 AND col <> 0`,
      restamp: `UPDATE ${m} SET col_version = greatest(col_version, $2::int8) + 1, db_version = $3::int8, seq = 0, site = 0 WHERE pk = $1 AND col = ANY($4::int[])`,
      deleteRow: `DELETE FROM ${t} WHERE ${where} RETURNING 1`,
      insertPkOnly: `INSERT INTO ${t} (${pkNames.join(', ')}) VALUES (${pkVals}) ON CONFLICT DO NOTHING`,
      selectRow: `SELECT ${columns.length ? columns.map((c) => readExpr(col(c.name), quoteIdent(c.name))).join(', ') : '1'} FROM ${t} WHERE ${where}`,
    },
    selectColumn(name) {
      return `SELECT ${readExpr(col(name), quoteIdent(name))} FROM ${t} WHERE ${where}`;
    },
    upsert(cols) {
      const key = cols.join('\u0000');
      let s = upserts.get(key);
      if (s === undefined) {
        const q = cols.map(quoteIdent);
        const vals = cols.map((c, i) => writeExpr(col(c), `$${np + i + 1}`));
        s = `INSERT INTO ${t} (${[...pkNames, ...q].join(', ')}) VALUES (${pkVals}, ${vals.join(', ')})
          ON CONFLICT (${pkNames.join(', ')}) DO UPDATE SET ${q.map((x) => `${x} = EXCLUDED.${x}`).join(', ')}`;
        upserts.set(key, s);
      }
      return s;
    },
    pkParams(values) {
      return values.map((v) => toParam(v));
    },
  };
}
