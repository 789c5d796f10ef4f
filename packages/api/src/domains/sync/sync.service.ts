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
import type { CentralWorkers } from './central-worker/pool.ts';
import type { PeerRecord, SyncStatus, VersionWindow } from './peer-state.ts';
import { ownerKeyOf } from './site-owners.ts';
import { rejectionLogOf } from './rejection-log.ts';
import type { ConflictLogOptions } from './conflict-log.ts';
import type { RejectionLog } from './rejection-log.ts';
import { runHook } from './sync-deps.ts';
import type { Generation, Principal, SyncDeps, Traffic } from './sync-deps.ts';
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

/** What a merge answers (central-worker/jobs.ts `UploadOutcome`, the same for both kinds of central database). */
export type UploadResult = UploadOutcome;

export interface DownloadOptions {
  /** Inclusive upper bound of the package (artifact downloads). */
  to?: Cursor | undefined;
  /** Pages to return at most (default 1). */
  maxPages?: number;
  /** Override of the page size. */
  pageBytes?: number;
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
   * Resolves `databaseId` once for a request (either back-end): the transports pass the result
   * to every further call of that request. Throws SyncError database_not_found / sync_disabled /
   * database_unavailable / database_file_missing.
   */
  open(databaseId: string): Promise<Central> {
    return this.databases.open(databaseId);
  }

  async #central(db: Central | string): Promise<Central> {
    return typeof db === 'string' ? this.databases.open(db) : db;
  }

  /** `SyncDeps.authenticate`: a Bearer credential for `databaseId` → Principal, null = refused (GraphQL sync fields). */
  authenticate(databaseId: string, credential: string | undefined): Promise<Principal | null> {
    return this.#deps.authenticate(databaseId, credential);
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

  /** Traffic counters only (no device update): for streams that report bytes in batches. */
  recordTraffic(db: Central, siteId: string, traffic: Traffic): void {
    if (traffic.uploadBytes > 0 || traffic.downloadBytes > 0) runHook(this.#deps, 'recordTraffic', () => this.#deps.recordTraffic(db.id, siteId, traffic));
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
