/**
 * SQL text for the CRDT metadata and the change-tracking triggers (SQLite dialect).
 *
 * Everything a local write needs happens in plain SQL inside the triggers: no application
 * function is called per row, so rows written by any program (the sqlite3 shell, another
 * service) are tracked exactly like rows written through OffSync.
 *
 * Two steps (docs/ARCHITECTURE.md "Metadata layout"):
 *   1. the triggers append ONE row per tracked row change to the write log `offsync_write_log`
 *      (table, kind, changed-column mask, key values), in the writer's transaction;
 *   2. the engine folds the pending log set-based into the clock tables (`foldLogSql`) before
 *      anything reads or writes them (a feed, a merge, an alter, opening the file). The fold
 *      produces exactly the clocks the per-row rules of §P5 give, in log order: the log row with
 *      id i (ids restart at 1 after each fold) is local version `offsync_clock.v + i`.
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
CREATE TABLE IF NOT EXISTS offsync_write_log (
  id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op INTEGER NOT NULL, k BLOB, k2 BLOB, m TEXT
);
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
 * Clock tables of one synced table (docs/ARCHITECTURE.md "Metadata layout").
 *
 * `<t>__crdt_rows`: one record per known row, keyed by a local row id `rid` (the key blob is
 * stored once, in the record and its UNIQUE index): causal length `cl`, whether a sentinel clock
 * exists (`sent`), and one clock (db_version, seq, site) shared by the sentinel and by the row's
 * *implicit* cells: every value column without an explicit cell has col_version `icv`
 * (NULL = no implicit cells), db_version, and seq + 1 + the column's ordinal. A local insert is
 * therefore ONE metadata row instead of one per column.
 * `<t>__crdt_cells`: explicit per-cell clocks (cells updated locally, or merged from peers), keyed
 * by (rid, col). A row that has explicit cells but no record of its own (a cell merged or updated
 * before its row was known) has a *bare* record ({@link BARE_CL}): it only gives the cells a rid,
 * and every read treats it as no record. A record's rid never changes while it exists (records
 * are updated in place, never replaced).
 */
export function metaTableSql(table: string): string {
  const r = quoteIdent(rowsTableName(table));
  const c = quoteIdent(cellsTableName(table));
  return `
CREATE TABLE IF NOT EXISTS ${r} (
  rid INTEGER PRIMARY KEY, pk BLOB NOT NULL UNIQUE, cl INTEGER NOT NULL, sent INTEGER NOT NULL, icv INTEGER,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ${quoteIdent(`${rowsTableName(table)}_v`)} ON ${r} (db_version, seq);
CREATE TABLE IF NOT EXISTS ${c} (
  rid INTEGER NOT NULL, col INTEGER NOT NULL, col_version INTEGER NOT NULL,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL,
  PRIMARY KEY (rid, col)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ${quoteIdent(`${cellsTableName(table)}_v`)} ON ${c} (db_version, seq);`;
}

/**
 * The causal length of a *bare* row record (see {@link metaTableSql}): no record, only a rid for
 * explicit cells. Its db_version is {@link BARE_VERSION}, below every cursor, so the feed's rows
 * stream never meets it and the residual cells stream takes its cells (causal length 1).
 */
export const BARE_CL = 0;
export const BARE_VERSION = -1;

/** Columns and values of a bare record: `INSERT INTO <rows> ${BARE_RECORD_COLUMNS} SELECT ${bareRecordValues(key)}`. */
export const BARE_RECORD_COLUMNS = '(pk, cl, sent, icv, db_version, seq, site)';
export const bareRecordValues = (pk: string): string => `${pk}, ${BARE_CL}, 0, NULL, ${BARE_VERSION}, 0, 0`;

/**
 * Statements converting the clock tables of `table` from the layout before row ids (records
 * WITHOUT ROWID keyed by pk, cells keyed by (pk, col)) to {@link metaTableSql}'s, keeping every
 * clock: records get rids in key order, cells without a record get a bare one. Run in one
 * transaction (engine.ts `#upgradeLayout`).
 */
export function migrateMetaTablesSql(table: string): string {
  const r = quoteIdent(rowsTableName(table));
  const c = quoteIdent(cellsTableName(table));
  const nr = quoteIdent(`${rowsTableName(table)}_new`);
  const nc = quoteIdent(`${cellsTableName(table)}_new`);
  return `
CREATE TABLE ${nr} (
  rid INTEGER PRIMARY KEY, pk BLOB NOT NULL UNIQUE, cl INTEGER NOT NULL, sent INTEGER NOT NULL, icv INTEGER,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL
);
INSERT INTO ${nr} (pk, cl, sent, icv, db_version, seq, site) SELECT pk, cl, sent, icv, db_version, seq, site FROM ${r} ORDER BY pk;
INSERT INTO ${nr} ${BARE_RECORD_COLUMNS} SELECT ${bareRecordValues('x.pk')} FROM (SELECT DISTINCT pk FROM ${c}) x WHERE NOT EXISTS (SELECT 1 FROM ${r} WHERE pk = x.pk) ORDER BY x.pk;
CREATE TABLE ${nc} (
  rid INTEGER NOT NULL, col INTEGER NOT NULL, col_version INTEGER NOT NULL,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL,
  PRIMARY KEY (rid, col)
) WITHOUT ROWID;
INSERT INTO ${nc} (rid, col, col_version, db_version, seq, site) SELECT n.rid, x.col, x.col_version, x.db_version, x.seq, x.site FROM ${c} x JOIN ${nr} n ON n.pk = x.pk;
DROP TABLE ${c};
DROP TABLE ${r};
ALTER TABLE ${nr} RENAME TO ${r};
ALTER TABLE ${nc} RENAME TO ${c};
${metaTableSql(table)}`;
}

/** Drops the bare records (see {@link metaTableSql}) that have no cell left. */
export function dropBareSql(table: string): string {
  const r = quoteIdent(rowsTableName(table));
  return `DELETE FROM ${r} WHERE cl = ${BARE_CL} AND NOT EXISTS (SELECT 1 FROM ${quoteIdent(cellsTableName(table))} c WHERE c.rid = ${r}.rid);`;
}

export function dropMetaTablesSql(table: string): string {
  return `DROP TABLE IF EXISTS ${quoteIdent(rowsTableName(table))}; DROP TABLE IF EXISTS ${quoteIdent(cellsTableName(table))};`;
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');

/** Every byte value in order: `substr(BYTES, n + 1, 1)` is the byte n (0–255), cheaper than printf + unhex. */
const BYTES = `x'${Array.from({ length: 256 }, (_, i) => hex2(i)).join('')}'`;

/**
 * Type byte + minimal-width big-endian magnitude (value encoding §P4, ≥ 0.9 rules) for a
 * non-negative integer expression `m`, as one CASE over the widths (the common 1-byte case first,
 * its byte taken from {@link BYTES}).
 */
function headerSql(code: number, m: string, maxWidth: number): string {
  const branches: string[] = [];
  for (let w = 1; w <= maxWidth; w++) {
    const lit = `'${hex2(code + 8 * w)}%0${2 * w}X'`;
    const bytes = w === 1 ? `x'${hex2(code + 8)}' || substr(${BYTES}, ${m} + 1, 1)` : `unhex(printf(${lit}, ${m}))`;
    branches.push(w === maxWidth ? `ELSE ${bytes}` : `WHEN ${m} < ${2n ** BigInt(8 * w)} THEN ${bytes}`);
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

/**
 * SQLite's column affinity of a declared type (https://sqlite.org/datatype3.html §3.1).
 * `ANY` is kept apart: in a STRICT table it stores values exactly as given.
 */
function affinityOf(declared: string): 'INTEGER' | 'TEXT' | 'BLOB' | 'REAL' | 'NUMERIC' | 'ANY' {
  const t = declared.toUpperCase();
  if (t.includes('INT')) return 'INTEGER';
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'TEXT';
  if (t.includes('BLOB') || t.trim() === '') return 'BLOB';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'REAL';
  return t.trim() === 'ANY' ? 'ANY' : 'NUMERIC';
}

/**
 * Type-aware "did this cell change" (§P5): binary collation, and a change of storage class
 * counts. Values compared with `IS` differ in class only when an INTEGER equals a REAL; columns
 * of INTEGER, NUMERIC, REAL or TEXT affinity never hold both for one number (the affinity
 * converts it on store), so only BLOB / ANY columns pay for the `typeof` comparison.
 */
function changedSql(col: string, declared: string): string {
  const c = quoteIdent(col);
  const a = affinityOf(declared);
  if (a !== 'BLOB' && a !== 'ANY') return `(NEW.${c} IS NOT OLD.${c} COLLATE BINARY)`;
  return `(NEW.${c} IS NOT OLD.${c} COLLATE BINARY OR typeof(NEW.${c}) <> typeof(OLD.${c}))`;
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
  /** Delete triggers keep the row's last values in `offsync_tombstones` (central databases under RLS). */
  keepTombstoneValues?: boolean;
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

/** Value columns ordered by stable id: the ordinal gives an implicit cell its seq offset. */
export function orderedColumns(columnIds: ReadonlyMap<string, number>, names: readonly string[]): { name: string; id: number; ord: number }[] {
  return names
    .map((name) => ({ name, id: columnIds.get(name) ?? 0 }))
    .filter((c) => c.id > 0)
    .sort((a, b) => a.id - b.id)
    .map((c, ord) => ({ ...c, ord }));
}

/** The write log (`offsync_write_log.op`): kind in the low two bits, changed columns above. */
export const LOG_UPDATE = 0;
export const LOG_INSERT = 1;
export const LOG_DELETE = 2;
/** A primary-key change: `k` the new key (its changed columns in the mask), `k2` the old one. */
export const LOG_PK_CHANGE = 3;
/** Tables with more value columns keep the changed-column mask as text ('0'/'1' by ordinal) in `m`. */
export const MAX_MASK_BITS = 60;

/**
 * The key a trigger logs for row `alias`: a single key column as its own value (encoded by the
 * fold), several as the §P4 key blob. REAL and NULL key values abort the write, as §P4 has no
 * encoding for them; a NOT NULL column of TEXT affinity can hold neither.
 */
function logKeySql(schema: TableSchema, alias: string): string {
  const [only, ...more] = schema.pkColumns;
  if (only === undefined || more.length > 0) return pkBlobSql(schema, alias);
  const x = `${alias}.${quoteIdent(only.name)}`;
  if (affinityOf(only.type) === 'TEXT' && only.notNull) return x;
  return `(CASE typeof(${x}) WHEN 'real' THEN RAISE(ABORT, ${quoteText(`OffSync: REAL primary key values are not supported (table ${schema.name})`)})
    WHEN 'null' THEN RAISE(ABORT, ${quoteText(`NULL primary key values are not allowed (table ${schema.name})`)}) ELSE ${x} END)`;
}

/** The §P4 key blob of a logged key `k` (see {@link logKeySql}). */
export function loggedKeyBlobSql(schema: TableSchema, k: string): string {
  if (schema.pkColumns.length !== 1) return k;
  return `CAST(x'01' || ${valueEncodeSql(k, schema.name, false)} AS BLOB)`;
}

/**
 * CREATE TRIGGER statements recording local writes (§P5) in the write log: one log row per
 * tracked row change, nothing else. An UPDATE that changes no value column logs nothing (and uses
 * no version), like one the row filter does not hold for.
 */
export function triggerSql({ schema, columnIds, algorithm, filter, keepTombstoneValues }: TriggerInput): string {
  const t = quoteIdent(schema.name);
  const [ins, upd, , del, gosUpd, gosDel] = triggerNames(schema.name).map(quoteIdent);
  const cols = orderedColumns(columnIds, schema.valueColumns.map((v) => v.name));
  const wide = cols.length > MAX_MASK_BITS;
  const declared = new Map(schema.columns.map((c) => [c.name, c.type]));
  const when = (alias: string): string => (filter === undefined ? '' : ` AND ${rowFilterSql(schema, alias, filter)}`);
  const tbl = quoteText(schema.name);
  const mask = wide
    ? cols.length === 0 ? "''" : cols.map((c) => `CASE WHEN ${changedSql(c.name, declared.get(c.name) ?? '')} THEN '1' ELSE '0' END`).join(' || ')
    : cols.length === 0 ? '0' : cols.map((c) => `${changedSql(c.name, declared.get(c.name) ?? '')} * ${2 ** (c.ord + 2)}`).join(' + ');
  const anyChange = cols.map((c) => changedSql(c.name, declared.get(c.name) ?? '')).join(' OR ');

  const out: string[] = [];
  out.push(`CREATE TRIGGER IF NOT EXISTS ${ins} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING}${when('NEW')} BEGIN
  INSERT INTO offsync_write_log (tbl, op, k) VALUES (${tbl}, ${LOG_INSERT}, ${logKeySql(schema, 'NEW')});
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
  // The old key's last values, for central databases under RLS (docs/ARCHITECTURE.md "RLS model").
  const allCols = schema.columns.map((x) => x.name);
  const keepLast = (only: string): string =>
    keepTombstoneValues === true
      ? `INSERT OR REPLACE INTO offsync_tombstones (tbl, pk, vals, audience)
    SELECT ${tbl}, ${pkBlobSql(schema, 'OLD')}, ${tombstoneValuesSql(allCols, 'OLD')}, NULL
    WHERE ${only}EXISTS (SELECT 1 FROM offsync_settings WHERE key = '${TOMBSTONE_VALUES_SETTING}');`
      : '';
  // One trigger for every UPDATE (a second one would evaluate its condition for every row too).
  // A primary-key change deletes the old key and inserts the new one (with a sentinel), its
  // columns changed by the same UPDATE bumped once more (§P5, local writes): one log row.
  const keyChanged = schema.pkColumns.map((k) => changedSql(k.name, k.type)).join(' OR ');
  const kind = `CASE WHEN ${keyChanged} THEN ${LOG_PK_CHANGE} ELSE ${LOG_UPDATE} END`;
  const op = wide ? kind : cols.length === 0 ? kind : `${kind} + ${mask}`;
  out.push(`CREATE TRIGGER IF NOT EXISTS ${upd} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} AND (${keyChanged}${cols.length > 0 ? ` OR ${anyChange}` : ''})${when('NEW')} BEGIN
  INSERT INTO offsync_write_log (tbl, op, k, k2, m) VALUES (${tbl}, ${op}, ${logKeySql(schema, 'NEW')}, CASE WHEN ${keyChanged} THEN ${logKeySql(schema, 'OLD')} END, ${wide ? mask : 'NULL'});
  ${keepLast(`(${keyChanged}) AND `)}
END;`);
  out.push(`CREATE TRIGGER IF NOT EXISTS ${del} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING}${when('OLD')} BEGIN
  INSERT INTO offsync_write_log (tbl, op, k) VALUES (${tbl}, ${LOG_DELETE}, ${logKeySql(schema, 'OLD')});
  ${keepLast('')}
END;`);
  return out.join('\n');
}

/** Marker of triggers that write the log: triggers of older OffSync versions lack it and are regenerated on open. */
export const LOG_TRIGGER_MARKER = 'offsync_write_log';

export function dropTriggersSql(table: string): string {
  return triggerNames(table)
    .map((n) => `DROP TRIGGER IF EXISTS ${quoteIdent(n)};`)
    .join('\n');
}
