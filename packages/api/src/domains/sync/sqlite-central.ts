/**
 * A SQLite central file as a central database (central.ts): the embedded default. One
 * connection per file on the main thread (`CentralDatabases` opens it and owns it), plus the
 * central workers' connections (central-worker/), which merge and scan off the event loop.
 *
 * - Merges run as one synchronous section (central-worker/jobs.ts `mergeUpload`): the merge and
 *   the site's bookkeeping commit together, in one server order.
 * - Schema changes (deploys, cleanups, block columns, visibility renewals) go through the owner
 *   (`CentralDatabases.withSchemaChange`): the {@link SchemaGate} lets the merges and scans in
 *   flight finish and holds new ones, the change runs on the main connection, and the workers
 *   learn of it by the schema generation each job carries ({@link CentralRef}). No connection
 *   owned here polls `PRAGMA schema_version` (they are opened with `schemaWatch: false`).
 */
import type { ScanResult } from './download-pages.ts';
import type { Central, CentralEnv, CentralScan, CentralUpload, SynchronousCentral } from './central.ts';
import { mergeUpload, scanDownload } from './central-worker/jobs.ts';
import { writeWhenFree } from './main-connection.ts';
import type { ScanJob, UploadJob, UploadOutcome } from './central-worker/jobs.ts';
import type { CentralRef } from './central-worker/protocol.ts';
import type { PeerRecord, PeerState, SyncStatus } from './peer-state.ts';
import { siteOwnersOf } from './site-owners.ts';
import type { SiteOwners } from './site-owners.ts';
import { principalKey } from './sync-deps.ts';
import type { DatabaseTarget, Generation, SyncEngine } from './sync-deps.ts';

/** A download further behind than this many versions filters rows by RLS in bulk (rls-sql.ts). */
const BULK_FILTER_VERSIONS = 1000;
/** A download with at least this many feed entries after its cursor is built in a central worker (`SyncEngine.feedAtLeast`). */
export const LONG_FEED_ENTRIES = 5000;
/** How long a first claim of a site waits (asynchronously) for the write lock before 503 `server_busy`. */
export const CLAIM_BUSY_BUDGET_MS = 5000;

interface ClaimWaiter {
  ok: (owner: string) => void;
  fail: (e: unknown) => void;
}

/** First claims waiting for the next batch, per central engine: site → the first claimant's owner key and everyone waiting on it. */
const claimBatches = new WeakMap<SyncEngine, Map<string, { owner: string; waiters: ClaimWaiter[] }>>();

/**
 * Queues a first claim of `site` for this turn's batch: one `SiteOwners.claimAll` (one
 * transaction), in arrival order (the first claimant of a site wins, as one by one), retried as a
 * whole while the write lock is held. Each waiter gets the site's owner after the batch; a batch
 * refused for its whole budget fails all its waiters (503 `server_busy`).
 */
function claimInBatch(engine: SyncEngine, owners: SiteOwners, site: string, owner: string): Promise<string> {
  let batch = claimBatches.get(engine);
  if (batch === undefined) {
    const mine = new Map<string, { owner: string; waiters: ClaimWaiter[] }>();
    claimBatches.set(engine, mine);
    batch = mine;
    setImmediate(() => {
      claimBatches.delete(engine);
      const entries = [...mine];
      const claims = entries.map(([s, e]) => [s, e.owner] as const);
      writeWhenFree(engine, () => owners.claimAll(claims), CLAIM_BUSY_BUDGET_MS).then(
        (got) => entries.forEach(([, e], i) => e.waiters.forEach((w) => w.ok(got[i] ?? e.owner))),
        (err: unknown) => entries.forEach(([, e]) => e.waiters.forEach((w) => w.fail(err))),
      );
    });
  }
  const pending = batch;
  return new Promise<string>((ok, fail) => {
    let e = pending.get(site);
    if (e === undefined) {
      e = { owner, waiters: [] };
      pending.set(site, e);
    }
    e.waiters.push({ ok, fail });
  });
}

/**
 * Serialises schema changes of one database with its merges and scans: operations enter and
 * leave freely (concurrently, as before); a schema change waits until none is in flight, holds
 * new ones until it is done, and runs alone.
 */
export class SchemaGate {
  #running = 0;
  #drained: (() => void)[] = [];
  #change: Promise<void> | undefined;

  /** Waits while a schema change is pending or running; pair with {@link leave}. */
  async enter(): Promise<void> {
    while (this.#change !== undefined) await this.#change;
    this.#running++;
  }

  leave(): void {
    this.#running--;
    if (this.#running === 0) for (const f of this.#drained.splice(0)) f();
  }

  /** Runs `fn` once no operation is in flight, holding new ones until it settles. */
  async exclusive<T>(fn: () => T): Promise<T> {
    while (this.#change !== undefined) await this.#change;
    let done!: () => void;
    this.#change = new Promise<void>((r) => (done = r));
    try {
      if (this.#running > 0) await new Promise<void>((r) => this.#drained.push(r));
      return fn();
    } finally {
      this.#change = undefined;
      done();
    }
  }
}

/** What stays open per central file between requests (held by `CentralDatabases`). */
export interface SqliteFile {
  readonly path: string;
  readonly engine: SyncEngine;
  readonly peers: PeerState;
  readonly gate: SchemaGate;
  /** Bumped after every schema change made through the owner; sent with each worker job. */
  schemaGeneration: number;
}

export class SqliteCentral implements SynchronousCentral {
  readonly id: string;
  readonly target: DatabaseTarget;
  readonly #file: SqliteFile;

  constructor(id: string, target: DatabaseTarget, file: SqliteFile) {
    this.id = id;
    this.target = target;
    this.#file = file;
  }

  get synchronous(): SynchronousCentral {
    return this;
  }

  get path(): string {
    return this.#file.path;
  }

  get engine(): SyncEngine {
    return this.#file.engine;
  }

  get peers(): PeerState {
    return this.#file.peers;
  }

  /** How a central worker opens this file, with the schema generation it must have loaded. */
  get ref(): CentralRef {
    return { path: this.#file.path, synchronous: this.target.synchronous ?? 'FULL', schemaGeneration: this.#file.schemaGeneration };
  }

  /** `claimSite`, synchronously. */
  claimSiteNow(site: string, owner: string): string {
    return siteOwnersOf(this.engine).claim(site, owner);
  }

  /**
   * `claimSiteNow` without blocking the event loop: a known site is one read; a first claim that
   * finds the write lock held (a central worker's merge) waits on a timer, not on the main
   * connection's busy timeout (main-connection.ts), for at most {@link CLAIM_BUSY_BUDGET_MS}.
   * First claims arriving in one turn of the event loop are written in one transaction (one
   * commit, so one fsync on the event loop for all of them: 200 fresh devices at once had cost
   * ~2 ms of blocked loop each under bench/load.ts).
   */
  claimSite(site: string, owner: string): Promise<string> {
    const owners = siteOwnersOf(this.engine);
    const known = owners.ownerOf(site);
    if (known !== undefined) return Promise.resolve(known);
    return claimInBatch(this.engine, owners, site, owner);
  }

  status(site: string): Promise<SyncStatus> {
    return Promise.resolve(this.peers.status(site));
  }

  peer(site: string): Promise<PeerRecord | undefined> {
    return Promise.resolve(this.peers.get(site));
  }

  dbVersion(): Promise<number> {
    return Promise.resolve(this.engine.dbVersion());
  }

  /** The device's last upload hash, else the generation's canonical hash: DDL text for G1/G2a, column list otherwise (§P6). */
  stampNow(site: string, generation: Generation | undefined): bigint {
    const last = this.peers.get(site)?.lastSchemaHash;
    if (last !== null && last !== undefined) return BigInt(last);
    return generation === 'G1' || generation === 'G2a' ? this.engine.ddlSchemaHash() : this.engine.schemaHash();
  }

  stamp(site: string, generation: Generation | undefined): Promise<bigint> {
    return Promise.resolve(this.stampNow(site, generation));
  }

  async upload(req: CentralUpload, env: CentralEnv): Promise<UploadOutcome> {
    const { site, principal } = req;
    const job: UploadJob = {
      site,
      payload: req.payload,
      window: req.window,
      principal,
      audience: principalKey(principal),
      strict: this.target.schemaHashMode === 'strict',
      limits: env.limits,
      // Writes that lost to concurrent ones (conflict log), unless the database turned it off.
      conflictLog: this.target.conflictLog !== false,
      conflictLogOptions: env.conflictLog,
      now: env.now(),
    };
    const { deps, workers } = env;
    const gate = this.#file.gate;
    await gate.enter();
    try {
      const policiesOf = deps.policiesOf?.bind(deps);
      if (workers !== undefined && policiesOf !== undefined) {
        // Off the event loop: decode, RLS, merge and bookkeeping in the file's central worker.
        const policies = await policiesOf(this.id, this.engine);
        return await workers.run<UploadOutcome>({ kind: 'upload', db: this.ref, job, policies });
      }
      const judge = await deps.judgeFor(this.id, principal, this.engine);
      // What the uploader may hold: a device left holding a row it may not see gets a removal.
      const canHold = judge === undefined ? undefined : await deps.rowFilterFor(this.id, principal, this.engine);
      const visibilityColumns = await deps.visibilityFor?.(this.id, this.engine);
      // One synchronous section: merge + bookkeeping commit together, in one server order.
      return mergeUpload(this.engine, this.peers, job, { judge, canHold, visibilityColumns });
    } finally {
      gate.leave();
    }
  }

  async download(req: CentralScan, env: CentralEnv): Promise<ScanResult> {
    const { site, after, principal } = req;
    const { deps, workers } = env;
    const gate = this.#file.gate;
    await gate.enter();
    try {
      // Far behind (initial sync): RLS SELECT as one SQL query per table instead of one evaluation per row.
      const bulk = this.engine.dbVersion() - after.dbVersion > BULK_FILTER_VERSIONS;
      const job: ScanJob = {
        site,
        after,
        audience: principalKey(principal),
        opts: req.opts,
        // A first download of a site that never uploaded: nothing it holds can have left its sight.
        ...(after.dbVersion === 0 && this.peers.get(site) === undefined ? { holdsNothing: true } : {}),
      };
      const policiesOf = deps.policiesOf?.bind(deps);
      // Long: far behind in versions, or thousands of entries left however few versions they span
      // (a client that stamps a whole transaction with one version).
      const long = bulk || this.engine.feedAtLeast(after, LONG_FEED_ENTRIES);
      if (long && workers !== undefined && policiesOf !== undefined) {
        // A long scan (initial sync, far behind) runs in the central worker: the event loop stays free.
        const policies = await policiesOf(this.id, this.engine);
        return await workers.run<ScanResult>({ kind: 'scan', db: this.ref, job, principal, policies, bulk });
      }
      const rowFilter = await deps.rowFilterFor(this.id, principal, this.engine, { bulk });
      const priorFilter = rowFilter === undefined ? undefined : await deps.priorFilterFor?.(this.id, principal, this.engine);
      // Everything below is synchronous: no merge can interleave with the feed.
      return scanDownload(this.engine, job, { rowFilter, priorFilter });
    } finally {
      gate.leave();
    }
  }
}

/** True for the SQLite central (for the registry's SQLite-only helpers). */
export function isSqliteCentral(c: Central): c is SqliteCentral {
  return c instanceof SqliteCentral;
}
