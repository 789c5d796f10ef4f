/**
 * Minimal loader for the real SQLite Sync extension (`@sqliteai/sqlite-wasm`, cloudsync 0.9.99)
 * for the codec's golden tests. TEST-ONLY: the extension is Elastic-License software; never
 * import this from production code.
 */
import sqlite3InitModule from '@sqliteai/sqlite-wasm';
import type { SqlValue } from '../types.ts';

type Sqlite3 = Awaited<ReturnType<typeof sqlite3InitModule>>;
type Db = InstanceType<Sqlite3['oo1']['DB']>;

let loaded: Promise<Sqlite3> | undefined;

export function loadSqlite3(): Promise<Sqlite3> {
  loaded ??= sqlite3InitModule({ print: () => {}, printErr: () => {} } as Parameters<typeof sqlite3InitModule>[0]);
  return loaded;
}

/** A thin wrapper: typed rows with exact storage classes (INTEGER → bigint, REAL → number). */
export class TestDb {
  readonly db: Db;
  readonly sqlite3: Sqlite3;

  constructor(sqlite3: Sqlite3) {
    this.sqlite3 = sqlite3;
    this.db = new sqlite3.oo1.DB(':memory:');
  }

  exec(sql: string): void {
    this.db.exec(sql);
  }

  /** Runs `sql` with parameters bound by storage class; returns rows of exact SqlValues. */
  all(sql: string, params: readonly SqlValue[] = []): SqlValue[][] {
    const { capi } = this.sqlite3;
    const stmt = this.db.prepare(sql);
    try {
      params.forEach((p, i) => {
        const idx = i + 1;
        if (typeof p === 'bigint') capi.sqlite3_bind_int64(stmt.pointer as never, idx, p);
        else if (typeof p === 'number') capi.sqlite3_bind_double(stmt.pointer as never, idx, p);
        else stmt.bind(idx, p as never);
      });
      const rows: SqlValue[][] = [];
      while (stmt.step()) {
        const row: SqlValue[] = [];
        for (let c = 0; c < stmt.columnCount; c++) {
          const t = capi.sqlite3_column_type(stmt.pointer as never, c);
          if (t === capi.SQLITE_INTEGER) row.push(BigInt(stmt.get(c, capi.SQLITE_INTEGER) as number | bigint));
          else if (t === capi.SQLITE_FLOAT) row.push(stmt.get(c, capi.SQLITE_FLOAT) as number);
          else if (t === capi.SQLITE_TEXT) row.push(stmt.get(c, capi.SQLITE_TEXT) as string);
          else if (t === capi.SQLITE_BLOB) row.push(Uint8Array.from(stmt.get(c, capi.SQLITE_BLOB) as Uint8Array));
          else row.push(null);
        }
        rows.push(row);
      }
      return rows;
    } finally {
      stmt.finalize();
    }
  }

  one(sql: string, params: readonly SqlValue[] = []): SqlValue {
    return this.all(sql, params)[0]?.[0] ?? null;
  }

  close(): void {
    this.db.close();
  }
}

export async function openTestDb(): Promise<TestDb> {
  return new TestDb(await loadSqlite3());
}
