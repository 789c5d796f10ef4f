/**
 * `ExtensionDb`: a small synchronous wrapper around an oo1 database of the real SQLite Sync
 * extension, returning values in OffSync's value model (see `SqlValue` in ../../types.ts).
 * TEST USE ONLY (licence: docs/PROTOCOL.md §P7).
 */
import type { Database, PreparedStatement } from '@sqliteai/sqlite-wasm';
import type sqlite3InitModule from '@sqliteai/sqlite-wasm';
import type { SqlValue } from '../../types.ts';

/** The object `sqlite3InitModule()` resolves to. */
export type Sqlite3Static = Awaited<ReturnType<typeof sqlite3InitModule>>;

/** Positional (`?`) or named (`:name`, `$name`, `@name`, key includes the prefix) parameters. */
export type SqlParams = readonly SqlValue[] | Readonly<Record<string, SqlValue>>;

export type Row = Record<string, SqlValue>;

/** One row of the `cloudsync_changes` virtual table, in the value model. */
export interface ChangeRow {
  readonly tbl: string;
  readonly pk: Uint8Array;
  readonly col_name: string;
  readonly col_value: SqlValue;
  readonly col_version: bigint;
  readonly db_version: bigint;
  readonly site_id: Uint8Array;
  readonly cl: bigint;
  readonly seq: bigint;
}

/** Column list accepted by `cloudsync_payload_encode` (aggregate, 9 arguments, the vtab's order). */
export const CHANGE_COLUMNS = 'tbl, pk, col_name, col_value, col_version, db_version, site_id, cl, seq';

export class ExtensionDb {
  /** The underlying oo1 database, for anything the wrapper does not cover. */
  readonly raw: Database;
  readonly name: string;
  readonly #sqlite3: Sqlite3Static;

  constructor(sqlite3: Sqlite3Static, name = ':memory:') {
    this.#sqlite3 = sqlite3;
    this.name = name;
    this.raw = new sqlite3.oo1.DB(name, 'c');
  }

  /** Without params: runs all statements of `sql`. With params: runs the single statement. */
  exec(sql: string, params?: SqlParams): void {
    if (params === undefined) {
      this.raw.exec(sql);
      return;
    }
    this.#query(sql, params, 0);
  }

  all<T extends Row = Row>(sql: string, params?: SqlParams): T[] {
    return this.#query(sql, params, Number.POSITIVE_INFINITY) as T[];
  }

  get<T extends Row = Row>(sql: string, params?: SqlParams): T | undefined {
    return this.#query(sql, params, 1)[0] as T | undefined;
  }

  /** First column of the first row; `undefined` when there is no row. */
  value(sql: string, params?: SqlParams): SqlValue | undefined {
    const row = this.#query(sql, params, 1)[0];
    return row === undefined ? undefined : Object.values(row)[0];
  }

  close(): void {
    if (this.raw.isOpen()) this.raw.close();
  }

  /** `cloudsync_siteid()` as 32 lowercase hex digits (the `{site}` URL segment). */
  siteIdHex(): string {
    return String(this.value('SELECT lower(hex(cloudsync_siteid()))'));
  }

  /**
   * Encodes the rows of `cloudsync_changes` matching `where` (all rows by default), ordered by
   * `(db_version, seq)`, with `cloudsync_payload_encode`. `null` when no row matches.
   */
  payloadEncode(where = '1', params?: SqlParams): Uint8Array | null {
    const sql =
      `SELECT cloudsync_payload_encode(${CHANGE_COLUMNS}) FROM ` +
      `(SELECT ${CHANGE_COLUMNS} FROM cloudsync_changes WHERE ${where} ORDER BY db_version, seq)`;
    const v = this.value(sql, params);
    if (v === null || v === undefined) return null;
    if (!(v instanceof Uint8Array)) throw new TypeError('cloudsync_payload_encode did not return a BLOB');
    return v;
  }

  /** Applies a payload with `cloudsync_payload_apply(blob)`; returns the number of rows applied. */
  payloadApply(bytes: Uint8Array): number {
    return Number(this.value('SELECT cloudsync_payload_apply(?)', [bytes]));
  }

  /** Rows of `cloudsync_changes` (optionally filtered) in `(db_version, seq)` order. */
  changes(where = '1', params?: SqlParams): ChangeRow[] {
    const rows = this.all(
      `SELECT ${CHANGE_COLUMNS} FROM cloudsync_changes WHERE ${where} ORDER BY db_version, seq`,
      params,
    );
    return rows.map(toChangeRow);
  }

  #query(sql: string, params: SqlParams | undefined, limit: number): Row[] {
    const stmt = this.raw.prepare(sql);
    try {
      if (params !== undefined && (!Array.isArray(params) || params.length > 0)) stmt.bind(params);
      const names = stmt.columnCount === 0 ? [] : stmt.getColumnNames();
      const rows: Row[] = [];
      // limit 0 (exec): step to the end without reading; otherwise stop after `limit` rows.
      while (stmt.step()) {
        if (limit === 0) continue;
        const row: Row = {};
        names.forEach((name, i) => {
          row[name] = this.#column(stmt, i);
        });
        if (rows.push(row) >= limit) break;
      }
      return rows;
    } finally {
      stmt.finalize();
    }
  }

  #column(stmt: PreparedStatement, i: number): SqlValue {
    const { capi } = this.#sqlite3;
    const ptr = stmt.pointer;
    if (ptr === undefined) throw new Error('statement already finalized');
    switch (capi.sqlite3_column_type(ptr, i)) {
      case capi.SQLITE_INTEGER:
        return BigInt(capi.sqlite3_column_int64(ptr, i));
      case capi.SQLITE_FLOAT:
        return Number(stmt.get(i, capi.SQLITE_FLOAT));
      case capi.SQLITE_TEXT:
        return String(stmt.get(i, capi.SQLITE_TEXT));
      case capi.SQLITE_BLOB: {
        const blob = stmt.get(i, capi.SQLITE_BLOB);
        return blob instanceof Uint8Array ? blob : new Uint8Array(0);
      }
      default:
        return null;
    }
  }
}

function toChangeRow(row: Row): ChangeRow {
  const big = (v: SqlValue | undefined): bigint => (typeof v === 'bigint' ? v : BigInt(Number(v ?? 0)));
  const bytes = (v: SqlValue | undefined): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));
  return {
    tbl: String(row['tbl']),
    pk: bytes(row['pk']),
    col_name: String(row['col_name']),
    col_value: row['col_value'] ?? null,
    col_version: big(row['col_version']),
    db_version: big(row['db_version']),
    site_id: bytes(row['site_id']),
    cl: big(row['cl']),
    seq: big(row['seq']),
  };
}
