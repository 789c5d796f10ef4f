/**
 * Evaluates RLS expressions (docs/PROTOCOL.md §P3) on row values, with `auth_userid()` and
 * `auth_json()` bound to the principal of the current call.
 *
 * Expressions are validated when saved (`domains/tables/rls-validate.ts`) against a scratch
 * database holding only the target table, so they can reference nothing but the row (as the
 * table name for SELECT, NEW for INSERT, OLD for DELETE, OLD and NEW for UPDATE) and the two
 * auth functions. They are therefore evaluated here exactly as validated — on the row values,
 * bound as parameters of `SELECT … FROM (SELECT ? AS "c1", …) AS "t"` — on a private in-memory
 * connection, which keeps the engine's connection (and its driver port) free of functions it
 * does not own. Row values are read on the engine's connection (inside the merge transaction).
 */
import Database from 'better-sqlite3';
import type { SqlValue } from '@offsync/core';
import type { RlsOperation } from '../../tables/rls-validate.ts';
import type { Principal } from '../sync-deps.ts';

export type RowValues = Readonly<Record<string, SqlValue>>;

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

function bindable(v: SqlValue | undefined): unknown {
  if (v === undefined) return null;
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}

type Stmt = Database.Statement<unknown[], unknown>;

export class RlsEvaluator {
  readonly #db = new Database(':memory:');
  readonly #stmts = new Map<string, Stmt | null>();
  readonly #defaults = new Map<string, unknown>();
  #principal: Principal | null = null;

  constructor() {
    this.#db.function('auth_userid', { deterministic: false }, () => this.#principal?.userId ?? null);
    this.#db.function('auth_json', { deterministic: false }, () => (this.#principal === null ? null : JSON.stringify(this.#principal.claims)));
  }

  /**
   * True when `expression` holds for the row(s) under `principal`. `columns` fixes the order of
   * the bound values. An expression that fails to prepare or run denies.
   */
  allows(principal: Principal, table: string, op: RlsOperation, expression: string, columns: readonly string[], rows: { row?: RowValues | undefined; old?: RowValues | undefined; new?: RowValues | undefined }): boolean {
    const stmt = this.#statement(table, op, expression, columns);
    if (stmt === null) return false;
    const values = (r: RowValues | undefined): unknown[] => columns.map((c) => bindable(r?.[c]));
    const params = op === 'SELECT' ? values(rows.row) : op === 'INSERT' ? values(rows.new) : op === 'DELETE' ? values(rows.old) : [...values(rows.old), ...values(rows.new)];
    this.#principal = principal;
    try {
      return stmt.get(...params) === 1;
    } catch {
      return false;
    } finally {
      this.#principal = null;
    }
  }

  /** The value of a column's DEFAULT expression text (as `PRAGMA table_info` reports it), or null. */
  defaultValue(expression: string | null): unknown {
    if (expression === null) return null;
    const cached = this.#defaults.get(expression);
    if (cached !== undefined || this.#defaults.has(expression)) return cached;
    let value: unknown = null;
    try {
      value = this.#db.prepare(`SELECT (${expression})`).pluck().get();
    } catch {
      value = null;
    }
    // CURRENT_TIMESTAMP & co. change over time: only constant defaults are cached.
    if (!/current_|random|\(/i.test(expression)) this.#defaults.set(expression, value);
    return value;
  }

  #statement(table: string, op: RlsOperation, expression: string, columns: readonly string[]): Stmt | null {
    const key = `${table}\u0000${op}\u0000${expression}\u0000${columns.join('\u0000')}`;
    const hit = this.#stmts.get(key);
    if (hit !== undefined) return hit;
    const row = `(SELECT ${columns.length === 0 ? 'NULL AS "_"' : columns.map((c) => `? AS ${quote(c)}`).join(', ')})`;
    const from = { SELECT: `${row} AS ${quote(table)}`, INSERT: `${row} AS NEW`, DELETE: `${row} AS OLD`, UPDATE: `${row} AS OLD, ${row} AS NEW` }[op];
    let stmt: Stmt | null;
    try {
      stmt = this.#db.prepare<unknown[]>(`SELECT CASE WHEN (${expression}) THEN 1 ELSE 0 END FROM ${from}`).pluck();
    } catch {
      stmt = null;
    }
    if (this.#stmts.size > 5000) this.#stmts.clear();
    this.#stmts.set(key, stmt);
    return stmt;
  }

  close(): void {
    this.#db.close();
  }
}
