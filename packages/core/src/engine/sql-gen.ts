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
CREATE TABLE IF NOT EXISTS offsync_tombstones (
  tbl TEXT NOT NULL, pk BLOB NOT NULL, vals TEXT, audience TEXT, PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsync_prior (
  tbl TEXT NOT NULL, pk BLOB NOT NULL, db_version INTEGER NOT NULL, vals TEXT NOT NULL,
  PRIMARY KEY (tbl, pk, db_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsync_evictions (
  audience TEXT NOT NULL, tbl TEXT NOT NULL, pk BLOB NOT NULL, cl INTEGER NOT NULL, db_version INTEGER NOT NULL,
  PRIMARY KEY (audience, tbl, pk)
) WITHOUT ROWID;
`;

/**
 * `offsync_settings` key that makes the delete triggers keep a deleted row's last values in
 * `offsync_tombstones` (central databases under row-level security: a deletion is only sent to
 * users whose SELECT policy allowed the row's last values — docs/ARCHITECTURE.md "RLS model").
 */
export const TOMBSTONE_VALUES_SETTING = 'tombstone_values';

/**
 * The last values of a row as stored in `offsync_tombstones.vals`: a JSON array of
 * `[typeof, value]` pairs in `columns` order, BLOBs as hex (JSON cannot hold BLOBs).
 */
export function tombstoneValuesSql(columns: readonly string[], alias: string): string {
  if (columns.length === 0) return "'[]'";
  const pairs = columns.map((c) => {
    const x = `${alias}.${quoteIdent(c)}`;
    return `typeof(${x}), CASE typeof(${x}) WHEN 'blob' THEN hex(${x}) WHEN 'integer' THEN CAST(${x} AS TEXT) ELSE ${x} END`;
  });
  return `json_array(${pairs.join(', ')})`;
}

export const rowsTableName = (table: string): string => `${table}__crdt_rows`;
export const cellsTableName = (table: string): string => `${table}__crdt_cells`;

/**
 * Clock tables of one synced table.
 *
 * `<t>__crdt_rows`: one record per known row: causal length `cl`, whether a sentinel clock exists
 * (`sent`), and one clock (db_version, seq, site) shared by the sentinel and by the row's
 * *implicit* cells: every value column without an explicit cell has col_version `icv`
 * (NULL = no implicit cells), db_version, and seq + 1 + the column's ordinal. A local insert is
 * therefore ONE metadata row instead of one per column.
 * `<t>__crdt_cells`: explicit per-cell clocks (cells updated locally, or merged from peers).
 */
export function metaTableSql(table: string): string {
  const r = quoteIdent(rowsTableName(table));
  const c = quoteIdent(cellsTableName(table));
  return `
CREATE TABLE IF NOT EXISTS ${r} (
  pk BLOB PRIMARY KEY NOT NULL, cl INTEGER NOT NULL, sent INTEGER NOT NULL, icv INTEGER,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ${quoteIdent(`${rowsTableName(table)}_v`)} ON ${r} (db_version, seq);
CREATE TABLE IF NOT EXISTS ${c} (
  pk BLOB NOT NULL, col INTEGER NOT NULL, col_version INTEGER NOT NULL,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL,
  PRIMARY KEY (pk, col)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ${quoteIdent(`${cellsTableName(table)}_v`)} ON ${c} (db_version, seq);`;
}

export function dropMetaTablesSql(table: string): string {
  return `DROP TABLE IF EXISTS ${quoteIdent(rowsTableName(table))}; DROP TABLE IF EXISTS ${quoteIdent(cellsTableName(table))};`;
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');

/**
 * Type byte + minimal-width big-endian magnitude (value encoding §P4, ≥ 0.9 rules) for a
 * non-negative integer expression `m`, as one CASE over the widths (the common 1-byte case first).
 */
function headerSql(code: number, m: string, maxWidth: number): string {
  const branches: string[] = [];
  for (let w = 1; w <= maxWidth; w++) {
    const lit = `'${hex2(code + 8 * w)}%0${2 * w}X'`;
    branches.push(w === maxWidth ? `ELSE unhex(printf(${lit}, ${m}))` : `WHEN ${m} < ${2n ** BigInt(8 * w)} THEN unhex(printf(${lit}, ${m}))`);
  }
  return `(CASE ${branches.join(' ')} END)`;
}

/** Encodes one SQL value expression as in §P4. REAL keys are refused (no portable bit access in SQL). */
function valueEncodeSql(x: string, table: string, inTrigger: boolean): string {
  const refuse = (msg: string): string => (inTrigger ? `RAISE(ABORT, ${quoteText(msg)})` : 'NULL');
  return `(CASE typeof(${x})
    WHEN 'text' THEN ${headerSql(3, `octet_length(${x})`, 4)} || CAST(${x} AS BLOB)
    WHEN 'integer' THEN (CASE WHEN ${x} >= 0 THEN ${headerSql(1, x, 8)}
      WHEN ${x} = -9223372036854775807 - 1 THEN x'06' ELSE ${headerSql(0, `(-${x})`, 8)} END)
    WHEN 'blob' THEN ${headerSql(4, `length(${x})`, 4)} || ${x}
    WHEN 'real' THEN ${refuse(`OffSync: REAL primary key values are not supported (table ${table})`)}
    ELSE ${refuse(`NULL primary key values are not allowed (table ${table})`)} END)`;
}

/**
 * SQL expression producing the primary-key blob (§P4) of `NEW` or `OLD` (or a table alias).
 * Inside a trigger a REAL or NULL key aborts the statement; elsewhere it yields NULL.
 */
export function pkBlobSql(schema: TableSchema, row: string, inTrigger = true): string {
  const count = schema.pkColumns.length.toString(16).padStart(2, '0');
  const parts = schema.pkColumns.map((c) => valueEncodeSql(`${row}.${quoteIdent(c.name)}`, schema.name, inTrigger));
  return `CAST(x'${count}' || ${parts.join(' || ')} AS BLOB)`;
}

/** Type-aware "did this cell change" (§P5): binary collation, and a change of storage class counts. */
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
  /** Row filter (docs/PROTOCOL.md "Row filters"): only writes of rows it holds for are recorded. Validated by the engine. */
  filter?: string | undefined;
}

/**
 * A row filter `expr` (an SQL expression over the table's bare column names) evaluated on the
 * trigger row `alias` (NEW or OLD): the columns are exposed under their own names by a one-row
 * derived table, so the expression is used as written. `alias` null: placeholder NULLs (the
 * engine compiles that form to validate a filter).
 */
export function rowFilterSql(schema: TableSchema, alias: string | null, expr: string): string {
  const cols = schema.columns.map((c) => `${alias === null ? 'NULL' : `${alias}.${quoteIdent(c.name)}`} AS ${quoteIdent(c.name)}`).join(', ');
  return `EXISTS (SELECT 1 FROM (SELECT ${cols}) WHERE (\n${expr}\n))`;
}

const NOT_APPLYING = '(SELECT applying FROM offsync_clock WHERE id = 1) = 0';
const BUMP_CLOCK = 'UPDATE offsync_clock SET v = v + 1 WHERE id = 1;';

/** Value columns ordered by stable id: the ordinal gives an implicit cell its seq offset. */
export function orderedColumns(columnIds: ReadonlyMap<string, number>, names: readonly string[]): { name: string; id: number; ord: number }[] {
  return names
    .map((name) => ({ name, id: columnIds.get(name) ?? 0 }))
    .filter((c) => c.id > 0)
    .sort((a, b) => a.id - b.id)
    .map((c, ord) => ({ ...c, ord }));
}

/** CREATE TRIGGER statements implementing the local-write rules of §P5 (see metaTableSql for the layout). */
export function triggerSql({ schema, columnIds, algorithm, filter }: TriggerInput): string {
  const t = quoteIdent(schema.name);
  const r = quoteIdent(rowsTableName(schema.name));
  const c = quoteIdent(cellsTableName(schema.name));
  const [ins, upd, updpk, del, gosUpd, gosDel] = triggerNames(schema.name).map(quoteIdent);
  const newPk = pkBlobSql(schema, 'NEW');
  const oldPk = pkBlobSql(schema, 'OLD');
  const cols = orderedColumns(columnIds, schema.valueColumns.map((v) => v.name));
  const pkOnly = cols.length === 0;
  const clock = `(SELECT v FROM offsync_clock WHERE id = 1)`;
  const when = (alias: string): string => (filter === undefined ? '' : ` AND ${rowFilterSql(schema, alias, filter)}`);

  // Insert (or re-insert over a tombstone): one row record; implicit cells at col_version 1.
  // Existing explicit cells (a row alive in metadata but missing from the table) are bumped.
  const revive = (pk: string, forceSentinel: boolean): string => `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
    SELECT p.pk, 1 + 2 * p.e, ${forceSentinel || pkOnly ? 1 : 'p.e'}, ${pkOnly ? 'NULL' : 1}, k.v, 0, 0
    FROM (SELECT q.pk, EXISTS (SELECT 1 FROM ${c} WHERE pk = q.pk) AS e FROM (SELECT ${pk} AS pk) q LIMIT 1) p,
      offsync_clock k WHERE k.id = 1
    ON CONFLICT (pk) DO UPDATE SET cl = cl + CASE cl % 2 WHEN 0 THEN 1 ELSE 2 END, sent = 1,
      icv = ${pkOnly ? 'NULL' : 'CASE WHEN icv IS NULL OR cl % 2 = 0 THEN 1 ELSE icv + 1 END'},
      db_version = excluded.db_version, seq = 0, site = 0;
  ${pkOnly ? '' : `UPDATE ${c} SET col_version = col_version + 1, db_version = ${clock}, seq = 0, site = 0
    WHERE pk = (SELECT pk FROM ${r} WHERE pk = ${pk} AND cl % 2 = 1 AND cl > 1);`}`;
  const tombstone = (pk: string): string => `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
    SELECT ${pk}, 2, 1, NULL, k.v, 0, 0 FROM offsync_clock k WHERE k.id = 1
    ON CONFLICT (pk) DO UPDATE SET cl = cl + CASE cl % 2 WHEN 1 THEN 1 ELSE 2 END, sent = 1, icv = NULL,
      db_version = excluded.db_version, seq = 0, site = 0;
  ${pkOnly ? '' : `DELETE FROM ${c} WHERE pk = ${pk};`}`;
  // A local UPDATE of one cell: explicit clock = (explicit or implicit col_version) + 1.
  const bumpCell = (col: { name: string; id: number; ord: number }, pk: string): string => `INSERT INTO ${c} (pk, col, col_version, db_version, seq, site)
    SELECT p.pk, ${col.id}, COALESCE((SELECT icv FROM ${r} WHERE pk = p.pk AND cl % 2 = 1), 0) + 1, k.v, ${col.ord + 1}, 0
    FROM (SELECT ${pk} AS pk WHERE ${changedSql(col.name)}) p, offsync_clock k WHERE k.id = 1
    ON CONFLICT (pk, col) DO UPDATE SET col_version = col_version + 1, db_version = excluded.db_version, seq = excluded.seq, site = 0;`;

  const out: string[] = [];
  out.push(`CREATE TRIGGER IF NOT EXISTS ${ins} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING}${when('NEW')} BEGIN
  ${BUMP_CLOCK}
  ${revive(newPk, false)}
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
WHEN ${NOT_APPLYING} AND ${same} AND (${cols.map((col) => changedSql(col.name)).join(' OR ')})${when('NEW')} BEGIN
  ${BUMP_CLOCK}
  ${cols.map((col) => bumpCell(col, newPk)).join('\n  ')}
END;`);
  }
  // Primary-key change: tombstone the old key, the new key gets a sentinel and all cells at
  // col_version 1 (the "moved" cells), then the columns changed by the same UPDATE are bumped.
  const allCols = schema.columns.map((x) => x.name);
  const keepLast = `INSERT OR REPLACE INTO offsync_tombstones (tbl, pk, vals, audience)
    SELECT ${quoteText(schema.name)}, ${oldPk}, ${tombstoneValuesSql(allCols, 'OLD')}, NULL
    WHERE EXISTS (SELECT 1 FROM offsync_settings WHERE key = '${TOMBSTONE_VALUES_SETTING}');`;
  out.push(`CREATE TRIGGER IF NOT EXISTS ${updpk} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} AND NOT (${same})${when('NEW')} BEGIN
  ${BUMP_CLOCK}
  ${tombstone(oldPk)}
  ${keepLast}
  ${revive(newPk, true)}
  ${cols.map((col) => bumpCell(col, newPk)).join('\n  ')}
END;`);
  out.push(`CREATE TRIGGER IF NOT EXISTS ${del} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING}${when('OLD')} BEGIN
  ${BUMP_CLOCK}
  ${tombstone(oldPk)}
  ${keepLast}
END;`);
  return out.join('\n');
}

export function dropTriggersSql(table: string): string {
  return triggerNames(table)
    .map((n) => `DROP TRIGGER IF EXISTS ${quoteIdent(n)};`)
    .join('\n');
}
