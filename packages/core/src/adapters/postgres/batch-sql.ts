/**
 * Set-based statements of the PostgreSQL merge and feed (issue 10 "batching"): one statement for
 * a chunk of rows of one table, the rows passed as parallel arrays and joined with `unnest`. Key
 * and value parameters travel as text[] (cast by the column's write expression, as the per-row
 * statements cast `$n`), blob columns as bytea[]; `u.i` is the row's index in the chunk.
 */
import { metaTable } from './ddl.ts';
import { quoteIdent } from './conn.ts';
import type { PgTableContext } from './context.ts';
import { readExpr, writeExpr } from './introspect.ts';
import type { PgColumn } from './introspect.ts';

export interface PgBatchSql {
  /** ($1 int[] indexes, key arrays…) → [i, value columns in `columns` order…] for the rows that exist. */
  readonly selectRows: string;
  /** (indexes, key arrays…) → [i] per deleted row. */
  readonly deleteRows: string;
  /** (key arrays…) */
  readonly insertPkOnly: string;
  /** (indexes, key arrays…) → [i] per existing row. */
  readonly existing: string;
  /** (key arrays…, value arrays of `cols`…) */
  upsert(cols: readonly string[]): string;
  /** (indexes, key arrays…, value arrays of `cols`…) → [i] per updated row. */
  update(cols: readonly string[]): string;
  /** One row: (key values…, values of `cols`…) → one row when updated. */
  updateOne(cols: readonly string[]): string;
  /** (pk bytea[]) → [pk, col, col_version, db_version, seq, site] of every clock row of these keys. */
  readonly readCells: string;
  /** (pk bytea[], col int[]) */
  readonly deleteCells: string;
  /** (pk bytea[], col int[], col_version int8[], db_version int8[], seq int8[], site int8[]) */
  readonly upsertCells: string;
  /** (pk bytea[], col int[], above int8[], db_version int8[]): compensation, as `sql.restamp` per cell. */
  readonly restampCells: string;
}

const arrayType = (c: PgColumn): string => (c.cls === 'blob' ? 'bytea[]' : 'text[]');

const cache = new WeakMap<PgTableContext, PgBatchSql>();

export function batchSql(meta: string, nsp: string, t: PgTableContext): PgBatchSql {
  const hit = cache.get(t);
  if (hit !== undefined) return hit;
  const m = metaTable(meta, t.name);
  const target = `${quoteIdent(nsp)}.${quoteIdent(t.name)}`;
  const keys = t.schema.pkColumns;
  const pkNames = keys.map((k) => quoteIdent(k.name));
  const keyAlias = keys.map((_, i) => `k${i}`);
  const keyCasts = keys.map((k, i) => writeExpr(k, `u.k${i}`));
  const keyMatch = keys.map((k, i) => `t.${quoteIdent(k.name)} = ${keyCasts[i] as string}`).join(' AND ');
  const keyArrays = (from: number): string => keys.map((k, i) => `$${from + i}::${arrayType(k)}`).join(', ');
  const withIndex = `unnest($1::int[], ${keyArrays(2)}) AS u(i, ${keyAlias.join(', ')})`;
  const cols = (name: string): PgColumn => t.pgColumn.get(name) as PgColumn;
  const upserts = new Map<string, string>();
  const memo = (key: string, make: () => string): string => {
    let hit = upserts.get(key);
    if (hit === undefined) upserts.set(key, (hit = make()));
    return hit;
  };
  const where = keys.map((k, i) => `${quoteIdent(k.name)} = ${writeExpr(k, `$${i + 1}`)}`).join(' AND ');
  const out: PgBatchSql = {
    selectRows: `SELECT u.i${t.columns.map((c) => `, ${readExpr(cols(c.name), `t.${quoteIdent(c.name)}`)}`).join('')} FROM ${withIndex} JOIN ${target} t ON ${keyMatch}`,
    existing: `SELECT u.i FROM ${withIndex} JOIN ${target} t ON ${keyMatch}`,
    update(names) {
      return memo(`u\u0000${names.join('\u0000')}`, () => {
        const sets = names.map((n, i) => `${quoteIdent(n)} = ${writeExpr(cols(n), `u.v${i}`)}`);
        const valArrays = names.map((n, i) => `$${keys.length + 2 + i}::${arrayType(cols(n))}`);
        return `UPDATE ${target} t SET ${sets.join(', ')} FROM unnest($1::int[], ${[keyArrays(2), ...valArrays].join(', ')}) AS u(i, ${[...keyAlias, ...names.map((_, i) => `v${i}`)].join(', ')})
          WHERE ${keyMatch} RETURNING u.i`;
      });
    },
    updateOne(names) {
      return memo(`1\u0000${names.join('\u0000')}`, () => {
        const sets = names.map((n, i) => `${quoteIdent(n)} = ${writeExpr(cols(n), `$${keys.length + 1 + i}`)}`);
        return `UPDATE ${target} SET ${sets.join(', ')} WHERE ${where} RETURNING 1`;
      });
    },
    deleteRows: `DELETE FROM ${target} t USING ${withIndex} WHERE ${keyMatch} RETURNING u.i`,
    insertPkOnly: `INSERT INTO ${target} (${pkNames.join(', ')}) SELECT ${keyCasts.join(', ')} FROM unnest(${keyArrays(1)}) AS u(${keyAlias.join(', ')}) ON CONFLICT DO NOTHING`,
    upsert(names) {
      const key = `i\u0000${names.join('\u0000')}`;
      let s = upserts.get(key);
      if (s === undefined) {
        const q = names.map(quoteIdent);
        const valAlias = names.map((_, i) => `v${i}`);
        const valArrays = names.map((n, i) => `$${keys.length + 1 + i}::${arrayType(cols(n))}`);
        const valCasts = names.map((n, i) => writeExpr(cols(n), `u.v${i}`));
        s = `INSERT INTO ${target} (${[...pkNames, ...q].join(', ')})
          SELECT ${[...keyCasts, ...valCasts].join(', ')} FROM unnest(${[keyArrays(1), ...valArrays].join(', ')}) AS u(${[...keyAlias, ...valAlias].join(', ')})
          ON CONFLICT (${pkNames.join(', ')}) DO UPDATE SET ${q.map((x) => `${x} = EXCLUDED.${x}`).join(', ')}`;
        upserts.set(key, s);
      }
      return s;
    },
    readCells: `SELECT pk, col, col_version::text, db_version::text, seq::text, site::text FROM ${m} WHERE pk = ANY($1::bytea[])`,
    deleteCells: `DELETE FROM ${m} x USING unnest($1::bytea[], $2::int[]) AS u(pk, col) WHERE x.pk = u.pk AND x.col = u.col`,
    upsertCells: `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site)
      SELECT * FROM unnest($1::bytea[], $2::int[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
      ON CONFLICT (pk, col) DO UPDATE SET col_version = EXCLUDED.col_version, db_version = EXCLUDED.db_version, seq = EXCLUDED.seq, site = EXCLUDED.site`,
    restampCells: `UPDATE ${m} x SET col_version = greatest(x.col_version, u.above) + 1, db_version = u.v, seq = 0, site = 0
      FROM unnest($1::bytea[], $2::int[], $3::int8[], $4::int8[]) AS u(pk, col, above, v) WHERE x.pk = u.pk AND x.col = u.col`,
  };
  cache.set(t, out);
  return out;
}

/** The key parameters of `rows` (each `t.pkParams`) as one array per key column. */
export function keyColumns(t: PgTableContext, rows: readonly (readonly unknown[])[]): unknown[][] {
  return t.schema.pkColumns.map((_, k) => rows.map((r) => r[k] ?? null));
}

/** Whether a parameter fits its column's array type: a blob (Buffer) only in a bytea column. */
export function fitsArray(c: PgColumn, param: unknown): boolean {
  return c.cls === 'blob' || !Buffer.isBuffer(param);
}
