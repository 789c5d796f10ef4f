/**
 * DDL of the PostgreSQL engine: metadata schema, primary-key encoders (§P4, byte-identical
 * to `encodePk`) and the PL/pgSQL change-tracking triggers (§P5).
 *
 * Layout: the protocol's own model, one clock row per cell (`"<t>__crdt"`: pk bytea, col int,
 * col_version, db_version, seq, site; col 0 = the sentinel holding the causal length). Value
 * columns have stable integer ids (`columns`), as in the SQLite engine.
 */
import type { ValueColumn } from '../../engine/table-context.ts';
import { quoteIdent, quoteLiteral } from './conn.ts';
import type { PgColumn, PgTableSchema } from './introspect.ts';

/** The NOTIFY channel of writes made outside merges (`LISTEN "<meta>:changes"`; payload: the table). */
export const changesChannel = (meta: string): string => `${meta}:changes`;

/** Transaction-local setting that silences the triggers while a merge writes base tables. */
export const APPLYING_SETTING = 'offsync.applying';

export const metaTable = (meta: string, table: string): string => `${quoteIdent(meta)}.${quoteIdent(`${table}__crdt`)}`;
const trackFn = (meta: string, table: string): string => `${quoteIdent(meta)}.${quoteIdent(`${table}__track`)}`;
const gosFn = (meta: string, table: string): string => `${quoteIdent(meta)}.${quoteIdent(`${table}__gos`)}`;
const triggerName = (meta: string, kind: string): string => quoteIdent(`${meta}_${kind}`);

/** Shared metadata and helper functions (idempotent). */
export function baseMetadataSql(meta: string): string {
  const s = quoteIdent(meta);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.clock (
  id int PRIMARY KEY CHECK (id = 1), v bigint NOT NULL, txid bigint, seq bigint NOT NULL DEFAULT 0);
INSERT INTO ${s}.clock (id, v) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ${s}.sites (id bigint PRIMARY KEY, site_id bytea NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ${s}.tables (tbl text PRIMARY KEY, algo text NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.columns (tbl text NOT NULL, name text NOT NULL, id int NOT NULL, PRIMARY KEY (tbl, name));
CREATE TABLE IF NOT EXISTS ${s}.schema_versions (hash bigint PRIMARY KEY, seq int NOT NULL, kind text NOT NULL);

-- Reserves n seqs of the current transaction's db_version: the first call of a transaction takes
-- v + 1 (Lamport), later calls reuse it. The row lock orders writers: versions commit in order.
CREATE OR REPLACE FUNCTION ${s}.tick(n int, OUT v bigint, OUT seq bigint) LANGUAGE sql AS $f$
  UPDATE ${s}.clock SET
    v = CASE WHEN txid = txid_current() THEN clock.v ELSE clock.v + 1 END,
    seq = CASE WHEN txid = txid_current() THEN clock.seq ELSE 0 END + n,
    txid = txid_current()
  WHERE id = 1 RETURNING v, seq - n
$f$;

-- BEFORE STATEMENT on every synced table: take the clock lock before the statement locks rows,
-- so tracked writers and merges (which lock the clock first) always lock in the same order.
-- Trigger functions run as their owner (SECURITY DEFINER, fixed search_path): a write by a role
-- without rights on this schema (Supabase's authenticated, an app user) is still tracked.
CREATE OR REPLACE FUNCTION ${s}.lock_clock() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF coalesce(current_setting('${APPLYING_SETTING}', true), '') <> '1' THEN
    PERFORM 1 FROM ${s}.clock WHERE id = 1 FOR UPDATE;
  END IF;
  RETURN NULL;
END $f$;

-- AFTER STATEMENT on every synced table: writes of other programs (psql, an ORM, Supabase) wake
-- the servers that LISTEN on '<meta>:changes' (one notification per table and transaction:
-- PostgreSQL folds identical ones). Merges are announced by the server that made them.
CREATE OR REPLACE FUNCTION ${s}.notify_changes() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF coalesce(current_setting('${APPLYING_SETTING}', true), '') <> '1' THEN
    PERFORM pg_notify(${quoteLiteral(changesChannel(meta))}, TG_TABLE_NAME);
  END IF;
  RETURN NULL;
END $f$;

-- TRUNCATE fires no row triggers: it would empty the table without a single tombstone, so devices
-- would keep every row. Refused with a clear message instead (BEFORE TRUNCATE on each synced table).
CREATE OR REPLACE FUNCTION ${s}.refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION 'TRUNCATE of synced table % is not tracked by OffSync', TG_TABLE_NAME
    USING ERRCODE = 'feature_not_supported',
          HINT = 'DELETE the rows instead (devices then receive the deletions), or stop syncing the table first';
END $f$;

-- B.3 header: type code + minimal unsigned big-endian width (>= 0.9 rules), then the magnitude.
CREATE OR REPLACE FUNCTION ${s}.enc_uint(code int, m bigint) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE b bytea := int8send(m); w int := 8;
BEGIN
  WHILE w > 1 AND get_byte(b, 8 - w) = 0 LOOP w := w - 1; END LOOP;
  RETURN set_byte('\\x00'::bytea, 0, code + 8 * w) || substring(b FROM 9 - w);
END $f$;
CREATE OR REPLACE FUNCTION ${s}.pk_int(x bigint) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF x IS NULL THEN RAISE EXCEPTION 'NULL primary key values are not allowed'; END IF;
  IF x = -9223372036854775808 THEN RETURN '\\x06'::bytea; END IF;
  IF x < 0 THEN RETURN ${s}.enc_uint(0, -x); END IF;
  RETURN ${s}.enc_uint(1, x);
END $f$;
CREATE OR REPLACE FUNCTION ${s}.pk_text(x text) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE b bytea;
BEGIN
  IF x IS NULL THEN RAISE EXCEPTION 'NULL primary key values are not allowed'; END IF;
  b := convert_to(x, 'UTF8');
  RETURN ${s}.enc_uint(3, length(b)) || b;
END $f$;
CREATE OR REPLACE FUNCTION ${s}.pk_bytea(x bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  IF x IS NULL THEN RAISE EXCEPTION 'NULL primary key values are not allowed'; END IF;
  RETURN ${s}.enc_uint(4, length(x)) || x;
END $f$;
`;
}

function pkPart(meta: string, col: PgColumn, row: string): string {
  const x = `${row}.${quoteIdent(col.name)}`;
  const s = quoteIdent(meta);
  if (col.cls === 'integer') return `${s}.pk_int(${x}::int8)`;
  if (col.cls === 'blob') return `${s}.pk_bytea(${x})`;
  return `${s}.pk_text(${x}::text)`;
}

/** The §P4 primary-key blob of row alias `row` (NEW, OLD or a table alias). */
export function pkExpr(meta: string, schema: PgTableSchema, row: string): string {
  const count = schema.pkColumns.length.toString(16).padStart(2, '0');
  return `('\\x${count}'::bytea || ${schema.pkColumns.map((k) => pkPart(meta, k, row)).join(' || ')})`;
}

export function metaTableSql(meta: string, table: string): string {
  const m = metaTable(meta, table);
  return `CREATE TABLE IF NOT EXISTS ${m} (
  pk bytea NOT NULL, col int NOT NULL, col_version bigint NOT NULL,
  db_version bigint NOT NULL, seq bigint NOT NULL, site bigint NOT NULL, PRIMARY KEY (pk, col));
CREATE INDEX IF NOT EXISTS ${quoteIdent(`${table}__crdt_v`)} ON ${m} (db_version, seq);`;
}

export interface TriggerInput {
  meta: string;
  nsp: string;
  schema: PgTableSchema;
  columns: readonly ValueColumn[];
  algorithm: 'cls' | 'gos';
}

/** CREATE FUNCTION / CREATE TRIGGER statements implementing the local-write rules (§P5) for one table. */
export function triggerSql({ meta, nsp, schema, columns, algorithm }: TriggerInput): string {
  const s = quoteIdent(meta);
  const m = metaTable(meta, schema.name);
  const t = `${quoteIdent(nsp)}.${quoteIdent(schema.name)}`;
  const n = columns.length;
  const upsert = `ON CONFLICT (pk, col) DO UPDATE SET col_version = EXCLUDED.col_version, db_version = EXCLUDED.db_version, seq = EXCLUDED.seq, site = 0`;
  // Insert, or the new key of a pk change: sentinel when metadata exists (or forced), then every
  // value column 1 if new, +1 otherwise, at seq = base + 1 + ordinal.
  const revive = (pk: string, force: boolean): string => `
    SELECT col_version INTO scl FROM ${m} WHERE pk = ${pk} AND col = 0;
    anyrow := scl IS NOT NULL OR EXISTS (SELECT 1 FROM ${m} WHERE pk = ${pk});
    SELECT * INTO k FROM ${s}.tick(${n + 1});
    IF anyrow OR ${force || n === 0 ? 'true' : 'false'} THEN
      INSERT INTO ${m} VALUES (${pk}, 0, CASE WHEN scl IS NULL THEN (CASE WHEN anyrow THEN 3 ELSE 1 END)
        WHEN scl % 2 = 0 THEN scl + 1 ELSE scl + 2 END, k.v, k.seq, 0) ${upsert};
    END IF;
    ${n === 0 ? '' : `INSERT INTO ${m} AS x VALUES ${columns.map((c) => `(${pk}, ${c.id}, 1, k.v, k.seq + ${1 + c.ord}, 0)`).join(', ')}
      ON CONFLICT (pk, col) DO UPDATE SET col_version = x.col_version + 1, db_version = EXCLUDED.db_version, seq = EXCLUDED.seq, site = 0;`}`;
  const tombstone = (pk: string): string => `
    SELECT col_version INTO scl FROM ${m} WHERE pk = ${pk} AND col = 0;
    SELECT * INTO k FROM ${s}.tick(1);
    INSERT INTO ${m} VALUES (${pk}, 0, CASE WHEN scl IS NULL THEN 2 WHEN scl % 2 = 1 THEN scl + 1 ELSE scl + 2 END, k.v, k.seq, 0) ${upsert};
    DELETE FROM ${m} WHERE pk = ${pk} AND col <> 0;`;
  const bumps = columns
    .map((c) => {
      const q = quoteIdent(c.name);
      return `
    IF NEW.${q} IS DISTINCT FROM OLD.${q} THEN
      SELECT * INTO k FROM ${s}.tick(1);
      INSERT INTO ${m} AS x VALUES (npk, ${c.id}, 1, k.v, k.seq, 0)
        ON CONFLICT (pk, col) DO UPDATE SET col_version = x.col_version + 1, db_version = EXCLUDED.db_version, seq = EXCLUDED.seq, site = 0;
    END IF;`;
    })
    .join('');
  const notApplying = `coalesce(current_setting('${APPLYING_SETTING}', true), '') <> '1'`;
  const out = [
    `CREATE OR REPLACE FUNCTION ${trackFn(meta, schema.name)}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE k record; npk bytea; opk bytea; scl bigint; anyrow boolean;
BEGIN
  IF NOT (${notApplying}) THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    npk := ${pkExpr(meta, schema, 'NEW')};${revive('npk', false)}
  ELSIF TG_OP = 'DELETE' THEN
    opk := ${pkExpr(meta, schema, 'OLD')};${tombstone('opk')}
  ELSE
    npk := ${pkExpr(meta, schema, 'NEW')};
    opk := ${pkExpr(meta, schema, 'OLD')};
    IF npk <> opk THEN${tombstone('opk')}${revive('npk', true)}
    END IF;${bumps}
  END IF;
  RETURN NULL;
END $f$;`,
    `CREATE TRIGGER ${triggerName(meta, 'track')} AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${trackFn(meta, schema.name)}();`,
    `CREATE TRIGGER ${triggerName(meta, 'lock')} BEFORE INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${s}.lock_clock();`,
    `CREATE TRIGGER ${triggerName(meta, 'truncate')} BEFORE TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${s}.refuse_truncate();`,
    `CREATE TRIGGER ${triggerName(meta, 'notify')} AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${s}.notify_changes();`,
  ];
  if (algorithm === 'gos') {
    out.push(`CREATE OR REPLACE FUNCTION ${gosFn(meta, schema.name)}() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF ${notApplying} THEN RAISE EXCEPTION '% operation is not allowed on table %', TG_OP, ${quoteLiteral(schema.name)}; END IF;
  -- A merge's write goes through: the new row for an UPDATE (OLD would silently undo it).
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $f$;`);
    out.push(`CREATE TRIGGER ${triggerName(meta, 'gos')} BEFORE UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${gosFn(meta, schema.name)}();`);
  }
  return out.join('\n');
}

export function dropTriggersSql(meta: string, nsp: string, table: string): string {
  const t = `${quoteIdent(nsp)}.${quoteIdent(table)}`;
  return `DROP TRIGGER IF EXISTS ${triggerName(meta, 'track')} ON ${t}; DROP TRIGGER IF EXISTS ${triggerName(meta, 'gos')} ON ${t};
DROP TRIGGER IF EXISTS ${triggerName(meta, 'lock')} ON ${t}; DROP TRIGGER IF EXISTS ${triggerName(meta, 'truncate')} ON ${t}; DROP TRIGGER IF EXISTS ${triggerName(meta, 'notify')} ON ${t};
DROP FUNCTION IF EXISTS ${trackFn(meta, table)}(); DROP FUNCTION IF EXISTS ${gosFn(meta, table)}();`;
}

/** Clocks for existing rows without metadata, as one new local version (init back-fill). */
export function backfillSql(meta: string, nsp: string, schema: PgTableSchema, columns: readonly ValueColumn[]): string {
  const m = metaTable(meta, schema.name);
  const w = columns.length + 2;
  // A pk-only row gets its sentinel (cl 1) instead of cells.
  const cells = columns.length === 0 ? `(VALUES (0, -1)) c(id, ord)` : `(VALUES ${columns.map((c) => `(${c.id}, ${c.ord})`).join(', ')}) c(id, ord)`;
  return `WITH src AS (SELECT ${pkExpr(meta, schema, 'r')} AS pk, row_number() OVER () AS n FROM ${quoteIdent(nsp)}.${quoteIdent(schema.name)} r),
  fresh AS (SELECT * FROM src WHERE NOT EXISTS (SELECT 1 FROM ${m} x WHERE x.pk = src.pk))
INSERT INTO ${m} (pk, col, col_version, db_version, seq, site)
SELECT f.pk, c.id, 1, $1, f.n * ${w} + 1 + c.ord, 0 FROM fresh f CROSS JOIN ${cells}`;
}
