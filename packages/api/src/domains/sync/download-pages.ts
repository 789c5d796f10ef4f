/**
 * Download packages, streamed from the central database's change feed (docs/PROTOCOL.md §P1,
 * §P5): every change after an exclusive cursor, in (db_version, seq) order of the SERVER's
 * version space, without the requesting site's own changes, filtered by RLS. Pages are cut at
 * ≈ `pageBytes` of encoded (uncompressed) body, on a change boundary, and never between two
 * changes with the same (db_version, seq). Only one page is ever held in memory. Under slow
 * start (`firstPageBytes`) the budget grows page by page from a small first page up to
 * `pageBytes`, so a device starts applying while the server builds what follows.
 *
 * The SQLite scan is synchronous: the feed must not interleave with merges. The PostgreSQL scan
 * reads a consistent prefix: everything up to the watermark read before it.
 */
import type { Change } from '@offsync/core';
import type { PriorFilter, RowFilter, SyncEngine } from './sync-deps.ts';

import type { Cursor } from '@offsync/core';

export type { Cursor };

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
  /** The caller holds nothing yet (core `FeedOptions.holdsNothing`). */
  holdsNothing?: boolean;
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
  /**
   * Slow start (docs/PROTOCOL.md "Packages"): the first page of this scan is cut at this budget and
   * each following one at `pageGrowth` times the previous, up to `pageBytes`. Default: every page
   * at `pageBytes`.
   */
  firstPageBytes?: number | undefined;
  /** Growth of the page budget from one page to the next under slow start (default 2). */
  pageGrowth?: number | undefined;
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

/** A streaming payload encoder (core `PayloadEncoder`). */
interface PageEncoder {
  add(ch: Change): void;
  readonly byteLength: number;
  finish(): Uint8Array | null;
}

/** Default growth of the slow-start page budget, page to page. */
export const DEFAULT_PAGE_GROWTH = 2;

/**
 * The budget of page `index` (0-based) of a scan: `firstPageBytes · pageGrowth^index`, at least
 * 1 byte, capped at `pageBytes`; every page at `pageBytes` without slow start.
 */
export function pageBudget(opts: Pick<ScanOptions, 'pageBytes' | 'firstPageBytes' | 'pageGrowth'>, index: number): number {
  const first = opts.firstPageBytes;
  if (first === undefined || first >= opts.pageBytes) return opts.pageBytes;
  const growth = Math.max(1, opts.pageGrowth ?? DEFAULT_PAGE_GROWTH);
  return Math.min(opts.pageBytes, Math.max(1, Math.floor(first * growth ** index)));
}

/**
 * Cuts a feed into pages (the rules above), one change at a time, so the synchronous SQLite feed
 * and the asynchronous PostgreSQL feed share one page logic.
 */
class PageCutter {
  readonly #pages: PagePlan[] = [];
  readonly #after: Cursor;
  readonly #opts: ScanOptions;
  readonly #newEncoder: () => PageEncoder;
  #enc: PageEncoder;
  #page: PagePlan | undefined;
  #full = false;
  #complete = true;
  /** Budget of the page being filled. */
  #budget: number;

  constructor(after: Cursor, opts: ScanOptions, newEncoder: () => PageEncoder) {
    this.#after = after;
    this.#opts = opts;
    this.#newEncoder = newEncoder;
    this.#enc = newEncoder();
    this.#budget = pageBudget(opts, 0);
  }

  #close(): void {
    if (this.#page === undefined) return;
    if (this.#opts.payloads === true) this.#page.payload = this.#enc.finish() ?? new Uint8Array();
    else this.#enc = this.#newEncoder();
    this.#pages.push(this.#page);
    this.#page = undefined;
  }

  /** Adds one change; false: stop reading (past `to`, or `maxPages` pages are full). */
  add(ch: Change): boolean {
    const opts = this.#opts;
    const key = { dbVersion: ch.dbVersion, seq: ch.seq };
    if (opts.to !== undefined && compareCursor(key, opts.to) > 0) return false;
    let page = this.#page;
    if (page !== undefined && this.#full && compareCursor(key, page.to) !== 0) {
      const from = page.to;
      this.#close();
      this.#full = false;
      if (this.#pages.length >= opts.maxPages) {
        this.#complete = false;
        return false;
      }
      page = { from, to: key, rows: 0, bytes: 0 };
      this.#budget = pageBudget(opts, this.#pages.length);
    }
    page ??= { from: this.#pages[this.#pages.length - 1]?.to ?? this.#after, to: key, rows: 0, bytes: 0 };
    this.#page = page;
    this.#enc.add(ch);
    page.to = key;
    page.rows++;
    page.bytes = this.#enc.byteLength;
    if (page.bytes >= this.#budget) this.#full = true;
    return true;
  }

  result(watermark: number): ScanResult {
    const last = this.#page;
    if (last !== undefined) {
      const { payloads, inlineUpTo } = this.#opts;
      if (payloads !== true && inlineUpTo !== undefined && this.#pages.length === 0 && this.#complete && last.bytes <= inlineUpTo) {
        last.payload = this.#enc.finish() ?? new Uint8Array();
        this.#pages.push(last);
        this.#page = undefined;
      } else this.#close();
    }
    return { pages: this.#pages, complete: this.#complete, watermark };
  }
}

/**
 * Scans the feed after `after` into pages, stopping at `to` or after `maxPages` (the feed closes
 * its statements when abandoned, so stopping early costs nothing).
 */
export function scanPages(scope: FeedScope, after: Cursor, opts: ScanOptions): ScanResult {
  const { engine } = scope;
  const watermark = engine.dbVersion();
  const cutter = new PageCutter(after, opts, () => engine.payloadEncoder(opts.schemaHash));
  // The feed as a cursor (core `FeedCursor`): one object whose fields each step overwrites, no
  // Change object per change; the cutter and the encoder read a change and keep none of it.
  const feed = engine.feedCursor({
    after,
    excludeSiteId: scope.excludeSiteId,
    ...(scope.rowFilter ? { rowFilter: scope.rowFilter } : {}),
    ...(scope.audience === undefined ? {} : { audience: scope.audience }),
    ...(scope.priorFilter === undefined ? {} : { priorFilter: scope.priorFilter }),
    ...(scope.holdsNothing === true ? { holdsNothing: true } : {}),
  });
  try {
    while (feed.next()) if (!cutter.add(feed)) break;
  } finally {
    feed.close();
  }
  return cutter.result(watermark);
}

/**
 * The same over an asynchronous feed (PostgreSQL). `watermark` must be read before the feed: every
 * version up to it was committed then (versions commit in order under the clock row lock).
 */
export async function scanFeedPages(feed: AsyncIterable<Change>, watermark: number, after: Cursor, opts: ScanOptions, newEncoder: () => PageEncoder): Promise<ScanResult> {
  const cutter = new PageCutter(after, opts, newEncoder);
  for await (const ch of feed) if (!cutter.add(ch)) break;
  return cutter.result(watermark);
}
