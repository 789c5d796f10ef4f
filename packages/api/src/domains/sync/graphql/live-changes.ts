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
 * - One page is built at a time and only when the consumer can take it (backpressure): in pull
 *   mode while a `next()` waits, in push mode ({@link LiveSink}) while the sink is ready. A
 *   consumer that is not ready is skipped and keeps its cursor, so a slow socket holds at most one
 *   batch and delays nobody else.
 * - Fan-out: a read woken by an event joins the shared page of that event (shared-pages.ts), so
 *   the subscribers of a database with the same RLS visibility at the same cursor share one build
 *   and one batch object (which the graphql-ws fast path serialises once, ws/live-fast-path.ts),
 *   and the page is handed to all of them in one synchronous loop (no promise per subscriber).
 * - The stream is registered as a live session (live-sessions.ts): when its credential is revoked
 *   or expires, its device is removed, OffSync is disabled or (for users) the RLS mode changes, it
 *   stops before building another page and ends with an ApiError whose `extensions.code` says why
 *   (docs/PROTOCOL.md "Live subscriptions end with their credential").
 */
import type { Central, SynchronousCentral } from '../central.ts';
import type { Cursor } from '../download-pages.ts';
import type { Principal } from '../sync-deps.ts';
import type { DownloadResult, SyncService } from '../sync.service.ts';
import { toApiError } from './caller.ts';
import type { ChangeHub } from './change-hub.ts';
import { liveEndError } from './live-sessions.ts';
import type { LiveEndCode, LiveSessions } from './live-sessions.ts';
import { joinEventPage, livePage } from './shared-pages.ts';
import type { PageWaiter } from './shared-pages.ts';

/**
 * How long a subscriber's schema-hash stamp is reused at most (it also refreshes after the
 * device's own uploads). Each stamp lives a random part of it (half to all): the subscribers an
 * event wakes together would otherwise all refresh in the same event, one schema hash each.
 */
const STAMP_TTL_MS = 1000;
const stampUntil = (now: number): number => now + STAMP_TTL_MS * (0.5 + Math.random() / 2);
/**
 * A stamp due within this long after a delivery is renewed right after the fan-out ({@link
 * dueRenewals}) instead of at the next event, inside the next fan-out (one schema-hash read,
 * a SQL statement, each): under a steady stream of events no subscriber reads its stamp while an
 * event waits. Renewing early only makes a stamp fresher; it never lives longer than
 * {@link STAMP_TTL_MS}.
 */
const STAMP_AHEAD_MS = 100;
/** Stamp renewals per turn of the event loop (a fan-out that made many due spreads them). */
const RENEWALS_PER_TURN = 16;

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
  /**
   * Download traffic of the stream (base64 bytes of the payloads delivered), summed and reported
   * every 15–30 s ({@link TRAFFIC_FLUSH_MS}, off the delivery path) and when the stream ends.
   */
  traffic?: (bytes: number) => void;
}

/**
 * Push mode of a live stream (the graphql-ws fast path, ws/live-fast-path.ts): batches are handed
 * to the sink synchronously, in the loop that settles a shared page, instead of through a promise
 * per subscriber. The stream calls `write` only right after `ready()` said true, so a sink that
 * is still busy with its previous batch (a slow socket) is simply skipped: its stream keeps its
 * cursor and reads again from there when the sink calls `resume` (what {@link LiveStream.attach}
 * returns). Memory per subscriber stays bounded and nobody waits for a slow socket.
 */
export interface LiveSink {
  /** True when the sink takes a batch now. */
  ready(): boolean;
  write(batch: ChangesBatch): void;
  /** The stream ended: with `error`, or done when `error` is undefined. Called once. */
  end(error: unknown): void;
}

/** Traffic counters are flushed about this often per stream (one counter write per interval, not per batch). */
export const TRAFFIC_FLUSH_MS = 30_000;
/**
 * A stream's next flush is due a random part (half to all) of {@link TRAFFIC_FLUSH_MS} after the
 * last: streams that a fan-out made due together drift apart instead of flushing together for ever.
 */
const flushDue = (now: number): number => now + TRAFFIC_FLUSH_MS * (0.5 + Math.random() / 2);
/** Traffic flushes started per turn of the event loop (a fan-out of N subscribers never starts N counter writes at once). */
const FLUSHES_PER_TURN = 8;


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

/**
 * Flushes of traffic counters that came due, a few per turn of the event loop: the counter write
 * never runs inside a fan-out, and a fan-out that made every subscriber due at once spreads the
 * writes over later turns instead of stalling the next event.
 */
/** Streams whose work `run` does, `perTurn` of them per turn of the event loop, in the order they came due. */
class PerTurnQueue {
  readonly #due: LiveStream[] = [];
  #scheduled = false;

  constructor(
    readonly perTurn: number,
    readonly run: (s: LiveStream) => void,
  ) {}

  add(s: LiveStream): void {
    this.#due.push(s);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#drain);
  }

  readonly #drain = (): void => {
    this.#scheduled = false;
    for (const s of this.#due.splice(0, this.perTurn)) this.run(s);
    if (this.#due.length > 0) {
      this.#scheduled = true;
      setImmediate(this.#drain);
    }
  };
}

const dueFlushes = new PerTurnQueue(FLUSHES_PER_TURN, (s) => s.flushTraffic());
const dueRenewals = new PerTurnQueue(RENEWALS_PER_TURN, (s) => s.renewStamp());

type Pending = { resolve(r: IteratorResult<ChangesBatch>): void; reject(e: unknown): void };

/**
 * One subscriber's stream. Pull mode (any GraphQL transport): an async iterator; a page is built
 * only while a `next()` waits (backpressure). Push mode ({@link LiveStream.attach}): a sink.
 *
 * Reading: at most one read at a time. A read woken by a hub event while caught up joins the
 * event's shared page synchronously (shared-pages.ts `joinEventPage`), and the page is handed to
 * every subscriber that joined in one loop — no promise, no async function per subscriber on the
 * common path. Replay, POSTGRES databases, principals that share with nobody and the subscriber
 * whose site is in the page read their own page (async).
 */
export class LiveStream implements AsyncIterableIterator<ChangesBatch>, PageWaiter {
  readonly #o: LiveChangesOptions;
  #cursor: Cursor;
  #started = false;
  #caughtUp = false;
  /** Something may be left after the cursor (set by events, by an incomplete page, by a batch the consumer could not take). */
  #dirty = true;
  /** The latest hub event since the last read (the key of its shared page). */
  #event: object | undefined;
  #reading = false;
  #ended: LiveEndCode | undefined;
  /** Set once the stream has finished (returned, ended, failed). */
  #done = false;
  /** Outcome not yet given to a pull consumer. */
  #terminal: { error: unknown } | undefined;
  #pending: Pending[] = [];
  #sink: LiveSink | undefined;
  #stamp: { hash: bigint; until: number } | undefined;
  #unlisten: (() => void) | undefined;
  #unregister: (() => void) | undefined;
  #traffic = 0;
  /** When the traffic summed so far is due (see {@link flushDue}). */
  #trafficDue = flushDue(Date.now());
  #flushQueued = false;
  #renewalQueued = false;

  constructor(o: LiveChangesOptions) {
    this.#o = o;
    this.#cursor = o.after;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<ChangesBatch>> {
    if (this.#terminal !== undefined) {
      const { error } = this.#terminal;
      this.#terminal = { error: undefined };
      return error === undefined ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(error);
    }
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#start();
      this.#kick();
    });
  }

  return(): Promise<IteratorResult<ChangesBatch>> {
    this.#finish(undefined);
    this.#terminal = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }

  /**
   * Switches to push mode (see {@link LiveSink}) and starts the stream. Returns `resume`, for the
   * sink to call once it is ready again after `ready()` said false.
   */
  attach(sink: LiveSink): () => void {
    this.#sink = sink;
    if (this.#terminal !== undefined) {
      const { error } = this.#terminal;
      this.#terminal = undefined;
      sink.end(error);
    } else if (this.#done) sink.end(undefined);
    else {
      this.#start();
      this.#kick();
    }
    return () => this.#kick();
  }

  /** Reports the traffic summed so far (exposed for the flush queue). */
  flushTraffic(): void {
    this.#flushQueued = false;
    this.#trafficDue = flushDue(Date.now());
    if (this.#traffic > 0) this.#o.traffic?.(this.#traffic);
    this.#traffic = 0;
  }

  /**
   * Renews a stamp that is due soon (exposed for the renewal queue, see {@link STAMP_AHEAD_MS}).
   * A failed read leaves the stamp as it was: the read at the next event fails the stream then.
   */
  renewStamp(): void {
    this.#renewalQueued = false;
    const sync = this.#o.db.synchronous;
    if (this.#done || sync === undefined) return;
    const now = Date.now();
    if (this.#stamp !== undefined && this.#stamp.until - now >= STAMP_AHEAD_MS) return;
    try {
      this.#readStamp(sync, now);
    } catch {
      // Left to the next event's read (#stampNow), which ends the stream with the error.
    }
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    const o = this.#o;
    this.#unlisten = o.hub.listen(o.db.id, (ev) => {
      // Own uploads are never sent back (but may change the device's schema hash stamp); an
      // event at or below the cursor announces nothing new.
      if (ev.originSiteId === o.site) this.#stamp = undefined;
      if (ev.originSiteId === o.site || ev.dbVersion < this.#cursor.dbVersion) return;
      this.#dirty = true;
      this.#event = ev;
      this.#kick();
    });
    this.#unregister = o.sessions?.register({
      databaseId: o.db.id,
      scope: 'subscription',
      siteId: o.site,
      principal: o.principal,
      end: (code) => {
        this.#ended ??= code;
        this.#kick();
      },
    });
  }

  #ready(): boolean {
    return this.#sink !== undefined ? this.#sink.ready() : this.#pending.length > 0;
  }

  /** Starts a read when one is due and possible; ends the stream when its session ended. */
  #kick(): void {
    if (this.#done || this.#reading || !this.#started) return;
    if (this.#ended !== undefined) return this.#finish(liveEndError(this.#ended));
    if (!this.#dirty || !this.#ready()) return;
    this.#dirty = false;
    this.#reading = true;
    const o = this.#o;
    // Caught up and woken by an event: the event's shared page; otherwise (replay) the head's.
    const event = this.#caughtUp ? this.#event : undefined;
    this.#event = undefined;
    try {
      const sync = o.db.synchronous;
      if (event !== undefined && sync !== undefined) {
        const hash = this.#stampNow(sync);
        if (joinEventPage(o.sync, sync, o.site, o.principal, this.#cursor, o.pageBytes, hash, event, this)) return;
      }
    } catch (e) {
      return this.#failed(e);
    }
    this.#readOwn(event, false);
  }

  /** PageWaiter: the shared page of the event this stream joined (null: read a page of its own). */
  onSharedPage(result: DownloadResult | null, error: unknown): void {
    if (error !== undefined) return this.#failed(error);
    if (result === null) return this.#readOwn(undefined, true);
    this.#took(result);
  }

  /** A read finished with `r`: deliver it, then read again if something is due. */
  #took(r: DownloadResult): void {
    try {
      this.#deliver(r);
    } catch (e) {
      return this.#failed(e);
    }
    this.#reading = false;
    this.#kick();
  }

  /**
   * One page read asynchronously: replay and catch-up (shared by watermark when possible), POSTGRES
   * databases, and `own` (a download of this subscriber's own: its event page was not for it).
   */
  #readOwn(event: object | undefined, own: boolean): void {
    const o = this.#o;
    const read = async (): Promise<DownloadResult> => {
      const sync = o.db.synchronous;
      if (sync !== undefined && own) return o.sync.download(sync, o.site, this.#cursor, o.principal, { pageBytes: o.pageBytes, maxPages: 1, schemaHash: this.#stampNow(sync) });
      if (sync !== undefined) return livePage(o.sync, sync, o.site, o.principal, this.#cursor, o.pageBytes, this.#stampNow(sync), event);
      // No synchronous feed (POSTGRES databases): each subscriber reads its own page (shared pages key on the engine).
      const now = Date.now();
      if (this.#stamp === undefined || now > this.#stamp.until) this.#stamp = { hash: await o.sync.stamp(o.db, o.site, undefined), until: stampUntil(now) };
      return o.sync.download(o.db, o.site, this.#cursor, o.principal, { pageBytes: o.pageBytes, maxPages: 1, schemaHash: this.#stamp.hash });
    };
    read().then(
      (r) => this.#took(r),
      (e: unknown) => this.#failed(e),
    );
  }

  #stampNow(db: SynchronousCentral): bigint {
    const now = Date.now();
    return this.#stamp === undefined || now > this.#stamp.until ? this.#readStamp(db, now) : this.#stamp.hash;
  }

  /** Reads the site's schema-hash stamp and keeps it until {@link stampUntil}. */
  #readStamp(db: SynchronousCentral, now: number): bigint {
    const hash = db.stampNow(this.#o.site, undefined);
    this.#stamp = { hash, until: stampUntil(now) };
    return hash;
  }

  #failed(e: unknown): void {
    this.#reading = false;
    this.#finish(toApiError(e));
  }

  /** Hands the page's batch to the consumer (or the caught-up marker), advancing the cursor. */
  #deliver(r: DownloadResult): void {
    if (this.#done) return;
    const o = this.#o;
    // Built while the session ended, or after the credential expired: never sent.
    if (this.#ended === undefined && o.sessions?.expired(o.principal) === true) this.#ended = 'CREDENTIAL_EXPIRED';
    if (this.#ended !== undefined) return;
    const page = batchOf(r);
    let batch: ChangesBatch;
    if (page !== undefined) batch = page;
    else if (!this.#caughtUp) batch = { payload: null, changes: 0, cursor: this.#cursor, final: true };
    else return;
    if (!this.#ready()) {
      // The consumer cannot take it now (cannot happen in the synchronous section from the
      // check to here, but a read takes time): keep the cursor, read again when it can.
      this.#dirty = true;
      return;
    }
    this.#cursor = batch.cursor;
    // Nothing was left when the page was built: nothing to read until the next event (a merge
    // after the build publishes an event, which sets dirty).
    this.#caughtUp = page === undefined || r.complete;
    if (page !== undefined && !r.complete) this.#dirty = true;
    const now = Date.now();
    this.#count(batch, now);
    if (this.#sink !== undefined) this.#sink.write(batch);
    else this.#pending.shift()?.resolve({ done: false, value: batch });
    const stamp = this.#stamp;
    if (stamp !== undefined && !this.#renewalQueued && o.db.synchronous !== undefined && stamp.until - now < STAMP_AHEAD_MS) {
      this.#renewalQueued = true;
      dueRenewals.add(this);
    }
  }

  #count(batch: ChangesBatch, now: number): void {
    if (this.#o.traffic === undefined || batch.payload === null) return;
    this.#traffic += 4 * Math.ceil(batch.payload.length / 3);
    if (!this.#flushQueued && now >= this.#trafficDue) {
      this.#flushQueued = true;
      dueFlushes.add(this);
    }
  }

  /** Ends the stream once: listeners off, traffic reported, the outcome to the consumer. */
  #finish(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#unlisten?.();
    this.#unregister?.();
    this.flushTraffic();
    if (this.#sink !== undefined) return this.#sink.end(error);
    const waiting = this.#pending;
    this.#pending = [];
    if (waiting.length === 0) {
      this.#terminal = { error };
      return;
    }
    const [first, ...rest] = waiting;
    if (error === undefined) first?.resolve({ done: true, value: undefined });
    else first?.reject(error);
    for (const p of rest) p.resolve({ done: true, value: undefined });
  }
}

/** The `changes` stream of one subscriber (see the file header). */
export function liveChanges(o: LiveChangesOptions): LiveStream {
  return new LiveStream(o);
}
