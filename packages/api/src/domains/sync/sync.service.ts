/**
 * Transport-independent sync operations, shared by the HTTP protocol (all generations) and the
 * GraphQL `pushChanges` / `pullChanges` of OffSync's own client.
 *
 * - `upload` merges one payload atomically together with the site's bookkeeping (peer-state.ts):
 *   everything or nothing; a refused payload is never acknowledged.
 * - `download` streams the change feed after a cursor into pages (download-pages.ts).
 */
import { CentralDatabases } from './central-databases.ts';
import type { Central, CentralDatabase, PgCentralDatabase } from './central-databases.ts';
import type { Cursor, ScanOptions, ScanResult } from './download-pages.ts';
import { checkWindow, mergeUpload, rejectionInput, scanDownload } from './central-worker/jobs.ts';
import type { ScanJob, UploadJob, UploadOutcome } from './central-worker/jobs.ts';
import type { CentralWorkers } from './central-worker/pool.ts';
import type { CentralRef } from './central-worker/protocol.ts';
import type { PeerRecord, SyncStatus, VersionWindow } from './peer-state.ts';
import { ownerKeyOf, siteOwnersOf } from './site-owners.ts';
import { rejectionLogOf } from './rejection-log.ts';
import type { ConflictLogOptions } from './conflict-log.ts';
import type { RejectionLog } from './rejection-log.ts';
import { principalKey, runHook } from './sync-deps.ts';
import type { Generation, Principal, SyncDeps, Traffic } from './sync-deps.ts';
import { SyncError, toSyncError } from './sync-errors.ts';
import type { PayloadDecodeLimits } from '@offsync/core';
import type { PgRowSecurity } from '@offsync/core/postgres';

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

/** A download further behind than this many versions filters rows by RLS in bulk (rls-sql.ts). */
const BULK_FILTER_VERSIONS = 1000;

export class SyncService {
  readonly databases: CentralDatabases;
  readonly #deps: SyncDeps;
  readonly pageBytes: number;
  readonly #limits: PayloadDecodeLimits;
  readonly #now: () => number;
  readonly #conflictLog: ConflictLogOptions | undefined;
  readonly #workers: CentralWorkers | undefined;
  /** The central workers merges run in, when enabled. */
  readonly workers: CentralWorkers | undefined;

  constructor(deps: SyncDeps, databases: CentralDatabases = new CentralDatabases(deps.resolveDatabase), opts: SyncServiceOptions = {}) {
    this.#deps = deps;
    this.databases = databases;
    this.pageBytes = opts.pageBytes ?? 5_000_000;
    this.#limits = { ...opts.limits, ...(opts.maxExpandedBytes === undefined ? {} : { maxExpandedSize: opts.maxExpandedBytes }) };
    this.#now = opts.now ?? Date.now;
    this.#conflictLog = opts.conflictLog;
    this.#workers = opts.workers;
    this.workers = opts.workers;
    // Writes of other programs to a POSTGRES database are server writes: announced like a merge.
    databases.onExternalWrite((id, central, tables) => {
      runHook(this.#deps, 'onChangesMerged', async () => this.#deps.onChangesMerged(id, { originSiteId: '', tables, dbVersion: await central.dbVersion() }));
    });
  }

  async #db(db: CentralDatabase | string): Promise<CentralDatabase> {
    return typeof db === 'string' ? this.databases.get(db) : db;
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

  /**
   * Device identity (docs/PROTOCOL.md "Device identity"): claims `siteId` for `principal` on
   * first use, or checks that it already belongs to it. Every transport calls this before doing
   * anything for the site (HTTP handler, GraphQL sync fields, push-token registration). Throws
   * SyncError invalid_site_id / site_forbidden (nothing changed); returns the normalised site id.
   */
  claimSite(db: CentralDatabase, siteId: string, principal: Principal): string {
    const { site, key } = siteAndOwner(siteId, principal);
    if (siteOwnersOf(db.engine).claim(site, key) !== key) throw siteTaken();
    return site;
  }

  /** `claimSite` for a central database of either kind. */
  async claim(db: Central, siteId: string, principal: Principal): Promise<string> {
    if (db.kind === 'sqlite') return this.claimSite(db, siteId, principal);
    const { site, key } = siteAndOwner(siteId, principal);
    if ((await db.central.claimSite(site, key)) !== key) throw siteTaken();
    return site;
  }

  /** Upload bookkeeping of a site (SyncStatus). */
  async status(db: Central | string, siteId: string): Promise<SyncStatus> {
    const d = await this.#central(db);
    const site = normaliseSiteId(siteId);
    return d.kind === 'sqlite' ? d.peers.status(site) : d.central.status(site);
  }

  /** The upload record of a site, if it uploaded. */
  async peer(db: Central | string, siteId: string): Promise<PeerRecord | undefined> {
    const d = await this.#central(db);
    const site = normaliseSiteId(siteId);
    return d.kind === 'sqlite' ? d.peers.get(site) : d.central.peer(site);
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
    if (d.kind === 'postgres') return this.#uploadPg(d, site, payload, window, principal);
    const job: UploadJob = {
      site,
      payload,
      window,
      principal,
      audience: principalKey(principal),
      strict: d.target.schemaHashMode === 'strict',
      limits: this.#limits,
      // Writes that lost to concurrent ones (conflict log), unless the database turned it off.
      conflictLog: d.target.conflictLog !== false,
      conflictLogOptions: this.#conflictLog,
      now: this.#now(),
    };
    let out: UploadResult;
    try {
      const policiesOf = this.#deps.policiesOf?.bind(this.#deps);
      if (this.#workers !== undefined && policiesOf !== undefined) {
        // Off the event loop: decode, RLS, merge and bookkeeping in the file's central worker.
        const policies = await policiesOf(d.id, d.engine);
        out = await this.#workers.run<UploadResult>({ kind: 'upload', db: refOf(d), job, policies });
      } else {
        const judge = await this.#deps.judgeFor(d.id, principal, d.engine);
        // What the uploader may hold: a device left holding a row it may not see gets a removal.
        const canHold = judge === undefined ? undefined : await this.#deps.rowFilterFor(d.id, principal, d.engine);
        const visibilityColumns = await this.#deps.visibilityFor?.(d.id, d.engine);
        // One synchronous section: merge + bookkeeping commit together, in one server order.
        out = mergeUpload(d.engine, d.peers, job, { judge, canHold, visibilityColumns });
      }
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
   * POSTGRES: the merge and the site's bookkeeping in one PostgreSQL transaction (pg-central.ts);
   * under ENFORCE a per-user credential's writes run under its role and claims, so the
   * database's own policies decide; a refused row is rolled back alone and compensated.
   */
  async #uploadPg(d: PgCentralDatabase, site: string, payload: Uint8Array | Uint8Array[], window: VersionWindow | undefined, principal: Principal): Promise<UploadResult> {
    const rowSecurity = await pgRowSecurityFor(d, principal);
    let out: UploadResult;
    try {
      const r = await d.central.merge({
        rowSecurity,
        site,
        payloads: Array.isArray(payload) ? payload : [payload],
        window,
        strict: d.target.schemaHashMode === 'strict',
        limits: this.#limits,
        checkWindow: (last) => {
          if (window !== undefined) checkWindow(window, last);
        },
      });
      const at = new Date(this.#now());
      // Reported to the device, metrics and subscriptions; not kept in a queryable log (id 0) on POSTGRES yet.
      out = { ...r, rejected: r.rejected.map((x) => ({ ...rejectionInput(x, site, principal), id: 0, at })) };
    } catch (e) {
      throw toSyncError(e);
    }
    this.#announce(d.id, site, out);
    return out;
  }

  /**
   * Announces a server-side write made outside a merge (GraphQL `restoreConflictValue`) the way
   * a merge is announced: live subscribers and push learn of it (origin '' = the server).
   */
  announceWrite(db: CentralDatabase, tables: string[]): void {
    const event = { originSiteId: '', tables, dbVersion: db.engine.dbVersion() };
    runHook(this.#deps, 'onChangesMerged', () => this.#deps.onChangesMerged(db.id, event));
  }

  /** The rejection log of a database (GraphQL `Database.rejections`). */
  async rejections(db: CentralDatabase | string): Promise<RejectionLog> {
    return rejectionLogOf((await this.#db(db)).engine);
  }

  /** `stampFor` for a central database of either kind. */
  async stamp(d: Central, siteId: string, generation: Generation | undefined): Promise<bigint> {
    if (d.kind === 'sqlite') return this.stampFor(d, siteId, generation);
    const last = (await d.central.peer(siteId))?.lastSchemaHash;
    if (last !== null && last !== undefined) return BigInt(last);
    // No SQLite DDL text exists for a PostgreSQL table: every generation gets the column-list hash.
    return d.central.canonicalSchemaHash();
  }

  /** The schema hash to stamp into `siteId`'s downloads (docs/PROTOCOL.md §P6). */
  stampFor(d: CentralDatabase, siteId: string, generation: Generation | undefined): bigint {
    const last = d.peers.get(siteId)?.lastSchemaHash;
    if (last !== null && last !== undefined) return BigInt(last);
    return generation === 'G1' || generation === 'G2a' ? d.engine.ddlSchemaHash() : d.engine.schemaHash();
  }

  /**
   * Changes after `after` (exclusive, server version space) for `siteId`, without its own
   * changes, filtered by the caller's RLS row filter, cut into pages.
   */
  async download(db: Central | string, siteId: string, after: Cursor, principal: Principal, opts: DownloadOptions = {}): Promise<DownloadResult> {
    const d = await this.#central(db);
    const site = normaliseSiteId(siteId);
    if (d.kind === 'postgres') return this.#downloadPg(d, site, after, principal, opts);
    // Far behind (initial sync): RLS SELECT as one SQL query per table instead of one evaluation per row.
    const bulk = d.engine.dbVersion() - after.dbVersion > BULK_FILTER_VERSIONS;
    const schemaHash = opts.schemaHash ?? this.stampFor(d, site, opts.generation);
    const job: ScanJob = {
      site,
      after,
      audience: principalKey(principal),
      opts: this.#scanOptions(opts, schemaHash),
      // A first download of a site that never uploaded: nothing it holds can have left its sight.
      ...(after.dbVersion === 0 && d.peers.get(site) === undefined ? { holdsNothing: true } : {}),
    };
    const policiesOf = this.#deps.policiesOf?.bind(this.#deps);
    if (bulk && this.#workers !== undefined && policiesOf !== undefined) {
      // A long scan (initial sync, far behind) runs in the central worker: the event loop stays free.
      const policies = await policiesOf(d.id, d.engine);
      const scan = await this.#workers.run<ScanResult>({ kind: 'scan', db: refOf(d), job, principal, policies, bulk });
      return { ...scan, schemaHash };
    }
    const rowFilter = await this.#deps.rowFilterFor(d.id, principal, d.engine, { bulk });
    const priorFilter = rowFilter === undefined ? undefined : await this.#deps.priorFilterFor?.(d.id, principal, d.engine);
    // Everything below is synchronous: no merge can interleave with the feed.
    return { ...scanDownload(d.engine, job, { rowFilter, priorFilter }), schemaHash };
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

  /** POSTGRES: the feed after the cursor, without the site's own changes, cut into pages. */
  async #downloadPg(d: PgCentralDatabase, site: string, after: Cursor, principal: Principal, opts: DownloadOptions): Promise<DownloadResult> {
    const rowSecurity = await pgRowSecurityFor(d, principal);
    const schemaHash = opts.schemaHash ?? (await this.stamp(d, site, opts.generation));
    try {
      const scan = await d.central.scan(site, after, this.#scanOptions(opts, schemaHash), rowSecurity);
      return { ...scan, schemaHash };
    } catch (e) {
      throw toSyncError(e);
    }
  }
}

const refOf = (d: CentralDatabase): CentralRef => ({ path: d.path, synchronous: d.target.synchronous ?? 'FULL' });

function siteAndOwner(siteId: string, principal: Principal): { site: string; key: string } {
  const site = normaliseSiteId(siteId);
  const key = ownerKeyOf(principal);
  if (key === undefined) throw new SyncError('site_forbidden', 'this credential has no user id and cannot own a site');
  return { site, key };
}

const siteTaken = (): SyncError => new SyncError('site_forbidden', 'this site id belongs to another user or credential');

const PG_ROLE = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * PostgreSQL RLS the Supabase way (docs/ARCHITECTURE.md "PostgreSQL row-level security"): under
 * ENFORCE, a per-user credential runs under `SET LOCAL ROLE <role claim>` (default
 * `authenticated`) with its claims in `request.jwt.claims`; API keys and database users are
 * trusted (undefined: as the connection's user). A role that is unknown, a superuser or BYPASSRLS
 * is refused (403), so a claim can never lift the database's policies.
 */
async function pgRowSecurityFor(d: PgCentralDatabase, principal: Principal): Promise<PgRowSecurity | undefined> {
  if (d.target.rlsMode !== 'ENFORCE' || principal.kind === 'apiKey') return undefined;
  const claimed = principal.claims['role'];
  const role = typeof claimed === 'string' && claimed !== '' ? claimed : 'authenticated';
  if (!PG_ROLE.test(role)) throw new SyncError('forbidden', 'the credential names an invalid database role');
  const check = await d.central.checkRole(role);
  if (check !== 'ok') throw new SyncError('forbidden', check === 'unknown' ? `database role ${role} does not exist` : `database role ${role} bypasses row-level security and cannot be used by a device`);
  const sub = principal.userId ?? '';
  // Access tokens carry OffSync's claims; `sub` and `role` are added the way Supabase's JWTs have them.
  const claims = principal.kind === 'jwt' ? principal.claims : { ...principal.claims, sub, role };
  return { role, sub, claims: JSON.stringify(claims) };
}

