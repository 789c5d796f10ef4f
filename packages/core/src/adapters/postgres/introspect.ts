/**
 * PostgreSQL table introspection (pg_catalog) mapped onto core's `TableSchema`, so the §P6 rules
 * and messages of `schema/introspect.ts` apply unchanged, plus the value-class mapping.
 *
 * | PostgreSQL type                         | SqlValue (wire class) | schema-hash affinity |
 * |-----------------------------------------|-----------------------|----------------------|
 * | int2, int4, int8 (serial, bigserial)    | bigint (INTEGER)      | integer              |
 * | bool                                    | bigint 0/1 (INTEGER)  | text                 |
 * | float4, float8                          | number (REAL)         | real                 |
 * | text, varchar, bpchar                   | string (TEXT)         | text                 |
 * | bytea                                   | Uint8Array (BLOB)     | blob                 |
 * | numeric                                 | string (TEXT, `::text`)| numeric             |
 * | date, time(tz), timestamp               | string (TEXT, ISO 8601 via to_json) | text   |
 * | timestamptz                             | string (TEXT, `YYYY-MM-DDTHH:MI:SS.ffffffZ`, UTC) | text |
 * | anything else (uuid, json, …)           | string (TEXT, `::text`) | text               |
 */
import type { ColumnInfo, SchemaIssue, TableSchema } from '../../schema/introspect.ts';
import { schemaIssues } from '../../schema/introspect.ts';
import type { PgConn } from './conn.ts';
import { quoteIdent } from './conn.ts';

export type ValueClass = 'integer' | 'bool' | 'real' | 'text' | 'iso' | 'blob';

export interface PgColumn extends ColumnInfo {
  /** pg_type.typname, e.g. int4. */
  typname: string;
  /** format_type(): the cast target for writes. */
  sqlType: string;
  cls: ValueClass;
  affinity: 'integer' | 'text' | 'blob' | 'real' | 'numeric';
}

export interface PgTableSchema extends TableSchema {
  columns: PgColumn[];
  pkColumns: PgColumn[];
  valueColumns: PgColumn[];
}

const INT = new Set(['int2', 'int4', 'int8']);
const TEXT = new Set(['text', 'varchar', 'bpchar']);
const ISO = new Set(['date', 'time', 'timetz', 'timestamp', 'timestamptz']);
/** Key types whose encoding is exact: INTEGER, TEXT, BLOB (uuid as its canonical text). */
const PK_TYPES = new Set([...INT, ...TEXT, 'bytea', 'uuid']);

/**
 * The value class and schema-hash affinity of a PostgreSQL type. `formatted` is format_type(): a
 * numeric with a precision (`numeric(10,2)`) hashes as `text`, as SQLite does for `NUMERIC(10,2)`
 * (§P6: only the bare NUMERIC / DECIMAL words are `numeric`).
 */
export function classify(typname: string, formatted: string = typname): { cls: ValueClass; affinity: PgColumn['affinity'] } {
  if (INT.has(typname)) return { cls: 'integer', affinity: 'integer' };
  if (typname === 'bool') return { cls: 'bool', affinity: 'text' };
  if (typname === 'float4' || typname === 'float8') return { cls: 'real', affinity: 'real' };
  if (typname === 'bytea') return { cls: 'blob', affinity: 'blob' };
  if (typname === 'numeric') return { cls: 'text', affinity: formatted === 'numeric' ? 'numeric' : 'text' };
  if (ISO.has(typname)) return { cls: 'iso', affinity: 'text' };
  return { cls: 'text', affinity: 'text' };
}

/** SQL expression reading column `x` as its value class (see the table above). */
export function readExpr(col: PgColumn, x: string): string {
  switch (col.cls) {
    case 'integer':
      return `(${x})::int8`;
    case 'bool':
      return `(${x})::int4::int8`;
    case 'real':
      return `(${x})::float8`;
    case 'blob':
      return x;
    case 'iso':
      // timestamptz in UTC with a Z, whatever the session TimeZone; others via to_json (ISO 8601).
      return col.typname === 'timestamptz' ? `to_char((${x}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')` : `(to_json(${x}) #>> '{}')`;
    default:
      return `(${x})::text`;
  }
}

/** SQL expression turning parameter `$n` into the column's type. */
export function writeExpr(col: PgColumn, param: string): string {
  if (col.cls === 'bool') return `((${param})::int8 <> 0)`;
  if (col.cls === 'blob') return `(${param})::bytea`;
  return `(${param})::${col.sqlType}`;
}

/** Converts a value read with {@link readExpr} to a SqlValue. */
export function fromPg(col: PgColumn, v: unknown): null | bigint | number | string | Uint8Array {
  if (v === null || v === undefined) return null;
  switch (col.cls) {
    case 'integer':
    case 'bool':
      return BigInt(String(v));
    case 'real':
      return Number(v);
    case 'blob': {
      const b = v as Uint8Array;
      return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    default:
      return String(v);
  }
}

/** Reads `table` (case-insensitive, exact name preferred) from `nsp`, or undefined. */
export async function readPgTableSchema(c: PgConn, nsp: string, table: string): Promise<PgTableSchema | undefined> {
  const found = await c.q(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND lower(c.relname) = lower($2) AND c.relkind IN ('r', 'p')
     ORDER BY (c.relname = $2) DESC LIMIT 1`,
    [nsp, table],
  );
  const name = found[0]?.[0];
  if (typeof name !== 'string') return undefined;
  const rows = await c.q(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       COALESCE((SELECT k.ord FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(att, ord) WHERE k.att = a.attnum), 0)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [nsp, name],
  );
  const columns: PgColumn[] = rows.map((r, cid) => {
    const typname = String(r[2]);
    return {
      cid,
      name: String(r[0]),
      type: String(r[1]),
      notNull: r[3] === true,
      defaultValue: r[4] == null ? null : String(r[4]),
      pk: Number(r[5]),
      typname,
      sqlType: String(r[1]),
      ...classify(typname, String(r[1])),
    };
  });
  const pkColumns = columns.filter((x) => x.pk > 0).sort((a, b) => a.pk - b.pk);
  const valueColumns = columns.filter((x) => x.pk === 0);
  return { name, columns, pkColumns, valueColumns, createSql: '' };
}

/** Core's §P6 issues plus the key types this engine can encode exactly. */
export function pgSchemaIssues(schema: PgTableSchema | undefined, table: string, flags = 0): SchemaIssue[] {
  const issues = schemaIssues(schema, table, flags);
  for (const k of schema?.pkColumns ?? []) {
    if (!PK_TYPES.has(k.typname)) {
      issues.push({
        rule: 'PG-pk-type',
        message: `OffSync: primary key column ${k.name} of table ${schema?.name ?? table} has type ${k.sqlType}; use text, varchar, char, uuid, int2/int4/int8 or bytea`,
      });
    }
  }
  return issues;
}

/** `<nsp>.<table>` quoted. */
export const qualified = (nsp: string, table: string): string => `${quoteIdent(nsp)}.${quoteIdent(table)}`;
