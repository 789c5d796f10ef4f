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
