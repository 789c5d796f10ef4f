/**
 * SQL text for the CRDT metadata and the change-tracking triggers (SQLite dialect).
 *
 * Everything a local write needs happens in plain SQL inside the triggers: no application
 * function is called per row, so rows written by any program (the sqlite3 shell, another
 * service) are tracked exactly like rows written through OffSync.
 *
 * Layout per synced table `t` (see docs/ARCHITECTURE.md):
 *   "t__crdt"(pk BLOB, col INTEGER, col_version, db_version, seq, site) — one row per
 *   (row, value column) plus at most one sentinel (col = 0) holding the causal length.
 */
import type { TableSchema } from '../schema/introspect.ts';

export const SENTINEL_COL = 0;

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteText(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

export const metaTableName = (table: string): string => `${table}__crdt`;

/** Base metadata shared by all synced tables of a database (idempotent). */
export const BASE_METADATA_SQL = `
CREATE TABLE IF NOT EXISTS offsync_settings (key TEXT PRIMARY KEY NOT NULL, value ANY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsync_clock (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  v INTEGER NOT NULL,
  applying INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO offsync_clock (id, v, applying) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS offsync_sites (id INTEGER PRIMARY KEY, site_id BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS offsync_tables (tbl TEXT PRIMARY KEY NOT NULL, algo TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsync_columns (
  tbl TEXT NOT NULL, name TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (tbl, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsync_schema_versions (hash INTEGER PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL);
`;

export function metaTableSql(table: string): string {
  const m = quoteIdent(metaTableName(table));
  return `
CREATE TABLE IF NOT EXISTS ${m} (
  pk BLOB NOT NULL, col INTEGER NOT NULL, col_version INTEGER NOT NULL,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (pk, col)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ${quoteIdent(`${metaTableName(table)}_v`)} ON ${m} (db_version, seq);`;
}

/** Number of bytes of the minimal unsigned big-endian width of non-negative integer `m`. */
function widthSql(m: string): string {
  return `(CASE WHEN ${m} < 256 THEN 1 WHEN ${m} < 65536 THEN 2 WHEN ${m} < 16777216 THEN 3 WHEN ${m} < 4294967296 THEN 4
    WHEN ${m} < 1099511627776 THEN 5 WHEN ${m} < 281474976710656 THEN 6 WHEN ${m} < 72057594037927936 THEN 7 ELSE 8 END)`;
}

/** Type byte + minimal-width magnitude as a BLOB (value encoding B.3, ≥ 0.9 rules). */
function headerSql(code: number, m: string): string {
  const w = widthSql(m);
  return `unhex(printf('%02X%0*X', ${code} + 8 * ${w}, 2 * ${w}, ${m}))`;
}

/** Encodes one SQL value expression as in B.3. REAL keys are refused (no portable bit access in SQL). */
function valueEncodeSql(x: string, table: string, inTrigger: boolean): string {
  const refuse = (msg: string): string => (inTrigger ? `RAISE(ABORT, ${quoteText(msg)})` : 'NULL');
  return `(CASE typeof(${x})
    WHEN 'text' THEN ${headerSql(3, `length(CAST(${x} AS BLOB))`)} || CAST(${x} AS BLOB)
    WHEN 'integer' THEN (CASE WHEN ${x} = -9223372036854775807 - 1 THEN x'06'
      WHEN ${x} >= 0 THEN ${headerSql(1, x)} ELSE ${headerSql(0, `(-${x})`)} END)
    WHEN 'blob' THEN ${headerSql(4, `length(${x})`)} || ${x}
    WHEN 'real' THEN ${refuse(`OffSync: REAL primary key values are not supported (table ${table})`)}
    ELSE ${refuse(`NULL primary key values are not allowed (table ${table})`)} END)`;
}

/**
 * SQL expression producing the primary-key blob (B.4) of `NEW` or `OLD` (or a table alias).
 * Inside a trigger a REAL or NULL key aborts the statement; elsewhere it yields NULL.
 */
export function pkBlobSql(schema: TableSchema, row: string, inTrigger = true): string {
  const count = schema.pkColumns.length.toString(16).padStart(2, '0');
  const parts = schema.pkColumns.map((c) => valueEncodeSql(`${row}.${quoteIdent(c.name)}`, schema.name, inTrigger));
  return `CAST(x'${count}' || ${parts.join(' || ')} AS BLOB)`;
}

/** Type-aware "did this cell change" (C.3): binary collation, and a change of storage class counts. */
function changedSql(col: string): string {
  const c = quoteIdent(col);
  return `(NEW.${c} IS NOT OLD.${c} COLLATE BINARY OR typeof(NEW.${c}) <> typeof(OLD.${c}))`;
}

function pkSameSql(schema: TableSchema): string {
  return schema.pkColumns
    .map((k) => {
      const c = quoteIdent(k.name);
      return `(NEW.${c} IS OLD.${c} COLLATE BINARY AND typeof(NEW.${c}) = typeof(OLD.${c}))`;
    })
    .join(' AND ');
}

export const triggerNames = (table: string): string[] =>
  ['ins', 'upd', 'updpk', 'del', 'gos_upd', 'gos_del'].map((k) => `offsync_${k}_${table}`);

export interface TriggerInput {
  schema: TableSchema;
  /** Stable column ids of the value columns, by name. */
  columnIds: ReadonlyMap<string, number>;
  algorithm: 'cls' | 'gos';
}

const NOT_APPLYING = '(SELECT applying FROM offsync_clock WHERE id = 1) = 0';
const BUMP_CLOCK = 'UPDATE offsync_clock SET v = v + 1 WHERE id = 1;';

/** CREATE TRIGGER statements implementing the local-write rules of C.3. */
export function triggerSql({ schema, columnIds, algorithm }: TriggerInput): string {
  const t = quoteIdent(schema.name);
  const m = quoteIdent(metaTableName(schema.name));
  const [ins, upd, updpk, del, gosUpd, gosDel] = triggerNames(schema.name).map(quoteIdent);
  const newPk = pkBlobSql(schema, 'NEW');
  const oldPk = pkBlobSql(schema, 'OLD');
  const cols = schema.valueColumns.map((c) => ({ name: c.name, id: columnIds.get(c.name) ?? 0 }));
  const pkOnly = cols.length === 0;
  const upsertTail = `ON CONFLICT (pk, col) DO UPDATE SET col_version = col_version + 1,
      db_version = excluded.db_version, seq = excluded.seq, site = 0`;
  const bumpAlive = `col_version + CASE col_version % 2 WHEN 0 THEN 1 ELSE 2 END`;
  const bumpDead = `col_version + CASE col_version % 2 WHEN 1 THEN 1 ELSE 2 END`;
  const colRows = (seqBase: number, cond?: (c: string) => string): string =>
    cols.map((c, i) => `SELECT ${c.id} AS col, ${seqBase + i} AS seq${cond ? ` WHERE ${cond(c.name)}` : ''}`).join(' UNION ALL ');
  const writeCells = (pk: string, seqBase: number, cond?: (c: string) => string): string =>
    pkOnly
      ? ''
      : `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site)
    SELECT ${pk}, x.col, 1, k.v, x.seq, 0 FROM offsync_clock k, (${colRows(seqBase, cond)}) x WHERE k.id = 1
    ${upsertTail};`;
  const tombstone = (pk: string): string => `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site)
    SELECT ${pk}, 0, 2, k.v, 0, 0 FROM offsync_clock k WHERE k.id = 1
    ON CONFLICT (pk, col) DO UPDATE SET col_version = ${bumpDead}, db_version = excluded.db_version, seq = 0, site = 0;`;
  const revive = (pk: string, seq: number, always: boolean): string => `INSERT INTO ${m} (pk, col, col_version, db_version, seq, site)
    SELECT ${pk}, 0, CASE WHEN EXISTS (SELECT 1 FROM ${m} WHERE pk = ${pk}) THEN 3 ELSE 1 END, k.v, ${seq}, 0
    FROM offsync_clock k WHERE k.id = 1${always ? '' : ` AND EXISTS (SELECT 1 FROM ${m} WHERE pk = ${pk})`}
    ON CONFLICT (pk, col) DO UPDATE SET col_version = ${bumpAlive}, db_version = excluded.db_version, seq = ${seq}, site = 0;`;

  const out: string[] = [];
  out.push(`CREATE TRIGGER IF NOT EXISTS ${ins} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING} BEGIN
  ${BUMP_CLOCK}
  ${revive(newPk, 0, pkOnly)}
  ${writeCells(newPk, 1)}
END;`);
  if (algorithm === 'gos') {
    out.push(`CREATE TRIGGER IF NOT EXISTS ${gosUpd} BEFORE UPDATE ON ${t} WHEN ${NOT_APPLYING} BEGIN
  SELECT RAISE(ABORT, ${quoteText(`UPDATE operation is not allowed on table ${schema.name}`)});
END;`);
    out.push(`CREATE TRIGGER IF NOT EXISTS ${gosDel} BEFORE DELETE ON ${t} WHEN ${NOT_APPLYING} BEGIN
  SELECT RAISE(ABORT, ${quoteText(`DELETE operation is not allowed on table ${schema.name}`)});
END;`);
    return out.join('\n');
  }
  const same = pkSameSql(schema);
  if (!pkOnly) {
    out.push(`CREATE TRIGGER IF NOT EXISTS ${upd} AFTER UPDATE ON ${t}
WHEN ${NOT_APPLYING} AND ${same} AND (${cols.map((c) => changedSql(c.name)).join(' OR ')}) BEGIN
  ${BUMP_CLOCK}
  ${writeCells(newPk, 1, changedSql)}
END;`);
  }
  const bumpChanged = pkOnly
    ? ''
    : `UPDATE ${m} SET col_version = col_version + 1 WHERE pk = ${newPk} AND col IN (${cols
        .map((c) => `SELECT ${c.id} WHERE ${changedSql(c.name)}`)
        .join(' UNION ALL ')});`;
  out.push(`CREATE TRIGGER IF NOT EXISTS ${updpk} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} AND NOT (${same}) BEGIN
  ${BUMP_CLOCK}
  ${tombstone(oldPk)}
  ${revive(newPk, 1, true)}
  ${writeCells(newPk, 2)}
  DELETE FROM ${m} WHERE pk = ${oldPk} AND col <> 0;
  ${bumpChanged}
END;`);
  out.push(`CREATE TRIGGER IF NOT EXISTS ${del} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING} BEGIN
  ${BUMP_CLOCK}
  ${tombstone(oldPk)}
  DELETE FROM ${m} WHERE pk = ${oldPk} AND col <> 0;
END;`);
  return out.join('\n');
}

export function dropTriggersSql(table: string): string {
  return triggerNames(table)
    .map((n) => `DROP TRIGGER IF EXISTS ${quoteIdent(n)};`)
    .join('\n');
}
