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
 * - The stream is registered as a live session (live-sessions.ts): when its credential is revoked
 *   or expires, its device is removed, OffSync is disabled or (for users) the RLS mode changes, it
 *   stops before building another page and ends with an ApiError whose `extensions.code` says why
 *   (docs/PROTOCOL.md "Live subscriptions end with their credential").
 */
import { Repeater } from 'graphql-yoga';
import type { CentralDatabase } from '../central-databases.ts';
import type { Cursor } from '../download-pages.ts';
import type { Principal } from '../sync-deps.ts';
import type { SyncService } from '../sync.service.ts';
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
  db: CentralDatabase;
  site: string;
  principal: Principal;
  after: Cursor;
  pageBytes: number;
  /** Registry that ends the stream with its credential (absent: never ended that way). */
  sessions?: LiveSessions;
}

export function liveChanges(o: LiveChangesOptions): Repeater<ChangesBatch> {
  return new Repeater<ChangesBatch>(async (push, stop) => {
    let cursor = o.after;
    let dirty = false;
    let stopped = false;
    let ended: LiveEndCode | undefined;
    let wake: (() => void) | undefined;
    let stamp: { hash: bigint; at: number } | undefined;
    const schemaHash = (): bigint => {
      const now = Date.now();
      if (stamp === undefined || now - stamp.at > STAMP_TTL_MS) stamp = { hash: o.sync.stampFor(o.db, o.site, undefined), at: now };
      return stamp.hash;
    };
    const unlisten = o.hub.listen(o.db.id, (event) => {
      // Own uploads are never sent back (but may change the device's schema hash stamp); an
      // event at or below the cursor announces nothing new.
      if (event.originSiteId === o.site) stamp = undefined;
      if (event.originSiteId === o.site || event.dbVersion < cursor.dbVersion) return;
      dirty = true;
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
        const r = await livePage(o.sync, o.db, o.site, o.principal, cursor, o.pageBytes, schemaHash());
        const page = r.pages[0];
        // Built while the session ended, or after the credential expired: never sent.
        if (ended === undefined && o.sessions?.expired(o.principal) === true) ended = 'CREDENTIAL_EXPIRED';
        if (ended !== undefined) break;
        if (page !== undefined) {
          cursor = page.to;
          caughtUp = r.complete;
          await push({ payload: page.payload ?? null, changes: page.rows, cursor, final: r.complete });
          continue;
        }
        if (!caughtUp) {
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
