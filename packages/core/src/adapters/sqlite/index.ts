/**
 * `@offsync/core/sqlite`: the engine on better-sqlite3.
 *
 * @example
 * const engine = openSyncDatabase('app.db');
 * engine.driver.exec("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '')");
 * engine.init('todos');
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { SyncEngine } from '../../engine/engine.ts';
import type { EngineOptions } from '../../engine/engine.ts';
import { createBetterSqliteDriver } from './better-sqlite3-driver.ts';

export { createBetterSqliteDriver } from './better-sqlite3-driver.ts';
export { asyncSqliteEngine } from './async-engine.ts';
export type { SyncEngineContract } from '../../engine/contract.ts';

export interface OpenOptions extends Partial<EngineOptions> {
  /** Use WAL journaling for file databases (default true). */
  wal?: boolean;
  /**
   * `PRAGMA synchronous` (default NORMAL: in WAL mode a commit may be lost on power loss, never
   * corrupted). FULL syncs the WAL on every commit, so a committed transaction survives power loss.
   */
  synchronous?: 'NORMAL' | 'FULL';
  /** Refuse to create the file: throw (SQLITE_CANTOPEN) when it does not exist (default false). */
  mustExist?: boolean;
}

function nodeRandom(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

/** Wraps an open better-sqlite3 connection in a {@link SyncEngine}. */
export function createSyncEngine(db: Database.Database, opts: OpenOptions = {}): SyncEngine {
  return new SyncEngine(createBetterSqliteDriver(db), { randomBytes: opts.randomBytes ?? nodeRandom, ...(opts.now ? { now: opts.now } : {}), ...(opts.schemaWatch === undefined ? {} : { schemaWatch: opts.schemaWatch }) });
}

/** Opens (creating if needed, unless `mustExist`) a SQLite database file, or `:memory:`, as a {@link SyncEngine}. */
export function openSyncDatabase(path: string, opts: OpenOptions = {}): SyncEngine {
  const db = new Database(path, opts.mustExist === true ? { fileMustExist: true } : {});
  if (path !== ':memory:' && opts.wal !== false) db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${opts.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  return createSyncEngine(db, opts);
}
