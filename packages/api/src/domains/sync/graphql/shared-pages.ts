/**
 * One live page built once for every subscriber that would get the same bytes. When a merge wakes
 * N subscribers of a database, most of them sit at the same cursor and would each scan and
 * encode the same changes; here the first one builds the page and the others reuse it (and, since
 * the batch object is shared too, the graphql-ws fast path serialises it once: ws/live-fast-path.ts).
 *
 * A shared page is only used where it is exactly what `SyncService.download` would return:
 * - the subscribers have the same RLS visibility ({@link shareKey}): API keys and the admin key
 *   (no row filter: they bypass RLS) share with each other; a user principal shares only with the
 *   same user with the same claims (the RLS filter is a function of those), built with its own
 *   principal;
 * - the subscriber's site originated none of the changes in the page's range (the page is built
 *   excluding nobody; the sites of the range are collected in the same synchronous section);
 * - same cursor, page size and schema-hash stamp (all part of the key);
 * - built after the database moved for the reason the subscriber woke up:
 *   - an event page ({@link joinEventPage}, or {@link livePage} with `event`) is keyed by the hub event object that woke the
 *     subscriber, so it is built after that event's merge committed; it is what the download
 *     returned when it was built (the documented meaning of `final`). A later merge publishes
 *     another event that wakes the subscriber again, so nothing is missed; no per-subscriber
 *     `dbVersion()` read (one SQL statement each) is needed;
 *   - otherwise (replay, catch-up) an entry is keyed by the feed's watermark, read per call.
 * Everything else falls back to a per-subscriber download.
 */
import type { SynchronousCentral as CentralDatabase } from '../central.ts';
import { compareCursor } from '../download-pages.ts';
import type { Cursor } from '../download-pages.ts';
import { stableJson } from '../sync-deps.ts';
import type { Principal } from '../sync-deps.ts';
import type { DownloadResult, SyncService } from '../sync.service.ts';

/** A site id no device has (all zero): the shared page excludes nobody. */
const NOBODY = '0'.repeat(32);
const SHARED: Principal = { kind: 'apiKey', userId: null, claims: {} };
const MAX_ENTRIES = 256;

interface Entry {
  result: DownloadResult;
  /** Hex site ids of the changes in (cursor, page end]. */
  sites: Set<string>;
}

type Cache = Map<string, Promise<Entry | null>>;
const caches = new WeakMap<object, Cache>();

/**
 * Whoever waits for an event page: called once, synchronously in the loop that settles the page,
 * with the shared result, or null when this subscriber must read its own page (the page was not
 * shareable, or its site originated a change in it), or the build's error.
 */
export interface PageWaiter {
  onSharedPage(result: DownloadResult | null, error: unknown): void;
}

/**
 * One event page: built once; the waiters joined before it settled are handed the page in one
 * synchronous loop (no promise per subscriber), later ones at once.
 */
class EventPage {
  readonly promise: Promise<Entry | null>;
  #settled = false;
  #entry: Entry | null = null;
  #error: unknown = undefined;
  #failed = false;
  #waiters: PageWaiter[] = [];
  #sites: string[] = [];

  constructor(build: Promise<Entry | null>) {
    this.promise = build;
    build.then(
      (e) => this.#settle(e, false, undefined),
      (err: unknown) => this.#settle(null, true, err),
    );
  }

  join(waiter: PageWaiter, site: string): void {
    if (this.#settled) return this.#hand(waiter, site);
    this.#waiters.push(waiter);
    this.#sites.push(site);
  }

  #hand(w: PageWaiter, site: string): void {
    const e = this.#entry;
    if (this.#failed) w.onSharedPage(null, this.#error);
    else w.onSharedPage(e === null || e.sites.has(site) ? null : e.result, undefined);
  }

  #settle(entry: Entry | null, failed: boolean, error: unknown): void {
    this.#settled = true;
    this.#entry = entry;
    this.#failed = failed;
    this.#error = error;
    const waiters = this.#waiters;
    const sites = this.#sites;
    this.#waiters = [];
    this.#sites = [];
    if (waiters.length > 0) setImmediate(() => this.#handAll(waiters, sites));
  }

  /**
   * The fan-out, one turn of the event loop after the page settled: handing a page is a socket
   * write per subscriber (~10 µs on loopback here), and run inside the settle it held back the
   * reply to the merge whose event built the page until every subscriber had been written
   * (bench/live.ts, 1,000 subscribers: the writer's acknowledgement after 21–27 ms instead of
   * 8–9 ms; the subscribers' latency unchanged within the noise). A waiter that joins meanwhile
   * is handed the page at once, as before.
   */
  #handAll(waiters: PageWaiter[], sites: string[]): void {
    for (let i = 0; i < waiters.length; i++) {
      // One waiter that throws must not strand the others (a live stream ends itself on its own errors).
      try {
        this.#hand(waiters[i] as PageWaiter, sites[i] as string);
      } catch (e) {
        console.error('sync: live page waiter failed', e);
      }
    }
  }
}

/**
 * Event pages: one small map per hub event, collected with the event. `last` is the page the
 * previous join asked for, with what its key was made of: the subscribers an event wakes mostly
 * join the same page one after the other (same visibility, cursor, page size and stamp), and for
 * them the comparison replaces building the key string and looking it up.
 */
interface EventCache {
  pages: Map<string, EventPage>;
  last?: { who: string; after: Cursor; pageBytes: number; schemaHash: bigint; page: EventPage };
}
const eventCaches = new WeakMap<object, EventCache>();

function eventCacheOf(event: object): EventCache {
  let cache = eventCaches.get(event);
  if (cache === undefined) {
    cache = { pages: new Map() };
    eventCaches.set(event, cache);
  }
  return cache;
}

function eventPage(sync: SyncService, db: CentralDatabase, principal: Principal, after: Cursor, pageBytes: number, schemaHash: bigint, event: object, who: string): EventPage {
  const cache = eventCacheOf(event);
  const last = cache.last;
  if (last !== undefined && last.who === who && last.pageBytes === pageBytes && last.schemaHash === schemaHash && (last.after === after || (last.after.dbVersion === after.dbVersion && last.after.seq === after.seq))) return last.page;
  const tail = tailOf(who, after, pageBytes, schemaHash);
  let page = cache.pages.get(tail);
  if (page === undefined) {
    page = new EventPage(build(sync, db, principal, after, pageBytes, schemaHash));
    cache.pages.set(tail, page);
  }
  cache.last = { who, after, pageBytes, schemaHash, page };
  return page;
}

const tailOf = (who: string, after: Cursor, pageBytes: number, schemaHash: bigint): string => `${who}|${after.dbVersion}:${after.seq}:${pageBytes}:${schemaHash}`;

/**
 * The page of hub event `event` after `after`, handed to `waiter` (see {@link PageWaiter}) without
 * a promise per subscriber: the subscribers an event wakes join one page, and the page is handed
 * to all of them in one loop once built. Same result as {@link livePage} with `event`. Returns
 * false (and calls nothing) when the principal shares with nobody: read a page of your own.
 */
export function joinEventPage(
  sync: SyncService,
  db: CentralDatabase,
  site: string,
  principal: Principal,
  after: Cursor,
  pageBytes: number,
  schemaHash: bigint,
  event: object,
  waiter: PageWaiter,
): boolean {
  const who = shareKey(principal);
  if (who === null) return false;
  eventPage(sync, db, principal, after, pageBytes, schemaHash, event, who).join(waiter, site);
  return true;
}

function cacheOf(db: CentralDatabase): Cache {
  let cache = caches.get(db.engine);
  if (cache === undefined) {
    cache = new Map();
    caches.set(db.engine, cache);
  }
  return cache;
}

const shareKeys = new WeakMap<Principal, string | null>();

/**
 * Who sees the same rows: `*` for API keys / the admin key (RLS bypass), `<kind>:<user>:<claims>`
 * for a user (RLS is a function of the user id and the claims), null when unknown (no sharing).
 */
export function shareKey(p: Principal): string | null {
  let k = shareKeys.get(p);
  if (k === undefined) {
    if (p.kind === 'apiKey') k = '*';
    else k = typeof p.userId === 'string' && p.userId !== '' ? `${p.kind}:${JSON.stringify(p.userId)}:${stableJson(p.claims)}` : null;
    shareKeys.set(p, k);
  }
  return k;
}

async function build(sync: SyncService, db: CentralDatabase, principal: Principal, after: Cursor, pageBytes: number, schemaHash: bigint): Promise<Entry | null> {
  const result = await sync.download(db, NOBODY, after, principal.kind === 'apiKey' ? SHARED : principal, { pageBytes, maxPages: 1, schemaHash });
  // A merge ran between the scan and now: the range may differ; do not share.
  if (db.engine.dbVersion() !== result.watermark) return null;
  const sites = new Set<string>();
  const end = result.pages[0]?.to;
  if (end !== undefined) {
    for (const ch of db.engine.changes({ after })) {
      if (compareCursor({ dbVersion: ch.dbVersion, seq: ch.seq }, end) > 0) break;
      sites.add(Buffer.from(ch.siteId).toString('hex'));
    }
  }
  return { result, sites };
}

/**
 * The page after `after` for `site`: shared when allowed (see above), else a plain download.
 * Same result as `sync.download(db, site, after, principal, { pageBytes, maxPages: 1, schemaHash })`
 * (at the time the shared page was built). `event`: the hub event that woke the subscriber.
 */
export async function livePage(
  sync: SyncService,
  db: CentralDatabase,
  site: string,
  principal: Principal,
  after: Cursor,
  pageBytes: number,
  schemaHash: bigint,
  event?: object,
): Promise<DownloadResult> {
  const own = (): Promise<DownloadResult> => sync.download(db, site, after, principal, { pageBytes, maxPages: 1, schemaHash });
  const who = shareKey(principal);
  if (who === null) return own();
  if (event !== undefined) {
    const e = await eventPage(sync, db, principal, after, pageBytes, schemaHash, event, who).promise;
    if (e === null || e.sites.has(site)) return own();
    return e.result;
  }
  const tail = tailOf(who, after, pageBytes, schemaHash);
  const cache = cacheOf(db);
  const head = db.engine.dbVersion();
  const key = `${head}:${tail}`;
  let entry = cache.get(key);
  if (entry === undefined) {
    if (cache.size >= MAX_ENTRIES) cache.clear();
    entry = build(sync, db, principal, after, pageBytes, schemaHash);
    cache.set(key, entry);
    // Entries of older heads are never asked for again.
    void entry.finally(() => setTimeout(() => cache.delete(key), 1000).unref());
  }
  const e = await entry;
  if (e === null || e.sites.has(site) || e.result.watermark !== db.engine.dbVersion()) return own();
  return e.result;
}
