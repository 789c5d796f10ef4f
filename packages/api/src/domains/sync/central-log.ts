/**
 * What the logs kept in a central database (rejection-log.ts, conflict-log.ts) share: the JSON
 * encoding of SQL values, opaque keyset cursors, retention by count and age, and the newest-first
 * keyset page. Each log keeps its own table, columns and filters.
 */
import type { SqlDriver, SqlValue } from '@offsync/core';

/** A SQL value as JSON: text, finite REAL and NULL as they are; INTEGER, BLOB and non-finite REAL tagged. */
export type EncodedSqlValue = string | number | null | { $int: string } | { $blob: string } | { $real: string };

export function encodeSqlValue(v: SqlValue): EncodedSqlValue {
  if (v === null || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : { $real: String(v) };
  if (typeof v === 'bigint') return { $int: v.toString() };
  return { $blob: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
}

export function decodeSqlValue(v: unknown): SqlValue {
  if (v === null || typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o['$int'] === 'string') return BigInt(o['$int']);
    if (typeof o['$blob'] === 'string') return new Uint8Array(Buffer.from(o['$blob'], 'base64'));
    if (typeof o['$real'] === 'string') return Number(o['$real']);
  }
  throw new TypeError(`central log: not an encoded SQL value: ${JSON.stringify(v)}`);
}

export function text(v: SqlValue | undefined): string {
  return typeof v === 'string' ? v : String(v);
}

export function textOrNull(v: SqlValue | undefined): string | null {
  return v === null || v === undefined ? null : text(v);
}

/** A retention setting: `fallback` when absent, RangeError unless a positive safe integer. */
export function positiveInt(v: number | undefined, fallback: number, name: string, log: string): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${log}: ${name} must be a positive integer`);
  return v;
}

/** The opaque `after` cursor of entry `id` of a log (`prefix` tells the logs apart). */
export function logCursor(prefix: string, id: number): string {
  return Buffer.from(`${prefix}:${id}`).toString('base64url');
}

/** Entry id of a cursor of that log; RangeError when it is not one. */
export function decodeLogCursor(prefix: string, cursor: string): number {
  const m = new RegExp(`^${prefix}:(\\d{1,15})$`).exec(Buffer.from(cursor, 'base64url').toString());
  if (m?.[1] === undefined) throw new RangeError('after: invalid cursor');
  return Number(m[1]);
}

/**
 * Deletes a log's entries older than `maxAgeMs` and all but the newest `maxEntries` ids. Ids are
 * dense unless entries were removed in between; `maxId - maxEntries` then keeps fewer than
 * maxEntries, never more, and costs only the rows it deletes.
 */
export function applyRetention(driver: SqlDriver, table: string, now: number, maxAgeMs: number, maxEntries: number): void {
  driver.prepare(`DELETE FROM ${table} WHERE at < ?`).run(BigInt(now - maxAgeMs));
  const max = driver.prepare(`SELECT max(id) FROM ${table}`).getRaw()?.[0];
  if (max !== null && max !== undefined && Number(max) > maxEntries) {
    driver.prepare(`DELETE FROM ${table} WHERE id <= ?`).run(BigInt(Number(max) - maxEntries));
  }
}

/** Retention of a central log: entries kept at most, and their age at most (ms). */
export interface LogRetention {
  /** Newest entries kept per database. */
  maxEntries?: number;
  /** Age after which entries are deleted, in ms. */
  maxAgeMs?: number;
}

/**
 * A log table in a central database with its retention: created on first use, trimmed by count
 * and age after each append (`retain`, inside the append's transaction).
 */
export abstract class CentralLog {
  protected readonly driver: SqlDriver;
  readonly #table: string;
  readonly #label: string;
  #maxEntries: number;
  #maxAgeMs: number;

  protected constructor(engine: { driver: SqlDriver }, log: { table: string; label: string; ddl: string; defaults: Required<LogRetention> }, options: LogRetention) {
    this.driver = engine.driver;
    this.#table = log.table;
    this.#label = log.label;
    this.#maxEntries = log.defaults.maxEntries;
    this.#maxAgeMs = log.defaults.maxAgeMs;
    this.configure(options);
    this.driver.exec(log.ddl);
  }

  get maxEntries(): number {
    return this.#maxEntries;
  }

  get maxAgeMs(): number {
    return this.#maxAgeMs;
  }

  /** Changes the retention (given fields only); applied from the next append. */
  configure(options: LogRetention): void {
    this.#maxEntries = positiveInt(options.maxEntries, this.#maxEntries, 'maxEntries', this.#label);
    this.#maxAgeMs = positiveInt(options.maxAgeMs, this.#maxAgeMs, 'maxAgeMs', this.#label);
  }

  /** Applies the retention as of `now` (ms since epoch). */
  protected retain(now: number): void {
    applyRetention(this.driver, this.#table, now, this.#maxAgeMs, this.#maxEntries);
  }
}

export interface KeysetPage {
  /** At most `first` raw rows, newest first. */
  rows: SqlValue[][];
  totalCount: number;
  hasNextPage: boolean;
}

/**
 * One page of a log, newest first, keyset on id (new entries never shift later pages):
 * `where`/`params` filter it, `after` is a cursor of this log (`prefix`), `first` is capped at
 * `maxPage`; `totalCount` counts the filtered entries.
 */
export function keysetPage(
  driver: SqlDriver,
  q: { table: string; columns: string; prefix: string; where: readonly string[]; params: readonly SqlValue[]; first: number; maxPage: number; after?: string | undefined },
): KeysetPage {
  if (!Number.isSafeInteger(q.first) || q.first < 0) throw new RangeError('first: must be a non-negative integer');
  const first = Math.min(q.first, q.maxPage);
  const filterSql = q.where.length === 0 ? '' : `WHERE ${q.where.join(' AND ')}`;
  const totalCount = Number(driver.prepare(`SELECT count(*) FROM ${q.table} ${filterSql}`).getRaw(...q.params)?.[0] ?? 0);
  let pageSql = filterSql;
  const pageParams = [...q.params];
  if (q.after !== undefined) {
    pageSql = `${filterSql === '' ? 'WHERE' : `${filterSql} AND`} id < ?`;
    pageParams.push(BigInt(decodeLogCursor(q.prefix, q.after)));
  }
  // One row more than asked tells whether another page follows (also for first = 0).
  const rows = [...driver.prepare(`SELECT ${q.columns} FROM ${q.table} ${pageSql} ORDER BY id DESC LIMIT ?`).iterateRaw(...pageParams, BigInt(first + 1))];
  return { rows: rows.slice(0, first), totalCount, hasNextPage: rows.length > first };
}
