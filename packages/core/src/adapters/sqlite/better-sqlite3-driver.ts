import type Database from 'better-sqlite3';
import type { SqlDriver, SqlRow, SqlStatement } from '../../storage/driver.ts';
import type { SqlValue } from '../../types.ts';

type Db = Database.Database;
type Stmt = Database.Statement<SqlValue[], unknown>;

function toValue(v: unknown): SqlValue {
  // better-sqlite3 returns Buffer for BLOBs; expose plain Uint8Array views of the same bytes.
  if (v instanceof Uint8Array && v.constructor !== Uint8Array) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return v as SqlValue;
}

function normaliseRow(row: SqlRow): SqlRow {
  for (const k in row) {
    const v = row[k];
    if (v instanceof Uint8Array) row[k] = toValue(v);
  }
  return row;
}

class BetterSqliteStatement implements SqlStatement {
  readonly #stmt: Stmt;
  readonly #raw: Stmt | undefined;
  constructor(db: Db, sql: string) {
    this.#stmt = db.prepare<SqlValue[]>(sql);
    if (this.#stmt.reader) {
      this.#stmt.safeIntegers(true);
      this.#raw = db.prepare<SqlValue[]>(sql);
      this.#raw.safeIntegers(true).raw(true);
    }
  }
  run(...params: SqlValue[]): number {
    return this.#stmt.run(...params).changes;
  }
  get(...params: SqlValue[]): SqlRow | undefined {
    const row = this.#stmt.get(...params) as SqlRow | undefined;
    return row === undefined ? undefined : normaliseRow(row);
  }
  all(...params: SqlValue[]): SqlRow[] {
    return (this.#stmt.all(...params) as SqlRow[]).map(normaliseRow);
  }
  // The raw paths are the engine's hot paths: BLOBs stay Node Buffers there (a Uint8Array
  // subclass), saving an allocation per value.
  getRaw(...params: SqlValue[]): SqlValue[] | undefined {
    return this.#reader().get(...params) as SqlValue[] | undefined;
  }
  iterateRaw(...params: SqlValue[]): IterableIterator<SqlValue[]> {
    return this.#reader().iterate(...params) as IterableIterator<SqlValue[]>;
  }
  #reader(): Stmt {
    if (this.#raw === undefined) throw new TypeError('statement returns no rows');
    return this.#raw;
  }
}

/** Wrap a better-sqlite3 connection as a core {@link SqlDriver}. Statements are cached by SQL text. */
export function createBetterSqliteDriver(db: Db): SqlDriver {
  const cache = new Map<string, SqlStatement>();
  let depth = 0;
  return {
    prepare(sql) {
      let s = cache.get(sql);
      if (s === undefined) {
        s = new BetterSqliteStatement(db, sql);
        cache.set(sql, s);
      }
      return s;
    },
    exec(sql) {
      db.exec(sql);
    },
    transaction<T>(fn: () => T): T {
      if (depth > 0 || db.inTransaction) {
        const name = `offsync_sp_${depth}`;
        db.exec(`SAVEPOINT ${name}`);
        depth++;
        try {
          const out = fn();
          db.exec(`RELEASE ${name}`);
          return out;
        } catch (e) {
          db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
          throw e;
        } finally {
          depth--;
        }
      }
      db.exec('BEGIN IMMEDIATE');
      depth++;
      try {
        const out = fn();
        db.exec('COMMIT');
        return out;
      } catch (e) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw e;
      } finally {
        depth--;
      }
    },
    get inTransaction() {
      return db.inTransaction;
    },
    close() {
      cache.clear();
      db.close();
    },
  };
}
