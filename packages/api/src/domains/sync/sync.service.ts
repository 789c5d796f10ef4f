/**
 * Transport-independent sync operations, shared by the HTTP protocol (all generations) and the
 * GraphQL `pushChanges` / `pullChanges` of OffSync's own client.
 *
 * - `upload` merges one payload atomically together with the site's bookkeeping (peer-state.ts):
 *   everything or nothing; a refused payload is never acknowledged.
 * - `download` streams the change feed after a cursor into pages (download-pages.ts).
 */
import { CentralDatabases } from './central-databases.ts';
import type { CentralDatabase } from './central-databases.ts';
import type { Central, CentralEnv } from './central.ts';
import type { Cursor, ScanOptions, ScanResult } from './download-pages.ts';
import type { UploadOutcome } from './central-worker/jobs.ts';
import { CentralWorkers } from './central-worker/pool.ts';
import { PgCentral } from './pg-central.ts';
import type { PgCentralSettings } from './pg-central.ts';
import type { PeerRecord, SyncStatus, VersionWindow } from './peer-state.ts';
import { ownerKeyOf } from './site-owners.ts';
import { rejectionLogOf } from './rejection-log.ts';
import type { ConflictLogOptions } from './conflict-log.ts';
import type { RejectionLog } from './rejection-log.ts';
import { runHook } from './sync-deps.ts';
import type { DatabaseTarget, Generation, Principal, PushTokenRegistration, SyncDeps, Traffic } from './sync-deps.ts';
import { SyncError, toSyncError } from './sync-errors.ts';
import type { PayloadDecodeLimits } from '@offsync/core';

export interface SyncServiceOptions {
  /** Target encoded size of one download page (default 5 MB). */
  pageBytes?: number;
  /**
   * Budgets of one uploaded payload, enforced while decoding (docs/PROTOCOL.md "Limits"):
   * compressed/expanded size, rows, per-value size, clock bound. Defaults: `DEFAULT_PAYLOAD_LIMITS`
   * of @offsync/core (48 MiB, 64 MiB, 1,000,000 rows, 32 MiB, 2^48-1).
   */
  limits?: PayloadDecodeLimits;
  /** Shorthand for `limits.maxExpandedSize` (wins over it when both are set). */
  maxExpandedBytes?: number;
  /** Clock of rejection-log entries (tests). */
  now?: () => number;
  /** Retention of the conflict log (conflict-log.ts; default 100,000 entries / 30 days per database). */
  conflictLog?: ConflictLogOptions;
  /**
   * Central workers (central-worker/pool.ts): with them, and deps that give RLS as data
   * (`policiesOf`), every SQLite merge and every long download runs off the event loop.
   */
  workers?: CentralWorkers;
}

/** How {@link createSyncService} builds the service, its central databases and its workers. */
export interface SyncServiceSetup extends Pick<SyncServiceOptions, 'pageBytes' | 'conflictLog'> {
  /** Connections per POSTGRES central database on this node (pg-central.ts; default 4). */
  postgresPoolSize?: number;
  /** LISTEN for writes of other programs to POSTGRES databases and announce them (default true). */
  postgresListen?: boolean;
  /**
   * Worker threads that run SQLite merges and long downloads off the event loop (central-worker/;
   * default min(2, cores); 0 runs them on the main thread). Used when the deps give RLS as data.
   */
  centralWorkers?: number;
}

/**
 * The one sync service of a server (the composition root, app.ts, calls this once and hands the
 * result to the HTTP protocol, the GraphQL context and graphql-ws): its registry of central
 * databases (one owner per database) and, when the deps give RLS as data, its central workers.
 * `dispose()` closes both.
 */
export function createSyncService(deps: SyncDeps, setup: SyncServiceSetup = {}): SyncService {
  const pool = setup.postgresPoolSize;
  const workers = setup.centralWorkers === 0 || deps.policiesOf === undefined ? undefined : new CentralWorkers(setup.centralWorkers === undefined ? {} : { size: setup.centralWorkers });
  const databases = new CentralDatabases(deps.resolveDatabase, {
    ...(pool === undefined ? {} : { openPostgres: (s: PgCentralSettings) => PgCentral.open(s, { poolSize: pool }) }),
    ...(setup.postgresListen === undefined ? {} : { listenPostgres: setup.postgresListen }),
    ...(workers === undefined ? {} : { workers }),
  });
  return new SyncService(deps, databases, {
    ...(workers === undefined ? {} : { workers }),
    ...(setup.pageBytes === undefined ? {} : { pageBytes: setup.pageBytes }),
    ...(setup.conflictLog === undefined ? {} : { conflictLog: setup.conflictLog }),
  });
}

/**
 * A database looked up once for one request ({@link SyncService.resolve}): the transports pass it
 * to `authenticate` and `open`, so the control plane answers once per request.
 */
export interface ResolvedDatabase {
  readonly id: string;
  readonly target: DatabaseTarget;
}

/** What a merge answers (central-worker/jobs.ts `UploadOutcome`, the same for both kinds of central database). */
export type UploadResult = UploadOutcome;

export interface DownloadOptions {
  /** Inclusive upper bound of the package (artifact downloads). */
  to?: Cursor | undefined;
  /** Pages to return at most (default 1). */
  maxPages?: number;
  /** Override of the page size. */
  pageBytes?: number;
  /** Slow start: budget of the first page, then ×`pageGrowth` per page up to the page size (download-pages.ts). */
  firstPageBytes?: number;
  pageGrowth?: number;
  /** Encode every page (default true); false only plans page boundaries. */
  payloads?: boolean;
  /** With payloads false: still encode a single complete page up to this size (G3 inline). */
  inlineUpTo?: number;
  /** Schema hash to stamp; default: the device's last upload hash, else the generation's canonical hash. */
  schemaHash?: bigint;
  generation?: Generation;
}

export interface DownloadResult extends ScanResult {
  schemaHash: bigint;
}

const SITE_ID = /^[0-9a-fA-F]{32}$/;

export { checkWindow, MAX_WINDOW_VERSION } from './central-worker/jobs.ts';

/** Validates a site id (32 hex digits) and returns it lower-cased. */
export function normaliseSiteId(site: string): string {
  if (!SITE_ID.test(site)) throw new SyncError('invalid_site_id', 'site id must be 32 hexadecimal digits');
  return site.toLowerCase();
}

export class SyncService {
  readonly databases: CentralDatabases;
  readonly #deps: SyncDeps;
  readonly pageBytes: number;
  /** What a central database is lent for each operation (central.ts). */
  readonly #env: CentralEnv;
  /** The central workers merges run in, when enabled. */
  readonly workers: CentralWorkers | undefined;

  constructor(deps: SyncDeps, databases: CentralDatabases = new CentralDatabases(deps.resolveDatabase), opts: SyncServiceOptions = {}) {
    this.#deps = deps;
    this.databases = databases;
    this.pageBytes = opts.pageBytes ?? 5_000_000;
    this.workers = opts.workers;
    this.#env = {
      deps,
      workers: opts.workers,
      limits: { ...opts.limits, ...(opts.maxExpandedBytes === undefined ? {} : { maxExpandedSize: opts.maxExpandedBytes }) },
      conflictLog: opts.conflictLog,
      now: opts.now ?? Date.now,
    };
    // Writes of other programs to a POSTGRES database are server writes: announced like a merge.
    databases.onExternalWrite((id, central, tables) => {
      runHook(this.#deps, 'onChangesMerged', async () => this.#deps.onChangesMerged(id, { originSiteId: '', tables, dbVersion: await central.dbVersion() }));
    });
  }

  /**
   * Looks `databaseId` up (one control-plane resolution): the transports resolve once per
   * request and pass the result to {@link authenticate} and {@link open}. Throws SyncError
   * database_not_found.
   */
  async resolve(databaseId: string): Promise<ResolvedDatabase> {
    return { id: databaseId, target: await this.databases.resolve(databaseId) };
  }

  /**
   * Opens a database (either back-end) for a request — as resolved by {@link resolve}, or by id
   * (one look-up) — the transports pass the result to every further call of that request.
   * Throws SyncError database_not_found / sync_disabled / database_unavailable / database_file_missing.
   */
  open(db: ResolvedDatabase | string): Promise<Central> {
    return typeof db === 'string' ? this.databases.open(db) : this.databases.openTarget(db.id, db.target);
  }

  /** Closes every central database and the central workers. */
  async dispose(): Promise<void> {
    await this.databases.dispose();
    await this.workers?.dispose();
  }

  async #central(db: Central | string): Promise<Central> {
    return typeof db === 'string' ? this.databases.open(db) : db;
  }

  /**
   * `SyncDeps.authenticate`: a Bearer credential for a database → Principal, null = refused.
   * Given a {@link ResolvedDatabase} the database is not looked up again; given an id (graphql-ws
   * connections, which open nothing) it is. Throws SyncError database_not_found.
   */
  authenticate(db: ResolvedDatabase | string, credential: string | undefined): Promise<Principal | null> {
    return typeof db === 'string' ? this.#deps.authenticate(db, credential) : this.#deps.authenticate(db.id, credential, db.target);
  }

  /** `PUT …/notifications/tokens`: the push token of a device (its site already claimed by the caller). */
  async registerPushToken(db: Central, token: PushTokenRegistration): Promise<void> {
    await this.#deps.registerPushToken(db.id, token);
  }

  /** Where the transports report failures (a 500's cause): `SyncDeps.logError`, default console.error. */
  logError(message: string, error: unknown): void {
    (this.#deps.logError ?? ((m, e) => console.error(m, e)))(message, error);
  }

  /**
   * Device registry and traffic counters for transports other than the HTTP protocol (the
   * GraphQL sync fields): registers/updates the device and counts the bytes as transferred.
   */
  recordActivity(db: Central, siteId: string, principal: Principal, traffic: Traffic): void {
    const site = normaliseSiteId(siteId);
    this.recordDevice(db, site, principal, { clientVersion: 'offsync-graphql', generation: 'G3' });
    this.recordTraffic(db, site, traffic);
  }

  /**
   * The device registry hook (fire-and-forget) for a request of `site` (normalised): its schema
   * hash is the one given, else the one of its last upload.
   */
  recordDevice(db: Central, site: string, principal: Principal, seen: { clientVersion: string; generation: Generation; schemaHash?: string | undefined }): void {
    runHook(this.#deps, 'recordDevice', async () => {
      const schemaHash = seen.schemaHash ?? (await this.peer(db, site))?.lastSchemaHash ?? null;
      await this.#deps.recordDevice(db.id, { siteId: site, principal, clientVersion: seen.clientVersion, generation: seen.generation, schemaHash });
    });
  }

  /** Traffic counters only (no device update): for streams that report bytes in batches, and artifact transfers (by database id). */
  recordTraffic(db: Central | string, siteId: string, traffic: Traffic): void {
    const id = typeof db === 'string' ? db : db.id;
    if (traffic.uploadBytes > 0 || traffic.downloadBytes > 0) runHook(this.#deps, 'recordTraffic', () => this.#deps.recordTraffic(id, siteId, traffic));
  }

  /** `claim`, synchronously, on a SQLite central database. */
  claimSite(db: CentralDatabase, siteId: string, principal: Principal): string {
    const { site, key } = siteAndOwner(siteId, principal);
    if (db.claimSiteNow(site, key) !== key) throw siteTaken();
    return site;
  }

  /**
   * Device identity (docs/PROTOCOL.md "Device identity"): claims `siteId` for `principal` on
   * first use, or checks that it already belongs to it. Every transport calls this before doing
   * anything for the site (HTTP handler, GraphQL sync fields, push-token registration). Throws
   * SyncError invalid_site_id / site_forbidden (nothing changed); returns the normalised site id.
   */
  async claim(db: Central, siteId: string, principal: Principal): Promise<string> {
    const { site, key } = siteAndOwner(siteId, principal);
    if ((await db.claimSite(site, key)) !== key) throw siteTaken();
    return site;
  }

  /** Upload bookkeeping of a site (SyncStatus). */
  async status(db: Central | string, siteId: string): Promise<SyncStatus> {
    const d = await this.#central(db);
    return d.status(normaliseSiteId(siteId));
  }

  /** The upload record of a site, if it uploaded. */
  async peer(db: Central | string, siteId: string): Promise<PeerRecord | undefined> {
    const d = await this.#central(db);
    return d.peer(normaliseSiteId(siteId));
  }

  /**
   * Merges `payload` from `siteId`, recording `window` (device version space; undefined for
   * G1) in the same transaction. An array is the chunks of one G3 batch, merged as one payload
   * (`engine.applyPayloads`). Throws SyncError (invalid_payload, schema_hash_unknown,
   * unknown_table, unknown_column, forbidden, apply_failed, payload_too_large) with nothing changed.
   */
  async upload(db: Central | string, siteId: string, payload: Uint8Array | Uint8Array[], window: VersionWindow | undefined, principal: Principal): Promise<UploadResult> {
    const d = await this.#central(db);
    const site = normaliseSiteId(siteId);
    let out: UploadResult;
    try {
      out = await d.upload({ site, payload, window, principal }, this.#env);
    } catch (e) {
      throw toSyncError(e);
    }
    this.#announce(d.id, site, out);
    return out;
  }

  /** After a committed merge: live subscribers, push and rejection hooks learn of it. */
  #announce(id: string, site: string, out: UploadResult): void {
    if (out.applied > 0 || out.rejected.length > 0) {
      // Compensations are server writes too: the rejecting device must hear of them promptly.
      const event = { originSiteId: out.applied > 0 ? site : '', tables: out.tables, dbVersion: out.dbVersion };
      runHook(this.#deps, 'onChangesMerged', () => this.#deps.onChangesMerged(id, event));
    }
    if (out.rejected.length > 0 && this.#deps.onChangesRejected !== undefined) {
      const hook = this.#deps.onChangesRejected.bind(this.#deps);
      runHook(this.#deps, 'onChangesRejected', () => hook(id, out.rejected));
    }
  }

  /**
   * Announces a server-side write made outside a merge (GraphQL `restoreConflictValue`) the way
   * a merge is announced: live subscribers and push learn of it (origin '' = the server).
   */
  announceWrite(db: CentralDatabase, tables: string[]): void {
    const event = { originSiteId: '', tables, dbVersion: db.engine.dbVersion() };
    runHook(this.#deps, 'onChangesMerged', () => this.#deps.onChangesMerged(db.id, event));
  }

  /** The rejection log of a database (GraphQL `Database.rejections`; kept in the SQLite central file). */
  async rejections(db: CentralDatabase | string): Promise<RejectionLog> {
    return rejectionLogOf((typeof db === 'string' ? await this.databases.get(db) : db).engine);
  }

  /** The schema hash to stamp into `siteId`'s downloads (docs/PROTOCOL.md §P6). */
  stamp(d: Central, siteId: string, generation: Generation | undefined): Promise<bigint> {
    return d.stamp(siteId, generation);
  }

  /**
   * Changes after `after` (exclusive, server version space) for `siteId`, without its own
   * changes, filtered by the caller's RLS row filter, cut into pages.
   */
  async download(db: Central | string, siteId: string, after: Cursor, principal: Principal, opts: DownloadOptions = {}): Promise<DownloadResult> {
    const d = await this.#central(db);
    const site = normaliseSiteId(siteId);
    try {
      const schemaHash = opts.schemaHash ?? (await d.stamp(site, opts.generation));
      const scan = await d.download({ site, after, principal, opts: this.#scanOptions(opts, schemaHash) }, this.#env);
      return { ...scan, schemaHash };
    } catch (e) {
      throw toSyncError(e);
    }
  }

  /** Page cutting of a download (download-pages.ts) with this service's defaults. */
  #scanOptions(opts: DownloadOptions, schemaHash: bigint): ScanOptions {
    return {
      pageBytes: opts.pageBytes ?? this.pageBytes,
      maxPages: opts.maxPages ?? 1,
      firstPageBytes: opts.firstPageBytes,
      pageGrowth: opts.pageGrowth,
      to: opts.to,
      schemaHash,
      payloads: opts.payloads ?? true,
      ...(opts.inlineUpTo === undefined ? {} : { inlineUpTo: opts.inlineUpTo }),
    };
  }
}

function siteAndOwner(siteId: string, principal: Principal): { site: string; key: string } {
  const site = normaliseSiteId(siteId);
  const key = ownerKeyOf(principal);
  if (key === undefined) throw new SyncError('site_forbidden', 'this credential has no user id and cannot own a site');
  return { site, key };
}

const siteTaken = (): SyncError => new SyncError('site_forbidden', 'this site id belongs to another user or credential');
