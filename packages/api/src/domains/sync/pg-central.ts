/**
 * A POSTGRES database as a central database (docs/ARCHITECTURE.md "Central engines"): the core
 * PostgreSQL engine (`@offsync/core/postgres`) over a small pool on the customer's database, plus
 * the per-site bookkeeping the SQLite central keeps in its file — upload windows (`peers`) and
 * site owners (`site_owners`) — and the rejection log (`rejections`, pg-rejection-log.ts) as tables
 * of the same `offsync` metadata schema, written in the merge's own transaction.
 *
 * Ordering across nodes: every merge takes the clock row lock first (core `applyChanges`), and so
 * does every tracked write of another program (the BEFORE STATEMENT trigger), so versions are
 * assigned and committed in one order per database whichever node merges. Nothing here keeps
 * state a second node would need: any node can serve any request (docs/ARCHITECTURE.md "Scaling out").
 */
import pg from 'pg';
import { pgConnectionConfig } from '../databases/connection.ts';
import type { PgSettings } from '../databases/connection.ts';
import { PayloadEncoder } from '@offsync/core';
import type { PayloadDecodeLimits } from '@offsync/core';
import { changesChannel, createPgSyncEngine } from '@offsync/core/postgres';
import type { PgConn, PgRowSecurity, PgSyncEngine } from '@offsync/core/postgres';
import type { Cursor, ScanOptions, ScanResult } from './download-pages.ts';
import type { UploadOutcome } from './central-worker/jobs.ts';
import { checkWindow, rejectionInput } from './central-worker/jobs.ts';
import type { Central, CentralEnv, CentralScan, CentralUpload } from './central.ts';
import { scanFeedPages } from './download-pages.ts';
import { PgRejectionLog, pgRejectionLogDdl } from './pg-rejection-log.ts';
import { nextPeerState, parseWindows, statusOf } from './peer-state.ts';
import type { PeerRecord, SyncStatus, VersionWindow } from './peer-state.ts';
import type { DatabaseTarget, Generation, Principal } from './sync-deps.ts';
import { SyncError } from './sync-errors.ts';

/** How to reach the customer database (the control plane's decrypted connection settings). */
export type PgCentralSettings = PgSettings;

export interface PgCentralOptions {
  /** Metadata schema (default `offsync`, the one deployTables installs). */
  metaSchema?: string;
  /** Schema of the synced tables (default `public`). */
  tablesSchema?: string;
  /** Connections per database and node (default 4). */
  poolSize?: number;
  /** Connect timeout (default 5 s). */
  connectTimeoutMs?: number;
}

export interface PgMergeRequest {
  site: string;
  payloads: readonly Uint8Array[];
  window: VersionWindow | undefined;
  strict: boolean;
  limits: PayloadDecodeLimits;
  /** Checks the window against the last change (throws to refuse; the merge rolls back). */
  checkWindow: (last: { dbVersion: number } | undefined) => void;
  /** Run base-table writes under this role and claims (PostgreSQL RLS); undefined = as the connection's user. */
  rowSecurity?: PgRowSecurity | undefined;
  /** Who uploads: the rows refused on their own are recorded in the rejection log under this principal. */
  principal: Principal;
}

/** A merge's outcome; `rejected` as recorded in the rejection log (ids of `PgCentral.rejections`). */
export type PgMergeOutcome = UploadOutcome;

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const siteBytes = (site: string): Buffer => Buffer.from(site, 'hex');

export class PgCentral {
  readonly kind = 'postgres' as const;
  readonly engine: PgSyncEngine;
  /** The database's rejection log (`<meta>.rejections`), written by {@link merge} in its transaction. */
  readonly rejections: PgRejectionLog;
  readonly #pool: pg.Pool;
  readonly #m: string;
  readonly #roles = new Map<string, 'ok' | 'unknown' | 'privileged'>();
  readonly #settings: PgCentralSettings;
  readonly #meta: string;
  #listener: pg.Client | undefined;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;
  #mergeTail: Promise<unknown> = Promise.resolve();

  private constructor(engine: PgSyncEngine, pool: pg.Pool, meta: string, settings: PgCentralSettings) {
    this.engine = engine;
    this.#pool = pool;
    this.#m = q(meta);
    this.#meta = meta;
    this.#settings = settings;
    this.rejections = new PgRejectionLog(this.#m, (fn) => engine.withConnection(fn));
  }

  /**
   * Calls `onWrite(tables)` when programs other than OffSync write synced tables (the triggers'
   * NOTIFY on `<meta>:changes`), coalesced over `coalesceMs`, on one dedicated connection that
   * reconnects after a loss (backing off up to 30 s). A write during a reconnection gap is not
   * announced: devices still receive it on their next check.
   */
  listen(onWrite: (tables: string[]) => void, coalesceMs = 20): void {
    const pending = new Set<string>();
    let timer: NodeJS.Timeout | undefined;
    let backoff = 500;
    const channel = changesChannel(this.#meta);
    const connect = async (): Promise<void> => {
      if (this.#closed) return;
      const s = this.#settings;
      const c = new pg.Client(pgConnectionConfig(s));
      const again = (): void => {
        if (this.#closed || this.#listener !== c) return;
        this.#listener = undefined;
        this.#retry = setTimeout(() => void connect(), backoff);
        this.#retry.unref();
        backoff = Math.min(backoff * 2, 30_000);
      };
      c.on('error', again);
      c.on('end', again);
      c.on('notification', (n) => {
        if (n.channel !== channel || n.payload === undefined) return;
        pending.add(n.payload);
        timer ??= setTimeout(() => {
          timer = undefined;
          const tables = [...pending];
          pending.clear();
          onWrite(tables);
        }, coalesceMs);
      });
      this.#listener = c;
      try {
        await c.connect();
        await c.query(`LISTEN ${q(channel)}`);
        backoff = 500;
      } catch {
        await c.end().catch(() => undefined);
        again();
      }
    };
    void connect();
  }

  /** Connects, installs the metadata schema and the bookkeeping tables (idempotent). */
  static async open(s: PgCentralSettings, opts: PgCentralOptions = {}): Promise<PgCentral> {
    const pool = new pg.Pool({ ...pgConnectionConfig(s, opts.connectTimeoutMs ?? 5000), max: opts.poolSize ?? 4, idleTimeoutMillis: 30_000 });
    pool.on('error', () => {}); // an idle connection that dies is replaced on the next use
    try {
      const meta = opts.metaSchema ?? 'offsync';
      const engine = await createPgSyncEngine({ pool, schema: meta, tablesSchema: opts.tablesSchema ?? 'public' });
      const m = q(meta);
      await engine.transaction(async (c) => {
        await c.q(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`offsync:${meta}:bookkeeping`]);
        await c.q(`CREATE TABLE IF NOT EXISTS ${m}.peers (
          site_id bytea PRIMARY KEY, windows text NOT NULL DEFAULT '[]', last_optimistic bigint NOT NULL DEFAULT 0,
          last_confirmed bigint NOT NULL DEFAULT 0, last_schema_hash text, uploads bigint NOT NULL DEFAULT 0,
          first_seen bigint NOT NULL, last_seen bigint NOT NULL)`);
        await c.q(`CREATE TABLE IF NOT EXISTS ${m}.site_owners (site_id bytea PRIMARY KEY, owner text NOT NULL, first_seen bigint NOT NULL)`);
        for (const ddl of pgRejectionLogDdl(m)) await c.q(ddl);
      });
      return new PgCentral(engine, pool, meta, s);
    } catch (e) {
      await pool.end().catch(() => {});
      throw e;
    }
  }

  dbVersion(): Promise<number> {
    return this.engine.dbVersion();
  }

  async #peerIn(c: PgConn, site: string, lock: boolean): Promise<PeerRecord | undefined> {
    const [r] = await c.q(
      `SELECT windows, last_optimistic::text, last_confirmed::text, last_schema_hash, uploads::text FROM ${this.#m}.peers WHERE site_id = $1${lock ? ' FOR UPDATE' : ''}`,
      [siteBytes(site)],
    );
    if (r === undefined) return undefined;
    return {
      siteId: site,
      windows: parseWindows(r[0]),
      lastOptimisticVersion: Number(r[1]),
      lastConfirmedVersion: Number(r[2]),
      lastSchemaHash: r[3] === null || r[3] === undefined ? null : String(r[3]),
      uploads: Number(r[4]),
    };
  }

  peer(site: string): Promise<PeerRecord | undefined> {
    return this.engine.withConnection((c) => this.#peerIn(c, site, false));
  }

  async status(site: string): Promise<SyncStatus> {
    return statusOf(await this.peer(site));
  }

  /** Claims `site` for `owner` unless someone already has; returns the owner after the claim. */
  async claimSite(site: string, owner: string, now = Date.now()): Promise<string> {
    return this.engine.withConnection(async (c) => {
      const [cur] = await c.q(`SELECT owner FROM ${this.#m}.site_owners WHERE site_id = $1`, [siteBytes(site)]);
      if (cur !== undefined) return String(cur[0]);
      // Another node may claim it at the same moment: the insert that loses reads the winner.
      await c.q(`INSERT INTO ${this.#m}.site_owners (site_id, owner, first_seen) VALUES ($1, $2, $3) ON CONFLICT (site_id) DO NOTHING`, [siteBytes(site), owner, now]);
      const [won] = await c.q(`SELECT owner FROM ${this.#m}.site_owners WHERE site_id = $1`, [siteBytes(site)]);
      return won === undefined ? owner : String(won[0]);
    });
  }

  /**
   * Merges the payloads (one G3 batch, or one payload) and records the site's window and the rows
   * refused on their own (the rejection log) in the same transaction: all of it or nothing.
   * Lenient mode remembers an unknown schema hash.
   */
  async merge(req: PgMergeRequest, now = Date.now()): Promise<PgMergeOutcome> {
    // Merges of one database serialise on its clock row lock anyway: queue them here, one in
    // PostgreSQL at a time per node, instead of parking pool connections on the lock (the pool's
    // checkout timeout then failed the merges at the back of a burst, and left none for reads).
    const turn = this.#mergeTail.then(() => this.#merge(req, now));
    this.#mergeTail = turn.catch(() => undefined);
    return turn;
  }

  async #merge(req: PgMergeRequest, now: number): Promise<PgMergeOutcome> {
    const opts = { strictSchemaHash: req.strict, limits: req.limits, rejectRows: true, ...(req.rowSecurity === undefined ? {} : { rowSecurity: req.rowSecurity }) };
    const r = await this.engine.applyPayloads(req.payloads, opts, async (c, res) => {
      req.checkWindow(res.last);
      if (!req.strict && res.schemaHash !== 0n) await this.engine.rememberSchemaHash(res.schemaHash, 'peer', c);
      const prev = await this.#peerIn(c, req.site, true);
      const { windows, covered, gaps, hash } = nextPeerState(prev, req.window, res.schemaHash);
      await c.q(
        `INSERT INTO ${this.#m}.peers (site_id, windows, last_optimistic, last_confirmed, last_schema_hash, uploads, first_seen, last_seen)
         VALUES ($1, $2, $3, $3, $4, 1, $5, $5)
         ON CONFLICT (site_id) DO UPDATE SET windows = excluded.windows, last_optimistic = excluded.last_optimistic,
           last_confirmed = excluded.last_confirmed, last_schema_hash = excluded.last_schema_hash,
           uploads = ${this.#m}.peers.uploads + 1, last_seen = excluded.last_seen`,
        [siteBytes(req.site), JSON.stringify(windows.map((w) => [w.dbVersionMin, w.dbVersionMax])), covered, hash, now],
      );
      // The log is OffSync's, not the device's: written as the connection's user (the merge's
      // base-table statements each reset the role already; a rolled-back savepoint reverts it too).
      if (res.rejected.length > 0 && req.rowSecurity !== undefined) await c.q('RESET ROLE');
      const rejected = await this.rejections.record(c, res.rejected.map((x) => rejectionInput(x, req.site, req.principal)), now);
      return { status: { lastOptimisticVersion: covered, lastConfirmedVersion: covered, gaps } satisfies SyncStatus, rejected };
    });
    const extra = r.extra as { status: SyncStatus; rejected: UploadOutcome['rejected'] };
    return { status: extra.status, received: r.received, applied: r.applied, tables: r.tables, schemaHash: r.schemaHash, dbVersion: r.dbVersion, rejected: extra.rejected };
  }

  /**
   * The schema hash stamped into a device's downloads when it never stated one (§P6), as the
   * SQLite central chooses it: G1/G2a (0.8.x – 0.9.99) compute the DDL-text hash, here the hash
   * of the SQLite DDL a device creates the tables with (`engine.deviceDdl()`); G2b/G3 (and no
   * generation) the column-list hash.
   */
  canonicalSchemaHash(generation?: 'G1' | 'G2a' | 'G2b' | 'G3'): Promise<bigint> {
    return generation === 'G1' || generation === 'G2a' ? this.engine.ddlSchemaHash() : this.engine.schemaHash();
  }

  /**
   * Refuses a role that would escape row-level security: unknown, superuser or BYPASSRLS
   * (a JWT's `role` claim must not turn a device into the database owner). Cached per role.
   */
  async checkRole(role: string): Promise<'ok' | 'unknown' | 'privileged'> {
    let v = this.#roles.get(role);
    if (v === undefined) {
      const [r] = await this.engine.withConnection((c) => c.q('SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1', [role]));
      v = r === undefined ? 'unknown' : r[0] === true ? 'privileged' : 'ok';
      if (this.#roles.size > 1000) this.#roles.clear();
      this.#roles.set(role, v);
    }
    return v;
  }

  /** The feed after `after` without `site`'s own changes (read under `rowSecurity` when given), cut into pages (download-pages.ts). */
  async scan(site: string, after: Cursor, opts: ScanOptions, rowSecurity?: PgRowSecurity): Promise<ScanResult> {
    const watermark = await this.engine.dbVersion();
    const feed = this.engine.changes({ after, excludeSiteId: new Uint8Array(siteBytes(site)), ...(rowSecurity === undefined ? {} : { rowSecurity }) });
    return scanFeedPages(feed, watermark, after, opts, () => new PayloadEncoder({ schemaHash: opts.schemaHash }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const l = this.#listener;
    this.#listener = undefined;
    await l?.end().catch(() => undefined);
    await this.#pool.end().catch(() => {});
  }
}

/**
 * A POSTGRES database as resolved for one request (central.ts): the node's pool for it
 * ({@link PgCentral}) with the target of the request. Under ENFORCE, a per-user credential's
 * merges and feeds run under its role and claims, so the database's own policies decide; a
 * refused row is rolled back alone and compensated.
 */
export class PgCentralDatabase implements Central {
  readonly id: string;
  readonly target: DatabaseTarget;
  readonly central: PgCentral;
  /** Each subscriber reads its own live page (shared pages need a synchronous feed). */
  readonly synchronous = undefined;

  constructor(id: string, target: DatabaseTarget, central: PgCentral) {
    this.id = id;
    this.target = target;
    this.central = central;
  }

  claimSite(site: string, owner: string): Promise<string> {
    return this.central.claimSite(site, owner);
  }

  status(site: string): Promise<SyncStatus> {
    return this.central.status(site);
  }

  peer(site: string): Promise<PeerRecord | undefined> {
    return this.central.peer(site);
  }

  dbVersion(): Promise<number> {
    return this.central.dbVersion();
  }

  async stamp(site: string, generation: Generation | undefined): Promise<bigint> {
    const last = (await this.central.peer(site))?.lastSchemaHash;
    if (last !== null && last !== undefined) return BigInt(last);
    // No upload yet: G1/G2a get the DDL-text hash (of the device DDL), G2b/G3 the column-list hash.
    return this.central.canonicalSchemaHash(generation);
  }

  /** The merge, the site's bookkeeping and the rejection log's entries in one PostgreSQL transaction. */
  async upload(req: CentralUpload, env: CentralEnv): Promise<UploadOutcome> {
    const { site, window, principal } = req;
    return this.central.merge({
      rowSecurity: await this.#rowSecurity(principal),
      principal,
      site,
      payloads: Array.isArray(req.payload) ? req.payload : [req.payload],
      window,
      strict: this.target.schemaHashMode === 'strict',
      limits: env.limits,
      checkWindow: (last) => {
        if (window !== undefined) checkWindow(window, last);
      },
    }, env.now());
  }

  /** The feed after the cursor, without the site's own changes, cut into pages. */
  async download(req: CentralScan): Promise<ScanResult> {
    return this.central.scan(req.site, req.after, req.opts, await this.#rowSecurity(req.principal));
  }

  /**
   * PostgreSQL RLS the Supabase way (docs/ARCHITECTURE.md "PostgreSQL row-level security"): under
   * ENFORCE, a per-user credential runs under `SET LOCAL ROLE <role claim>` (default
   * `authenticated`) with its claims in `request.jwt.claims`; API keys and database users are
   * trusted (undefined: as the connection's user). A role that is unknown, a superuser or BYPASSRLS
   * is refused (403), so a claim can never lift the database's policies.
   */
  async #rowSecurity(principal: Principal): Promise<PgRowSecurity | undefined> {
    if (this.target.rlsMode !== 'ENFORCE' || principal.kind === 'apiKey') return undefined;
    const claimed = principal.claims['role'];
    const role = typeof claimed === 'string' && claimed !== '' ? claimed : 'authenticated';
    if (!PG_ROLE.test(role)) throw new SyncError('forbidden', 'the credential names an invalid database role');
    const check = await this.central.checkRole(role);
    if (check !== 'ok') throw new SyncError('forbidden', check === 'unknown' ? `database role ${role} does not exist` : `database role ${role} bypasses row-level security and cannot be used by a device`);
    const sub = principal.userId ?? '';
    // Access tokens carry OffSync's claims; `sub` and `role` are added the way Supabase's JWTs have them.
    const claims = principal.kind === 'jwt' ? principal.claims : { ...principal.claims, sub, role };
    return { role, sub, claims: JSON.stringify(claims) };
  }
}

const PG_ROLE = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
