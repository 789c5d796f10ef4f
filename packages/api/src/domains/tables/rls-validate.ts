/**
 * Validates an RLS expression (docs/PROTOCOL.md §P3) by preparing it with SQLite against a scratch
 * in-memory database holding only the target table, with `auth_userid()` / `auth_json()` registered
 * and NEW / OLD available as aliases of the table for INSERT / UPDATE / DELETE.
 */
import Database from 'better-sqlite3';
import { ApiError } from '../../errors.ts';
import type { TableColumn } from './table-engine.ts';

export const RlsOperation = { SELECT: 'SELECT', INSERT: 'INSERT', UPDATE: 'UPDATE', DELETE: 'DELETE' } as const;
export type RlsOperation = (typeof RlsOperation)[keyof typeof RlsOperation];

const MAX_LENGTH = 2000;

function invalid(message: string): never {
  throw new ApiError('VALIDATION_FAILED', `expression: ${message}`, { details: { field: 'expression' } });
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Parentheses must balance outside string literals so the expression cannot close the wrapper. */
function checkStructure(expr: string): void {
  let depth = 0;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = expr.indexOf(ch, i + 1);
      if (end < 0) invalid('unterminated string or identifier');
      i = end;
      continue;
    }
    if (ch === ';') invalid('";" is not allowed');
    if (ch === '-' && expr[i + 1] === '-') invalid('comments are not allowed');
    if (ch === '/' && expr[i + 1] === '*') invalid('comments are not allowed');
    if (ch === '(') depth++;
    if (ch === ')' && --depth < 0) invalid('unbalanced parentheses');
  }
  if (depth !== 0) invalid('unbalanced parentheses');
}

/** Returns the trimmed expression, or throws VALIDATION_FAILED saying why it was refused. */
export function validateRlsExpression(table: string, columns: TableColumn[], operation: RlsOperation, expression: string): string {
  const expr = expression.trim();
  if (expr === '') invalid('must not be empty');
  if (expr.length > MAX_LENGTH) invalid(`must be at most ${MAX_LENGTH} characters`);
  checkStructure(expr);
  if (/\b(sqlite_\w+|pragma_\w+|load_extension|readfile|writefile)\b/i.test(expr)) invalid('may not reference SQLite internals');
  if (operation === 'SELECT' && /\b(NEW|OLD)\s*\./i.test(expr)) invalid('SELECT policies cannot use NEW or OLD');
  if (operation === 'INSERT' && /\bOLD\s*\./i.test(expr)) invalid('INSERT policies can use NEW but not OLD');
  if (operation === 'DELETE' && /\bNEW\s*\./i.test(expr)) invalid('DELETE policies can use OLD but not NEW');

  const db = new Database(':memory:');
  try {
    db.function('auth_userid', { deterministic: true }, () => null);
    db.function('auth_json', { deterministic: true }, () => null);
    const cols = columns.length > 0 ? columns.map((c) => `${quote(c.name)} ${c.type}`).join(', ') : '"_" TEXT';
    db.exec(`CREATE TABLE ${quote(table)} (${cols})`);
    const from = {
      SELECT: `${quote(table)}`,
      INSERT: `${quote(table)} AS NEW`,
      DELETE: `${quote(table)} AS OLD`,
      UPDATE: `${quote(table)} AS OLD, ${quote(table)} AS NEW`,
    }[operation];
    try {
      const stmt = db.prepare(`SELECT (${expr}) AS allowed FROM ${from}`);
      if (stmt.columns().length !== 1) invalid('must be a single expression');
    } catch (e) {
      if (e instanceof ApiError) throw e;
      invalid(e instanceof Error ? e.message : String(e));
    }
  } finally {
    db.close();
  }
  return expr;
}

/**
 * SQLite's keywords (lang_keywords.html) plus TRUE / FALSE: a column renamed to one of them is
 * written double-quoted in the policies that follow it.
 */
const SQLITE_KEYWORDS = new Set(
  `ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN
  COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH
  DISTINCT DO DROP EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FALSE FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL GENERATED GLOB
  GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH
  MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE
  RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY
  THEN TIES TO TRANSACTION TRIGGER TRUE UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH WITHOUT`.split(/\s+/),
);

/** Bare words of an expression that are operators or values, never a column (TRUE / FALSE are: SQLite reads them as a column of that name when there is one). */
const EXPR_KEYWORDS = new Set(
  'AND OR NOT IS ISNULL NOTNULL NULL IN LIKE GLOB REGEXP MATCH ESCAPE BETWEEN CASE WHEN THEN ELSE END EXISTS SELECT DISTINCT ALL WHERE CAST COLLATE AS FROM JOIN ON USING GROUP BY HAVING ORDER LIMIT OFFSET ASC DESC CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP'.split(' '),
);

/** One identifier of a policy expression that names a column of the table (see {@link policyColumnRefs}). */
interface ColumnRef {
  /** The column name as SQLite reads it (quotes removed). */
  name: string;
  /** Its text in the expression: [start, end). */
  start: number;
  end: number;
  /** How it is written: bare, "double-quoted", [bracketed] or `backtick`. */
  quote: '' | '"' | '[' | '`';
}

type ExprTok = { k: 'id'; quote: ColumnRef['quote']; name: string; start: number; end: number } | { k: 'other'; v: string; start: number; end: number };

/** Tokens of an RLS expression: identifiers (bare or quoted) and everything else; string and blob literals, numbers, parameters and comments are `other`. */
function exprTokens(expr: string): ExprTok[] {
  const out: ExprTok[] = [];
  let i = 0;
  /** The end of a quoted run starting at `i` with `close`, a doubled `close` standing for itself (none for `]`). */
  const closing = (from: number, close: string, doubled: boolean): number => {
    let j = from + 1;
    for (;;) {
      const end = expr.indexOf(close, j);
      if (end < 0) return expr.length;
      if (doubled && expr[end + 1] === close) {
        j = end + 2;
        continue;
      }
      return end + 1;
    }
  };
  while (i < expr.length) {
    const ch = expr[i] as string;
    if (/\s/.test(ch)) {
      i++;
    } else if (expr.startsWith('--', i)) {
      const nl = expr.indexOf('\n', i);
      i = nl < 0 ? expr.length : nl + 1;
    } else if (expr.startsWith('/*', i)) {
      const end = expr.indexOf('*/', i + 2);
      i = end < 0 ? expr.length : end + 2;
    } else if (ch === "'") {
      const end = closing(i, "'", true);
      out.push({ k: 'other', v: "'", start: i, end });
      i = end;
    } else if (ch === '"' || ch === '`' || ch === '[') {
      const close = ch === '[' ? ']' : ch;
      const end = closing(i, close, ch !== '[');
      const inner = expr.slice(i + 1, end - 1);
      out.push({ k: 'id', quote: ch, name: ch === '[' ? inner : inner.split(close + close).join(close), start: i, end });
      i = end;
    } else if (/[0-9]/.test(ch) || (ch === '.' && /[0-9]/.test(expr[i + 1] ?? ''))) {
      const m = /^(?:0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[A-Za-z0-9_]*/.exec(expr.slice(i)) as RegExpExecArray;
      out.push({ k: 'other', v: m[0], start: i, end: i + m[0].length });
      i += m[0].length;
    } else if ((ch === 'x' || ch === 'X') && expr[i + 1] === "'") {
      const end = closing(i + 1, "'", true);
      out.push({ k: 'other', v: "x'", start: i, end });
      i = end;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(ch)) {
      const m = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(expr.slice(i)) as RegExpExecArray;
      out.push({ k: 'id', quote: '', name: m[0], start: i, end: i + m[0].length });
      i += m[0].length;
    } else if (ch === '?' || ch === ':' || ch === '@' || ch === '$') {
      // A parameter (?1, :name, @name, $name): never a column.
      const m = /^[?:@$][A-Za-z0-9_$\u0080-\uffff]*/.exec(expr.slice(i)) as RegExpExecArray;
      out.push({ k: 'other', v: m[0], start: i, end: i + m[0].length });
      i += m[0].length;
    } else {
      out.push({ k: 'other', v: ch, start: i, end: i + 1 });
      i++;
    }
  }
  return out;
}

/**
 * The identifiers of an RLS expression that name columns of its table (the only table a policy
 * can read, rls-validate's scratch database): bare words that are not operators, "quoted",
 * [bracketed] and `backtick` names, and the column of a qualified `NEW.c` / `OLD.c` / `t.c`.
 * Not a column: string and blob literals, a function name (followed by `(`), a qualifier
 * (followed by `.`), a type after CAST's AS, a collation after COLLATE, a table or alias after
 * FROM / JOIN / AS in a subquery.
 */
export function policyColumnRefs(expr: string): ColumnRef[] {
  const toks = exprTokens(expr);
  const out: ColumnRef[] = [];
  const isOther = (t: ExprTok | undefined, v: string): boolean => t?.k === 'other' && t.v === v;
  const word = (t: ExprTok | undefined): string | undefined => (t?.k === 'id' && t.quote === '' ? t.name.toUpperCase() : undefined);
  let skipWords = false;
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i] as ExprTok;
    if (t.k !== 'id') {
      skipWords = false;
      continue;
    }
    const upper = word(t);
    // `a IS [NOT] DISTINCT FROM b` is an operator, not a FROM clause.
    if (upper === 'FROM' && word(toks[i - 1]) === 'DISTINCT') {
      skipWords = false;
      continue;
    }
    if (upper !== undefined && ['AS', 'COLLATE', 'FROM', 'JOIN'].includes(upper)) {
      skipWords = true; // the words that follow name a type, collation, table or alias
      continue;
    }
    if (upper !== undefined && EXPR_KEYWORDS.has(upper)) {
      skipWords = false;
      continue;
    }
    if (skipWords) continue;
    const next = toks[i + 1];
    if (isOther(next, '(') || isOther(next, '.')) continue;
    out.push({ name: t.name, start: t.start, end: t.end, quote: t.quote });
  }
  return out;
}

/** True when the expression names column `column` (compared as SQLite does, without case). */
export function policyReferences(expr: string, column: string): boolean {
  const c = column.toLowerCase();
  return policyColumnRefs(expr).some((r) => r.name.toLowerCase() === c);
}

/**
 * The expression with every reference to column `from` renamed `to` (what ALTER TABLE … RENAME
 * COLUMN does to the table's own triggers and views), each in the form it was written when `to`
 * allows it (a bare name that would be a keyword or not a plain identifier is double-quoted).
 * String literals and everything else are kept byte for byte.
 */
export function renamePolicyColumn(expr: string, from: string, to: string): string {
  const f = from.toLowerCase();
  const refs = policyColumnRefs(expr).filter((r) => r.name.toLowerCase() === f);
  if (refs.length === 0) return expr;
  const written = (form: ColumnRef['quote']): string => {
    if (form === '' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(to) && !SQLITE_KEYWORDS.has(to.toUpperCase())) return to;
    if (form === '[' && !to.includes(']')) return `[${to}]`;
    if (form === '`') return `\`${to.replace(/`/g, '``')}\``;
    return quote(to);
  };
  let out = '';
  let at = 0;
  for (const r of refs) {
    out += expr.slice(at, r.start) + written(r.quote);
    at = r.end;
  }
  return out + expr.slice(at);
}
