/**
 * The production engine contract (docs/ARCHITECTURE.md "Central engines"): what every storage
 * back-end of a synced database offers, async — the PostgreSQL engine (`PgSyncEngine`
 * implements it directly) and the SQLite engine (through `asyncSqliteEngine`, which keeps the
 * engine's synchronous fast path inside). Names are the ones both engines already use.
 */
import type { PayloadDecodeLimits } from '../codec/payload.ts';
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change, SqlValue } from '../types.ts';
import type { ApplyResult, RowWrite } from './apply.ts';
import type { Cursor } from './extract.ts';

/** A change-feed request every engine understands. */
export interface ContractFeedRequest {
  /** Exclusive lower bound; default: everything. */
  after?: Cursor;
  /** Leave out changes that originated at this site (a peer never receives its own changes). */
  excludeSiteId?: Uint8Array;
  /** Only this database's own changes (site 0): what a device uploads. */
  localOnly?: boolean;
  /** Only these tables (default: all synced tables). */
  tables?: readonly string[];
  /** Row visibility (RLS SELECT): false drops every change of the row; `row` is undefined for a deleted row. */
  rowFilter?: (table: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>> | undefined) => boolean;
}

/** Merge options every engine understands. */
export interface ContractApplyOptions {
  /** The whole-row authorisation hook: called before every base-table write with the row's key and values; throw to refuse the batch. */
  authorize?: (write: RowWrite) => void;
  /** This database is authoritative (the server): a row that cannot be merged is rejected and compensated alone. */
  rejectRows?: boolean;
}

export interface ContractPayloadOptions extends ContractApplyOptions {
  /** Refuse payloads whose schema hash is not in this database's history (default true); hash 0 is always accepted. */
  strictSchemaHash?: boolean;
  limits?: PayloadDecodeLimits;
}

export interface SyncEngineContract {
  /** Storage back-end. */
  readonly kind: 'sqlite' | 'postgres';
  /** This database's 16-byte site id. */
  readonly siteId: Uint8Array;
  /** Initialises `table` for sync (§P6 checks, clocks, triggers, back-fill of existing rows); idempotent for the same algorithm. */
  init(table: string, algorithm?: string, flags?: number): Promise<void>;
  /** Stops syncing `table` and removes its metadata (the rows stay). */
  cleanup(table: string): Promise<void>;
  /**
   * Starts a schema change of `table` (§P6 "Alteration"): its change tracking is removed so the
   * operator's ALTER TABLE is not recorded as changes. Everything until {@link commitAlter} is one
   * transaction of this engine's database; only one alter at a time on PostgreSQL.
   */
  beginAlter(table: string): Promise<void>;
  /**
   * Finishes the schema change: clocks of dropped columns removed, new columns given ids and
   * back-filled as local changes, tracking re-created, both schema hashes recorded (old ones stay
   * known). A changed primary key is refused (SCHEMA_INVALID); on any error the whole alter rolls
   * back and the table stays synced as before.
   */
  commitAlter(table: string): Promise<void>;
  /** Column-list schema hash (§P6, 0.9.118 and 1.x) of the synced tables. */
  schemaHash(): Promise<bigint>;
  /** DDL-text schema hash (§P6, 0.8.x – 0.9.99) of the synced tables. */
  ddlSchemaHash(): Promise<bigint>;
  /** Every schema hash this database has had or accepted (both variants, remembered peers'). */
  knownSchemaHashes(): Promise<bigint[]>;
  /** Adds a hash to the history (idempotent); `kind` as stored: 'column-list', 'ddl-text', 'peer' (default). */
  rememberSchemaHash(hash: bigint, kind?: string): Promise<void>;
  /** The current db_version (Lamport clock). */
  dbVersion(): Promise<number>;
  /** Changes after a cursor in (db_version, seq) order. */
  changes(req?: ContractFeedRequest): AsyncIterable<Change>;
  /** Decodes and merges a payload atomically, checking its schema hash first (§P6). */
  applyPayload(payload: Uint8Array, opts?: ContractPayloadOptions): Promise<ApplyResult & { schemaHash: bigint }>;
  /** Merges a batch atomically: all of it or none of it (except rows rejected alone with `rejectRows`). */
  applyChanges(changes: Iterable<Change>, opts?: ContractApplyOptions): Promise<ApplyResult>;
  /** Releases what the engine holds: an open alter is rolled back; the SQLite adapter closes its database, the PostgreSQL engine leaves the caller's pool or client open. */
  close(): Promise<void>;
}

/** The refusal of an alter that changed a synced table's primary key (both engines, same message). */
export function primaryKeyChangeError(table: string, before: readonly string[], after: readonly string[]): CoreError {
  return new CoreError(
    CoreErrorCode.SCHEMA_INVALID,
    `OffSync: the primary key of synced table ${table} cannot change (${before.join(', ')} -> ${after.join(', ') || 'none'}); the alter was rolled back. Create a new table and copy the rows instead`,
    { details: { table, before: [...before], after: [...after] } },
  );
}
