/**
 * `resolveDatabase` over the control plane: database id → central SQLite file
 * (`<dataDir>/databases/<id>.sqlite`, the file `createDatabase` made) or, for POSTGRES databases,
 * the decrypted connection settings of the customer database; OffSync enabled flag and the
 * configured schema-hash mode. Answers are cached briefly (the control plane publishes no
 * enable/disable/delete events), so a switch takes effect within `ttlMs`.
 */
import { ApiError } from '../../../errors.ts';
import type { Services } from '../../../services.ts';
import { sqliteDatabasePath } from '../../databases/databases.service.ts';
import type { DatabaseTarget, SchemaHashMode } from '../sync-deps.ts';
import { createPromiseCache } from './promise-cache.ts';

export interface DatabaseResolverOptions {
  dataDir: string;
  schemaHashMode: SchemaHashMode;
  /** Cache lifetime of one answer (default 2 s; 0 disables caching). */
  ttlMs: number;
  now: () => number;
}

export interface DatabaseResolver {
  resolve(databaseId: string): Promise<DatabaseTarget | undefined>;
  /** Forget the cached answer for one database (or all). */
  invalidate(databaseId?: string): void;
}

export function createDatabaseResolver(services: Services, opts: DatabaseResolverOptions): DatabaseResolver {
  const cache = createPromiseCache<DatabaseTarget | undefined>({ ttlMs: opts.ttlMs, now: opts.now });

  async function load(databaseId: string): Promise<DatabaseTarget | undefined> {
    try {
      const db = await services.databases.getDatabase(databaseId);
      // POSTGRES: the customer database itself is the central database (pg-central.ts).
      if (db.kind === 'POSTGRES') {
        const postgres = services.databases.pgSettings(db);
        const rlsMode = db.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS';
        return { path: '', postgres, rlsMode, enabled: db.offSyncEnabled, schemaHashMode: opts.schemaHashMode, conflictLog: db.conflictLog };
      }
      const path = sqliteDatabasePath(opts.dataDir, db.id);
      // The identity the file must carry (stamped now into files older than identities).
      const identity = db.fileIdentity ?? (await services.databases.adoptFileIdentity(db));
      return { path, enabled: db.offSyncEnabled, schemaHashMode: opts.schemaHashMode, identity, synchronous: services.deps.centralSynchronous ?? 'FULL', conflictLog: db.conflictLog };
    } catch (e) {
      if (e instanceof ApiError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  return {
    resolve(databaseId) {
      return cache.get(databaseId, load);
    },
    invalidate(databaseId) {
      cache.invalidate(databaseId);
    },
  };
}
