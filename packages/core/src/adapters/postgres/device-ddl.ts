/**
 * The SQLite `CREATE TABLE` statement a device creates for a synced PostgreSQL table
 * (docs/PROTOCOL.md §P6 "Hash algorithms", DDL text on PostgreSQL). PostgreSQL keeps no SQLite DDL
 * text, so the DDL-text schema hash of a POSTGRES database (0.8.x – 0.9.99 devices) is the hash of
 * these statements: a device that creates its tables from them, in the same order, computes the
 * same hash; its column-list hash matches the database's too (the type words below have the
 * affinities the column-list hash maps the PostgreSQL types onto).
 *
 * Canonical form, one line:
 * `CREATE TABLE "<t>" ("<col>" <TYPE>[ NOT NULL][ DEFAULT <literal>], …, PRIMARY KEY ("<k>", …))`
 * - columns in PostgreSQL attribute order, names and the table name double-quoted as declared;
 * - TYPE = the column's affinity word upper-cased (INTEGER, TEXT, BLOB, REAL, NUMERIC), except
 *   `bool`, written BOOLEAN (same column-list affinity, `text`; SQLite keeps its 0/1 integers);
 * - key columns are NOT NULL (§P6 rule 5) and carry no DEFAULT;
 * - a value column's DEFAULT is its PostgreSQL default when that is a constant (string, number,
 *   boolean, bytea or NULL literal, casts dropped); a NOT NULL value column whose default is not
 *   a constant (now(), nextval(…), …) gets the zero of its type (`''`, `0`, `X''`), so §P6 rule 6
 *   holds on the device as it does in PostgreSQL; a nullable one gets no DEFAULT.
 */
import type { PgColumn, PgTableSchema } from './introspect.ts';

const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** The SQLite declared type a device uses for `col`. */
export function sqliteTypeWord(col: PgColumn): string {
  if (col.cls === 'bool') return 'BOOLEAN';
  return col.affinity.toUpperCase();
}

const NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

/**
 * `expr` (pg_get_expr of a column default) as a SQLite literal for a column of type `word`, or
 * undefined when it is not a constant.
 */
export function sqliteLiteral(expr: string, word: string): string | undefined {
  let e = expr.trim();
  // Redundant parentheses around a constant: `(-1)`.
  while (e.startsWith('(') && e.endsWith(')') && !e.slice(1, -1).includes('(')) e = e.slice(1, -1).trim();
  const numeric = word === 'INTEGER' || word === 'REAL' || word === 'NUMERIC' || word === 'BOOLEAN';
  const quoted = /^'((?:[^']|'')*)'(?:::[a-z_][a-z0-9_ ]*(?:\([0-9, ]*\))?(?:\[\])?)?$/i.exec(e);
  if (quoted !== null) {
    const text = (quoted[1] as string).replace(/''/g, "'");
    if (/::bytea$/i.test(e)) return /^\\x([0-9a-f]{2})*$/i.test(text) ? `X'${text.slice(2).toUpperCase()}'` : undefined;
    if (word === 'BOOLEAN' && /::boolean$/i.test(e)) return /^(t|true|y|yes|on|1)$/i.test(text) ? '1' : /^(f|false|n|no|off|0)$/i.test(text) ? '0' : undefined;
    if (numeric && NUMBER.test(text)) return text;
    return `'${text.replace(/'/g, "''")}'`;
  }
  if (/^true$/i.test(e)) return '1';
  if (/^false$/i.test(e)) return '0';
  if (/^null(::[a-z_][a-z0-9_ ]*(\([0-9, ]*\))?)?$/i.test(e)) return 'NULL';
  const num = /^([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?:::[a-z_][a-z0-9_ ]*(?:\([0-9, ]*\))?)?$/i.exec(e);
  if (num !== null) return numeric ? (num[1] as string) : `'${num[1] as string}'`;
  return undefined;
}

const ZERO: Readonly<Record<string, string>> = { TEXT: "''", BLOB: "X''", INTEGER: '0', REAL: '0', NUMERIC: '0', BOOLEAN: '0' };

function columnSql(col: PgColumn): string {
  const word = sqliteTypeWord(col);
  let out = `${ident(col.name)} ${word}`;
  if (col.pk > 0) return `${out} NOT NULL`;
  const literal = col.defaultValue === null ? undefined : sqliteLiteral(col.defaultValue, word);
  if (col.notNull) {
    out += ' NOT NULL';
    if (col.defaultValue !== null) out += ` DEFAULT ${literal ?? ZERO[word] ?? "''"}`;
  } else if (literal !== undefined && literal !== 'NULL') out += ` DEFAULT ${literal}`;
  return out;
}

/** The canonical SQLite `CREATE TABLE` statement of `table` (see the module comment). */
export function sqliteDdlFor(table: PgTableSchema): string {
  const cols = table.columns.map(columnSql);
  const pk = [...table.pkColumns].sort((a, b) => a.pk - b.pk).map((c) => ident(c.name));
  return `CREATE TABLE ${ident(table.name)} (${[...cols, `PRIMARY KEY (${pk.join(', ')})`].join(', ')})`;
}
