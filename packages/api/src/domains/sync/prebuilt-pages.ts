/**
 * Prebuilt G3 `/check` pages (docs/ARCHITECTURE.md "Prebuilt download pages"). A non-final
 * `/check` reply tells the server exactly which request comes next: the same database, site,
 * principal, durable cursor (dbVersion/seq), `maxChunks` and generation, with the `nextCursor`
 * just issued. Right after sending the reply the server builds that request's pages, so a
 * pipelining client (OffSync's, one page per batch, docs/PROTOCOL.md "Packages") finds its next
 * page ready instead of waiting while the server builds it; the server uses the time the reply
 * travels and the client spends on what it already has.
 *
 * An entry is served at most once, and only when all of this holds (else the request builds its
 * pages as ever, and the entry is dropped):
 * - the request is exactly the one predicted: its key holds the database, site, the principal
 *   (kind, user id, every claim, credential id), the request's cursors and page limits, and the
 *   feed position and page budgets its cursor resolved to (http/g3-cursors.ts);
 * - it comes within `ttlMs` of the build's start (a page built then and slow on the wire would
 *   be no different);
 * - the database is unchanged since just BEFORE the build started (`stateOf`): no local write
 *   (SQLite `total_changes()` of the connection the feed reads), no commit of another connection
 *   or process (`PRAGMA data_version`), no schema change and no RLS policy change (the policy
 *   epoch of policy-history.ts, which includes `PRAGMA schema_version`), same server version.
 *   Read before the build, so a write racing the build makes the entry stale, never the reverse.
 * - the schema hash it would stamp is the one the entry was stamped with.
 *
 * Memory is bounded: built entries count their payload bytes against a per-database and a
 * global cap; the oldest entries go first (each is used once: oldest = least recently used),
 * and an entry larger than a cap is not kept.
 *
 * Work is bounded too: a site holds at most one entry (a new prediction replaces the previous),
 * and a site whose prediction went unused — replaced by another before it was asked for, or never
 * asked for within the TTL — gets no prebuild for `wastePauseMs`. A device (hostile, or a client
 * whose requests the prediction does not match) therefore costs at most one wasted build per
 * pause on top of the requests it makes, never a second build for each of them. SQLite central databases only: a POSTGRES
 * database has no cheap, complete "unchanged since" signal here (other nodes and programs write
 * it), so its requests are never prebuilt.
 */
import type { Central } from './central.ts';
import type { Cursor } from './download-pages.ts';
import { policyEpoch } from './policy-history.ts';
import { isSqliteCentral } from './sqlite-central.ts';
import { stableJson } from './sync-deps.ts';
import type { Principal } from './sync-deps.ts';
import type { DownloadResult } from './sync.service.ts';

export interface PrebuiltPagesOptions {
  /** How long after its build started an entry may be served (default 5 s). */
  ttlMs?: number;
  /** Payload bytes held at once, every database together (default 64 MiB). */
  maxBytes?: number;
  /** Payload bytes held at once for one database (default a quarter of `maxBytes`: 16 MiB). */
  maxBytesPerDatabase?: number;
  now?: () => number;
  /** How long a site whose prebuilt entry went unused gets none (default 30 s). */
  wastePauseMs?: number;
  /** Runs a prebuild after the reply that predicted it (default `setImmediate`; the HTTP route waits for the reply to be written first). */
  defer?: (run: () => void) => void;
}

/** The request a prebuilt entry answers (every field is part of its key). */
export interface PageRequest {
  db: string;
  site: string;
  principal: Principal;
  /** The durable cursor the client sends (dbVersion/seq as the server reads them). */
  base: Cursor;
  /** The continuation cursor the client sends. */
  cursor: number;
  /** What the client asked for (not part of the key: see {@link pageRequestKey}). */
  maxChunks: number;
  generation: string;
  /** Where that cursor resumes, and how the pages are cut and sent (api-calls.ts `downloadPlan`). */
  after: Cursor;
  plan: Readonly<Record<string, number | boolean | string | undefined>>;
}

/**
 * The entry's key. `maxChunks` is not in it: it shapes the pages only through `plan` (how many
 * pages, inline or not), which is. The real 1.1.4 client sends a different `maxChunks` on every
 * `/check` of a drain (16, then 9996, 9995, …), each giving the same plan.
 */
export function pageRequestKey(r: PageRequest): string {
  return stableJson([r.db, r.site, r.principal, r.base.dbVersion, r.base.seq, r.cursor, r.generation, r.after.dbVersion, r.after.seq, r.plan]);
}

/**
 * Everything a download's pages depend on besides the request, as one string; undefined when it
 * cannot be told (not a SQLite central database). Equal strings: nothing was written to the
 * database in between (see the module comment).
 */
export function stateOf(db: Central): string | undefined {
  if (!isSqliteCentral(db)) return undefined;
  const engine = db.engine;
  const d = engine.driver;
  const changes = Number((d.prepare('SELECT total_changes()').getRaw() ?? [0])[0]);
  const dataVersion = Number((d.prepare('PRAGMA data_version').getRaw() ?? [0])[0]);
  return `${engine.dbVersion()} ${changes} ${dataVersion} ${policyEpoch(d)}`;
}

/** `stateOf`, or undefined when it cannot be read (a database closed meanwhile): never served, never a failure of its own. */
function stateOrUndefined(db: Central): string | undefined {
  try {
    return stateOf(db);
  } catch {
    return undefined;
  }
}

interface Entry {
  db: string;
  /** `db` and the site (the one-entry-per-site and waste rules). */
  siteKey: string;
  /** The database's state just before the build (`stateOf`). */
  state: string;
  startedAt: number;
  /** Planned (not started yet), building, or built. */
  phase: 'planned' | 'building' | 'built';
  promise?: Promise<DownloadResult | undefined>;
  bytes: number;
}

export interface PrebuiltStats {
  /** Builds started. */
  builds: number;
  /** Requests answered with a prebuilt entry. */
  hits: number;
  /** Entries found but not served: expired, database changed, other schema hash, or the build failed. */
  stale: number;
  /** Built entries dropped for memory (or larger than a cap), or never taken before their TTL. */
  dropped: number;
  /** Entries replaced by another prediction for the same site before they were asked for. */
  superseded: number;
  /** Predictions not built because the site's previous one went unused (`wastePauseMs`). */
  paused: number;
}

/** Sites paused at most (the oldest pause is forgotten first beyond it). */
const MAX_PAUSED_SITES = 10_000;

const PAGE_OVERHEAD_BYTES = 256;

/** Bytes an entry holds (its payloads, plus a little per page). */
function sizeOf(r: DownloadResult): number {
  let n = 0;
  for (const p of r.pages) n += PAGE_OVERHEAD_BYTES + (p.payload?.byteLength ?? 0);
  return n;
}

export class PrebuiltPages {
  readonly ttlMs: number;
  readonly maxBytes: number;
  readonly maxBytesPerDatabase: number;
  readonly wastePauseMs: number;
  readonly #now: () => number;
  readonly #defer: (run: () => void) => void;
  /** In insertion order: the first built entry is the oldest. */
  readonly #entries = new Map<string, Entry>();
  readonly #dbBytes = new Map<string, number>();
  /** Site key → the key of its one entry. */
  readonly #bySite = new Map<string, string>();
  /** Site key → until when it gets no prebuild (its last entry went unused); in insertion order. */
  readonly #pausedUntil = new Map<string, number>();
  #bytes = 0;
  readonly stats: PrebuiltStats = { builds: 0, hits: 0, stale: 0, dropped: 0, superseded: 0, paused: 0 };

  constructor(opts: PrebuiltPagesOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 5000;
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.maxBytesPerDatabase = opts.maxBytesPerDatabase ?? Math.max(1, Math.floor(this.maxBytes / 4));
    this.wastePauseMs = opts.wastePauseMs ?? 30_000;
    this.#now = opts.now ?? Date.now;
    this.#defer = opts.defer ?? ((run) => void setImmediate(run));
  }

  /** Payload bytes held (built entries). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries held (planned, building or built). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Plans the build of `request`'s pages on `db` (SQLite only), run by `build` once the current
   * reply is written (`defer`; one that never runs leaves a planned entry, dropped after the TTL).
   * A request with an entry already is not planned again; another entry of the same site is
   * replaced (and the site paused: that prediction went unused); a paused site is not planned.
   */
  schedule(request: PageRequest, db: Central, build: () => Promise<DownloadResult>, defer: (run: () => void) => void = this.#defer): void {
    this.#sweep();
    const key = pageRequestKey(request);
    if (this.#entries.has(key) || !isSqliteCentral(db)) return;
    const siteKey = `${request.db}\u0000${request.site}`;
    const until = this.#pausedUntil.get(siteKey);
    if (until !== undefined && this.#now() < until) {
      this.stats.paused++;
      return;
    }
    const previous = this.#bySite.get(siteKey);
    const old = previous === undefined ? undefined : this.#entries.get(previous);
    if (previous !== undefined && old !== undefined) {
      this.#remove(previous, old);
      this.stats.superseded++;
      this.#pause(siteKey);
      return;
    }
    const entry: Entry = { db: request.db, siteKey, state: '', startedAt: this.#now(), phase: 'planned', bytes: 0 };
    this.#entries.set(key, entry);
    this.#bySite.set(siteKey, key);
    defer(() => {
      if (this.#entries.get(key) !== entry || entry.phase !== 'planned') return; // taken (or dropped) before it started
      const state = stateOrUndefined(db);
      if (state === undefined) {
        this.#entries.delete(key);
        return;
      }
      entry.state = state;
      entry.startedAt = this.#now();
      entry.phase = 'building';
      this.stats.builds++;
      entry.promise = build().then(
        (r) => {
          if (this.#entries.get(key) === entry) this.#hold(entry, sizeOf(r));
          else entry.phase = 'built'; // taken while building: the taker decides
          return r;
        },
        () => {
          if (this.#entries.get(key) === entry) this.#entries.delete(key);
          return undefined;
        },
      );
    });
  }

  /**
   * The prebuilt pages of `request` when they may answer it (module comment), else undefined (the
   * caller builds them). An entry is taken once: found, it is removed whatever the outcome; a
   * planned build that has not started is cancelled. `schemaHash`: the hash the request would stamp.
   */
  async take(request: PageRequest, db: Central, schemaHash: () => Promise<bigint>): Promise<DownloadResult | undefined> {
    this.#sweep();
    if (this.#entries.size === 0) return undefined;
    const key = pageRequestKey(request);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#remove(key, entry);
    if (entry.phase === 'planned' || entry.promise === undefined) return undefined;
    const r = await entry.promise;
    if (r === undefined || this.#now() - entry.startedAt > this.ttlMs || (await schemaHash()) !== r.schemaHash || stateOrUndefined(db) !== entry.state) {
      this.stats.stale++;
      return undefined;
    }
    this.stats.hits++;
    return r;
  }

  /** Drops every entry (of one database). */
  invalidate(db?: string): void {
    for (const [key, e] of this.#entries) if (db === undefined || e.db === db) this.#remove(key, e);
  }

  #hold(entry: Entry, bytes: number): void {
    entry.phase = 'built';
    entry.bytes = bytes;
    this.#bytes += bytes;
    this.#dbBytes.set(entry.db, (this.#dbBytes.get(entry.db) ?? 0) + bytes);
    // Oldest first, this entry last (it is the newest): until both caps hold.
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= this.maxBytes && (this.#dbBytes.get(entry.db) ?? 0) <= this.maxBytesPerDatabase) break;
      if (e.phase !== 'built' || (this.#bytes <= this.maxBytes && e.db !== entry.db)) continue;
      this.#remove(k, e);
      this.stats.dropped++;
    }
  }

  /** No prebuild for the site for `wastePauseMs` (its entry went unused). */
  #pause(siteKey: string): void {
    this.#pausedUntil.delete(siteKey);
    this.#pausedUntil.set(siteKey, this.#now() + this.wastePauseMs);
    if (this.#pausedUntil.size > MAX_PAUSED_SITES) {
      const oldest = this.#pausedUntil.keys().next().value;
      if (oldest !== undefined) this.#pausedUntil.delete(oldest);
    }
  }

  #remove(key: string, e: Entry): void {
    if (this.#entries.get(key) !== e) return;
    this.#entries.delete(key);
    if (this.#bySite.get(e.siteKey) === key) this.#bySite.delete(e.siteKey);
    if (e.phase === 'built' && e.bytes > 0) {
      this.#bytes -= e.bytes;
      const left = (this.#dbBytes.get(e.db) ?? 0) - e.bytes;
      if (left > 0) this.#dbBytes.set(e.db, left);
      else this.#dbBytes.delete(e.db);
      e.bytes = 0;
    }
  }

  /** Drops planned and built entries past their TTL (never taken: their site is paused; a build in flight stays until it ends), and pauses that are over. */
  #sweep(): void {
    const now = this.#now();
    for (const [k, e] of this.#entries) {
      if (e.phase !== 'building' && now - e.startedAt > this.ttlMs) {
        this.#remove(k, e);
        this.stats.dropped++;
        this.#pause(e.siteKey);
      }
    }
    for (const [site, until] of this.#pausedUntil) {
      if (until > now) break; // (insertion order = order of their ends: every pause lasts wastePauseMs)
      this.#pausedUntil.delete(site);
    }
  }
}
