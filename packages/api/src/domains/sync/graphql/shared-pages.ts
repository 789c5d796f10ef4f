/**
 * One live page built once for every caught-up subscriber at the same cursor. When a merge wakes
 * N subscribers of a database, most of them sit at the same cursor and would each scan and
 * encode the same changes; here the first one builds the page and the others reuse it.
 *
 * A shared page is only used where it is exactly what `SyncService.download` would return:
 * - the principal is an API key or the admin key (no RLS row filter: API keys bypass RLS);
 * - the subscriber's site originated none of the changes in the page's range (the page is built
 *   excluding nobody; the sites of the range are collected in the same synchronous section);
 * - the database has not moved since (an entry is keyed by the feed's watermark).
 * Everything else falls back to a per-subscriber download.
 */
import type { CentralDatabase } from '../central-databases.ts';
import { compareCursor } from '../download-pages.ts';
import type { Cursor } from '../download-pages.ts';
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

const caches = new WeakMap<object, Map<string, Promise<Entry | null>>>();

function cacheOf(db: CentralDatabase): Map<string, Promise<Entry | null>> {
  let cache = caches.get(db.engine);
  if (cache === undefined) {
    cache = new Map();
    caches.set(db.engine, cache);
  }
  return cache;
}

async function build(sync: SyncService, db: CentralDatabase, after: Cursor, pageBytes: number, schemaHash: bigint): Promise<Entry | null> {
  const result = await sync.download(db, NOBODY, after, SHARED, { pageBytes, maxPages: 1, schemaHash });
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
 * Same result as `sync.download(db, site, after, principal, { pageBytes, maxPages: 1, schemaHash })`.
 */
export async function livePage(sync: SyncService, db: CentralDatabase, site: string, principal: Principal, after: Cursor, pageBytes: number, schemaHash: bigint): Promise<DownloadResult> {
  const own = (): Promise<DownloadResult> => sync.download(db, site, after, principal, { pageBytes, maxPages: 1, schemaHash });
  if (principal.kind !== 'apiKey') return own();
  const cache = cacheOf(db);
  const head = db.engine.dbVersion();
  const key = `${head}:${after.dbVersion}:${after.seq}:${pageBytes}:${schemaHash}`;
  let entry = cache.get(key);
  if (entry === undefined) {
    if (cache.size >= MAX_ENTRIES) cache.clear();
    entry = build(sync, db, after, pageBytes, schemaHash);
    cache.set(key, entry);
    // Entries of older heads are never asked for again.
    void entry.finally(() => setTimeout(() => cache.delete(key), 1000).unref());
  }
  const e = await entry;
  if (e === null || e.sites.has(site) || e.result.watermark !== db.engine.dbVersion()) return own();
  return e.result;
}
