/**
 * The storage port: the only way core reaches a database.
 *
 * Contract:
 * - Statements are prepared once and reused; `prepare` may cache.
 * - Values follow {@link SqlValue}: INTEGER is read and bound as `bigint`, REAL as `number`.
 * - `transaction(fn)` runs `fn` atomically: if it throws, nothing it wrote is visible and the
 *   error propagates; nested calls become savepoints. Transactions are strictly serializable
 *   (SQLite: one writer per database file).
 * - The port is synchronous because the embedded engine (better-sqlite3) is; an asynchronous
 *   PostgreSQL adapter would implement the same operations behind `await` (see ARCHITECTURE.md).
 */
import type { SqlValue } from '../types.ts';

export type SqlRow = Record<string, SqlValue>;

export interface SqlStatement {
  /** Execute a writing statement; returns the number of rows changed. */
  run(...params: SqlValue[]): number;
  /** First row as an object, or undefined. */
  get(...params: SqlValue[]): SqlRow | undefined;
  /** All rows as objects. */
  all(...params: SqlValue[]): SqlRow[];
  /** First row as an array of column values, or undefined (fast path). */
  getRaw(...params: SqlValue[]): SqlValue[] | undefined;
  /** Lazily iterate rows as arrays of column values (fast path). */
  iterateRaw(...params: SqlValue[]): IterableIterator<SqlValue[]>;
}

export interface SqlDriver {
  prepare(sql: string): SqlStatement;
  /** Run one or more statements without parameters (DDL). */
  exec(sql: string): void;
  /** Run `fn` atomically (see the interface contract). */
  transaction<T>(fn: () => T): T;
  /** True while an explicit transaction is open on this connection. */
  readonly inTransaction: boolean;
  close(): void;
}
