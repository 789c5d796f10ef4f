/**
 * The `changes` subscription of one subscriber: replay everything after the cursor in pages, then
 * stream new batches as `syncChanges` events arrive, with no gap and no duplicate.
 *
 * - The hub listener is registered BEFORE the first read, so a merge committed during the replay
 *   is never missed: it marks the stream dirty and the loop reads again.
 * - Events only wake the loop; the data always comes from the central database's change feed
 *   after the last emitted cursor (exclusive, server version space), so a change is emitted once
 *   even when an event announces what the replay already sent (dedupe by cursor).
 * - Every batch carries the cursor of its last change; a client that resubscribes with the last
 *   cursor it received gets exactly what it has not seen.
 * - One page is built at a time and only when the previous one was consumed (backpressure).
 * - Fan-out: a read woken by an event asks shared-pages.ts for the page of that event, so the
 *   subscribers of a database with the same RLS visibility at the same cursor share one build and
 *   one batch object (which the graphql-ws fast path serialises once, ws/live-fast-path.ts).
 * - The stream is registered as a live session (live-sessions.ts): when its credential is revoked
 *   or expires, its device is removed, OffSync is disabled or (for users) the RLS mode changes, it
 *   stops before building another page and ends with an ApiError whose `extensions.code` says why
 *   (docs/PROTOCOL.md "Live subscriptions end with their credential").
 */
import { Repeater } from 'graphql-yoga';
import type { Central } from '../central-databases.ts';
import type { Cursor } from '../download-pages.ts';
import type { Principal } from '../sync-deps.ts';
import type { DownloadResult, SyncService } from '../sync.service.ts';
import { toApiError } from './caller.ts';
import type { ChangeHub } from './change-hub.ts';
import { liveEndError } from './live-sessions.ts';
import type { LiveEndCode, LiveSessions } from './live-sessions.ts';
import { livePage } from './shared-pages.ts';

/** How long a subscriber's schema-hash stamp is reused (it also refreshes after the device's own uploads). */
const STAMP_TTL_MS = 1000;

export interface ChangesBatch {
  /** The encoded payload (same format as HTTP downloads); null on the "caught up" marker. */
  payload: Uint8Array | null;
  /** Changes in the payload. */
  changes: number;
  /** Key of the last change in the payload (or the input cursor on an empty marker). */
  cursor: Cursor;
  /** True when nothing after `cursor` was left for this subscriber when the batch was built. */
  final: boolean;
}

export interface LiveChangesOptions {
  sync: SyncService;
  hub: ChangeHub;
  db: Central;
  site: string;
  principal: Principal;
  after: Cursor;
  pageBytes: number;
  /** Registry that ends the stream with its credential (absent: never ended that way). */
  sessions?: LiveSessions;
}

/** One batch object per shared download result: subscribers of a shared page push the same object. */
const batches = new WeakMap<DownloadResult, ChangesBatch>();

function batchOf(r: DownloadResult): ChangesBatch | undefined {
  let b = batches.get(r);
  if (b === undefined) {
    const page = r.pages[0];
    if (page === undefined) return undefined;
    b = { payload: page.payload ?? null, changes: page.rows, cursor: page.to, final: r.complete };
    batches.set(r, b);
  }
  return b;
}

export function liveChanges(o: LiveChangesOptions): Repeater<ChangesBatch> {
  return new Repeater<ChangesBatch>(async (push, stop) => {
    let cursor = o.after;
    let dirty = false;
    /** The latest hub event since the last read (the key of its shared page). */
    let event: object | undefined;
    let stopped = false;
    let ended: LiveEndCode | undefined;
    let wake: (() => void) | undefined;
    let stamp: { hash: bigint; at: number } | undefined;
    const schemaHash = async (): Promise<bigint> => {
      const now = Date.now();
      if (stamp === undefined || now - stamp.at > STAMP_TTL_MS) stamp = { hash: await o.sync.stamp(o.db, o.site, undefined), at: now };
      return stamp.hash;
    };
    const unlisten = o.hub.listen(o.db.id, (ev) => {
      // Own uploads are never sent back (but may change the device's schema hash stamp); an
      // event at or below the cursor announces nothing new.
      if (ev.originSiteId === o.site) stamp = undefined;
      if (ev.originSiteId === o.site || ev.dbVersion < cursor.dbVersion) return;
      dirty = true;
      event = ev;
      wake?.();
    });
    void stop.then(() => {
      stopped = true;
      wake?.();
    });
    const unregister = o.sessions?.register({
      databaseId: o.db.id,
      scope: 'subscription',
      siteId: o.site,
      principal: o.principal,
      end: (code) => {
        ended = code;
        stopped = true;
        wake?.();
      },
    });
    try {
      let caughtUp = false;
      while (!stopped) {
        dirty = false;
        // Caught up and woken by an event: the event's shared page; otherwise (replay) the head's.
        const key: object | undefined = caughtUp ? event : undefined;
        event = undefined;
        const hash = await schemaHash();
        // POSTGRES databases: each subscriber reads its own page (shared pages key on the SQLite engine).
        const r: DownloadResult = o.db.kind === 'sqlite'
          ? await livePage(o.sync, o.db, o.site, o.principal, cursor, o.pageBytes, hash, key)
          : await o.sync.download(o.db, o.site, cursor, o.principal, { pageBytes: o.pageBytes, maxPages: 1, schemaHash: hash });
        const batch = batchOf(r);
        // Built while the session ended, or after the credential expired: never sent.
        if (ended === undefined && o.sessions?.expired(o.principal) === true) ended = 'CREDENTIAL_EXPIRED';
        if (ended !== undefined) break;
        if (batch !== undefined) {
          cursor = batch.cursor;
          caughtUp = r.complete;
          await push(batch);
          // Nothing was left when the page was built and no event came since: nothing to read
          // (a merge after the build publishes an event, which sets dirty).
          if (!r.complete) continue;
        } else if (!caughtUp) {
          // The replay found nothing: tell the client it is live from here.
          caughtUp = true;
          await push({ payload: null, changes: 0, cursor, final: true });
        }
        if (dirty || stopped) continue;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } catch (e) {
      throw toApiError(e);
    } finally {
      unlisten();
      unregister?.();
    }
    if (ended !== undefined) throw liveEndError(ended);
  });
}
