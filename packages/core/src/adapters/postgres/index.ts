/**
 * `@offsync/core/postgres`: the CRDT sync engine over a PostgreSQL database (async), with the
 * same semantics and wire changes as the SQLite engine. The server serves POSTGRES databases on it
 * (packages/api `pg-central.ts`).
 *
 * @example
 * const engine = await createPgSyncEngine({ pool });
 * await engine.init('todos');
 * for await (const ch of engine.changes({ after })) …
 */
import { randomBytes } from 'node:crypto';
import type { Client, Pool, PoolClient } from 'pg';
import { ConnSource } from './conn.ts';
import { openPgSyncEngine } from './engine.ts';
import type { PgSyncEngine } from './engine.ts';

export { PgSyncEngine } from './engine.ts';
export type { PgFeedRequest } from './engine.ts';
export type { PgFeedOptions } from './feed.ts';
export type { PgConn } from './conn.ts';
export type { PgApplyOptions, PgRowSecurity } from './merge.ts';
export { APPLYING_SETTING, changesChannel } from './ddl.ts';
export { classify } from './introspect.ts';
export { sqliteDdlFor, sqliteLiteral, sqliteTypeWord } from './device-ddl.ts';
export type { ValueClass } from './introspect.ts';

export interface PgSyncEngineOptions {
  pool?: Pool;
  client?: Client | PoolClient;
  /** Schema of the OffSync metadata (default `offsync`). */
  schema?: string;
  /** Schema of the synced tables (default `public`). */
  tablesSchema?: string;
  now?: () => number;
  randomBytes?: (n: number) => Uint8Array;
}

/** Opens the engine on a pool (one connection per operation) or on one client (operations serialised). */
export async function createPgSyncEngine(opts: PgSyncEngineOptions): Promise<PgSyncEngine> {
  const src = opts.pool !== undefined ? new ConnSource({ pool: opts.pool }) : opts.client !== undefined ? new ConnSource({ client: opts.client }) : undefined;
  if (src === undefined) throw new TypeError('createPgSyncEngine needs a pool or a client');
  const random = opts.randomBytes ?? ((n: number) => new Uint8Array(randomBytes(n)));
  return openPgSyncEngine(src, opts.schema ?? 'offsync', opts.tablesSchema ?? 'public', opts.now ?? Date.now, random);
}
