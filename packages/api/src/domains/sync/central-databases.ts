/**
 * Registry of central databases: each OffSync database's central SQLite file is opened once
 * (`openSyncDatabase`) and kept open; every merge of that database runs on this one
 * synchronous engine, so server versions are assigned and committed in one order.
 */
import { openSyncDatabase } from '@offsync/core/sqlite';
import { PeerState } from './peer-state.ts';
import type { DatabaseTarget, SyncDeps, SyncEngine } from './sync-deps.ts';
import { SyncError } from './sync-errors.ts';

export interface CentralDatabase {
  readonly id: string;
  readonly path: string;
  readonly engine: SyncEngine;
  readonly peers: PeerState;
  /** The target as resolved for the current request (enabled, schema-hash mode). */
  readonly target: DatabaseTarget;
}

interface Open {
  path: string;
  engine: SyncEngine;
  peers: PeerState;
}

export interface CentralDatabasesOptions {
  /** Opens a central file (default `openSyncDatabase(path)`). */
  open?: (path: string) => SyncEngine;
}

/** Database ids are path segments: printable, no slashes, at most 128 characters. */
const DATABASE_ID = /^[A-Za-z0-9._~-]{1,128}$/;

export function isValidDatabaseId(id: string): boolean {
  return DATABASE_ID.test(id);
}

export class CentralDatabases {
  readonly #resolve: SyncDeps['resolveDatabase'];
  readonly #open: (path: string) => SyncEngine;
  readonly #dbs = new Map<string, Open>();
  #disposed = false;

  constructor(resolve: SyncDeps['resolveDatabase'], opts: CentralDatabasesOptions = {}) {
    this.#resolve = resolve;
    this.#open = opts.open ?? ((path) => openSyncDatabase(path));
  }

  /** Resolves and opens `databaseId`; throws SyncError database_not_found / sync_disabled. */
  async get(databaseId: string): Promise<CentralDatabase> {
    if (this.#disposed) throw new SyncError('server_busy', 'the sync service is shutting down');
    if (!isValidDatabaseId(databaseId)) throw new SyncError('database_not_found', `No database ${JSON.stringify(databaseId)}`);
    const target = await this.#resolve(databaseId);
    if (target === undefined) throw new SyncError('database_not_found', `No database ${databaseId}`);
    if (!target.enabled) throw new SyncError('sync_disabled', `Sync is disabled for database ${databaseId}`);
    return { id: databaseId, ...this.#opened(databaseId, target.path), target };
  }

  /** The already-open engine of a database, if any (no resolution). */
  peek(databaseId: string): SyncEngine | undefined {
    return this.#dbs.get(databaseId)?.engine;
  }

  #opened(id: string, path: string): Open {
    const cur = this.#dbs.get(id);
    if (cur !== undefined && cur.path === path) return cur;
    if (cur !== undefined) {
      this.#dbs.delete(id);
      cur.engine.close();
    }
    const engine = this.#open(path);
    const open = { path, engine, peers: new PeerState(engine) };
    this.#dbs.set(id, open);
    return open;
  }

  /** Closes every open database. */
  dispose(): void {
    this.#disposed = true;
    for (const db of this.#dbs.values()) {
      try {
        db.engine.close();
      } catch {
        // already closed
      }
    }
    this.#dbs.clear();
  }
}
