/**
 * Download packages, streamed from the central database's change feed (docs/PROTOCOL.md §P1,
 * §P5): every change after an exclusive cursor, in (db_version, seq) order of the SERVER's
 * version space, without the requesting site's own changes, filtered by RLS. Pages are cut at
 * ≈ `pageBytes` of encoded (uncompressed) body, on a change boundary, and never between two
 * changes with the same (db_version, seq). Only one page is ever held in memory.
 *
 * Everything here is synchronous: the feed must not interleave with merges.
 */
import type { PriorFilter, RowFilter, SyncEngine } from './sync-deps.ts';

export interface Cursor {
  dbVersion: number;
  seq: number;
}

/** The largest seq: `{dbVersion: v, seq: MAX_SEQ}` means "everything of version v seen". */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

export function compareCursor(a: Cursor, b: Cursor): number {
  return a.dbVersion - b.dbVersion || a.seq - b.seq;
}

export interface FeedScope {
  engine: SyncEngine;
  /** 16-byte site id of the requester (its changes are left out). */
  excludeSiteId: Uint8Array;
  rowFilter?: RowFilter | undefined;
  /** The caller's principal key: removals addressed to it join the feed (docs/ARCHITECTURE.md "RLS model"). */
  audience?: string | undefined;
  /** What the caller could see as of a version (removals of rows that left its sight). */
  priorFilter?: PriorFilter | undefined;
}

export interface PagePlan {
  /** Exclusive lower bound. */
  from: Cursor;
  /** Inclusive upper bound: the key of the page's last change. */
  to: Cursor;
  rows: number;
  /** Encoded body bytes before compression. */
  bytes: number;
  /** The finished payload, when requested. */
  payload?: Uint8Array;
}

export interface ScanOptions {
  pageBytes: number;
  /** Stop after this many pages (the result is then not complete). */
  maxPages: number;
  /** Inclusive upper bound; changes after it are not included. */
  to?: Cursor | undefined;
  schemaHash: bigint;
  /** Finish (encode) every page. */
  payloads?: boolean;
  /** Finish the page when the result is one complete page of at most this many bytes. */
  inlineUpTo?: number;
}

export interface ScanResult {
  pages: PagePlan[];
  /** True when nothing after the last page (up to `to`) is left for this site. */
  complete: boolean;
  /** Server db_version at the time of the scan: a complete scan delivered everything ≤ it. */
  watermark: number;
}

/**
 * Scans the feed after `after` into pages, stopping at `to` or after `maxPages` (the feed closes
 * its statements when abandoned, so stopping early costs nothing).
 */
export function scanPages(scope: FeedScope, after: Cursor, opts: ScanOptions): ScanResult {
  const { engine } = scope;
  const watermark = engine.dbVersion();
  const pages: PagePlan[] = [];
  let enc = engine.payloadEncoder(opts.schemaHash);
  let page: PagePlan | undefined;
  let full = false;
  let complete = true;
  const close = (): void => {
    if (page === undefined) return;
    if (opts.payloads === true) page.payload = enc.finish() ?? new Uint8Array();
    else enc = engine.payloadEncoder(opts.schemaHash);
    pages.push(page);
    page = undefined;
  };
  const feed = engine.changes({
    after,
    excludeSiteId: scope.excludeSiteId,
    ...(scope.rowFilter ? { rowFilter: scope.rowFilter } : {}),
    ...(scope.audience === undefined ? {} : { audience: scope.audience }),
    ...(scope.priorFilter === undefined ? {} : { priorFilter: scope.priorFilter }),
  });
  for (const ch of feed) {
    const key = { dbVersion: ch.dbVersion, seq: ch.seq };
    if (opts.to !== undefined && compareCursor(key, opts.to) > 0) break;
    if (page !== undefined && full && compareCursor(key, page.to) !== 0) {
      const from = page.to;
      close();
      full = false;
      if (pages.length >= opts.maxPages) {
        complete = false;
        break;
      }
      page = { from, to: key, rows: 0, bytes: 0 };
    }
    page ??= { from: pages[pages.length - 1]?.to ?? after, to: key, rows: 0, bytes: 0 };
    enc.add(ch);
    page.to = key;
    page.rows++;
    page.bytes = enc.byteLength;
    if (page.bytes >= opts.pageBytes) full = true;
  }
  if (page !== undefined) {
    const last: PagePlan = page;
    if (opts.payloads !== true && opts.inlineUpTo !== undefined && pages.length === 0 && complete && last.bytes <= opts.inlineUpTo) {
      last.payload = enc.finish() ?? new Uint8Array();
      pages.push(last);
      page = undefined;
    } else close();
  }
  return { pages, complete, watermark };
}
