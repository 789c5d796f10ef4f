/**
 * The sync logic (G3 against OffSync), written once as generators that yield transport
 * operations, and run either blocking (SQL functions) or asynchronously (async API):
 *
 * - send: own changes after `send_dbversion`, cut into payload chunks on db_version boundaries,
 *   windows tiling contiguously from `send_dbversion + 1`; after each reply
 *   `send_dbversion := lastOptimisticVersion` (capped at what was sent: never trust more).
 * - receive: `check` from the durable cursor, following `nextCursor` through non-final batches;
 *   every page is applied atomically; only the final page moves the durable cursor (to the
 *   watermark, else to the last applied change). Each non-final page stores, in the transaction
 *   that applies it, the server's continuation cursor after it, so an interrupted download
 *   resumes after the last applied page (an expired one makes the server re-send from the
 *   durable cursor: never a skip). Pipelined: the next batch (and the next page URL) is asked
 *   for with a `prefetch` op before the current page is applied, so the server builds page n+1
 *   while the client applies page n; the runner over a blocking transport ignores prefetches.
 */
import type { Change, SyncEngine } from '@offsync/core';
import type { ClientSettings } from './settings.ts';
import { SyncProtocolError } from './http.ts';
import { restore, resyncPending, saveAndClear } from './resync.ts';
import type { BlockingSyncTransport, SyncTransport } from './transport.ts';
import type { Cursor, PullBatch, PullRequest, PushChunk, ReceiveResult, SendResult, SyncStatus } from './types.ts';

/** An op a runner may start ahead of time: the same op yielded later takes its answer. */
export type PrefetchableOp = { kind: 'pull'; req: PullRequest } | { kind: 'download'; url: string };
export type Op = { kind: 'push'; chunk: PushChunk } | PrefetchableOp | { kind: 'status' } | { kind: 'prefetch'; op: PrefetchableOp };
export type OpResult =
  | { kind: 'push'; status: SyncStatus | null }
  | { kind: 'pull'; batch: PullBatch }
  | { kind: 'download'; bytes: Uint8Array }
  | { kind: 'status'; status: SyncStatus | null }
  | { kind: 'prefetch' };
export type Step<T> = Generator<Op, T, OpResult>;

export interface Progress {
  phase: 'upload' | 'download';
  /** Pages (download) or chunks (upload) done so far in this run. */
  chunks: number;
  rows: number;
  bytes: number;
}

export interface SessionOptions {
  /** Largest upload chunk before compression (default 5 MB; ≤ 128 KiB compressed goes inline). */
  maxChunkBytes?: number;
  /** `maxChunks` sent with `check` (default: the server's). */
  maxChunks?: number;
  onProgress?: (p: Progress) => void;
  onChanges?: (e: { tables: string[]; rows: number }) => void;
  /** The database took a new site id (a resync, resync.ts): requests must name it from now on. */
  onSiteId?: (siteId: Uint8Array) => void;
  /** A resync after `resync_required` finished (resync.ts). */
  onResync?: (e: ResyncResult) => void;
}

/** What a resync did (resync.ts): the download from 0 and the own writes kept across it. */
export interface ResyncResult {
  receive: ReceiveResult;
  /** Rows with un-uploaded own writes, saved before the synced tables were cleared. */
  saved: number;
  /** Saved rows written again as local writes (0 until the download from 0 is complete). */
  restored: number;
  complete: boolean;
}

const MAX_DRAIN_CHUNKS = 10_000;
/** Pages per `check` batch unless the app sets `maxChunks`: one, so downloads pipeline page by page. */
export const PIPELINE_MAX_CHUNKS = 1;
const AFTER_WHOLE_VERSION = Number.MAX_SAFE_INTEGER;

function* op<K extends OpResult['kind']>(o: Op & { kind: K }): Step<OpResult & { kind: K }> {
  const r = yield o;
  if (r.kind !== o.kind) throw new SyncProtocolError(`transport answered ${r.kind} to ${o.kind}`);
  return r as OpResult & { kind: K };
}

/** Runs a step over a blocking transport: one request at a time, prefetches are no-ops. */
export function runBlocking<T>(step: Step<T>, t: BlockingSyncTransport): T {
  let next = step.next();
  while (!next.done) {
    const o = next.value;
    let r: OpResult;
    if (o.kind === 'push') r = { kind: 'push', status: t.push(o.chunk) };
    else if (o.kind === 'pull') r = { kind: 'pull', batch: t.pull(o.req) };
    else if (o.kind === 'download') r = { kind: 'download', bytes: t.download(o.url) };
    else if (o.kind === 'prefetch') r = { kind: 'prefetch' };
    else r = { kind: 'status', status: t.status() };
    next = step.next(r);
  }
  return next.value;
}

function prefetchKey(o: PrefetchableOp): string {
  return o.kind === 'download' ? `d ${o.url}` : `p ${o.req.dbVersion} ${o.req.seq} ${o.req.cursor} ${o.req.maxChunks ?? ''}`;
}

function startOp(o: PrefetchableOp, t: SyncTransport): Promise<OpResult> {
  return o.kind === 'pull' ? t.pull(o.req).then((batch) => ({ kind: 'pull', batch })) : t.download(o.url).then((bytes) => ({ kind: 'download', bytes }));
}

/**
 * Event-loop turns given to a request just started before the step's synchronous work: `fetch`
 * (undici) writes a request on a pooled keep-alive connection only after a few turns (one on an
 * idle loop; up to five measured right after a multi-megabyte reply). Each costs microseconds.
 */
const PREFETCH_TURNS = 8;
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise<void>((ok) => setImmediate(ok));
};

/**
 * Runs a step over an asynchronous transport. A `prefetch` starts its op now and lets the step
 * go on (after a few event-loop turns, so the request is written before the step's synchronous
 * apply); the same op yielded later awaits that request instead of sending another. A failed
 * prefetch fails the op that takes it; one never taken is dropped.
 */
export async function runAsync<T>(step: Step<T>, t: SyncTransport): Promise<T> {
  const ahead = new Map<string, Promise<OpResult>>();
  let next = step.next();
  while (!next.done) {
    const o = next.value;
    let r: OpResult;
    if (o.kind === 'push') r = { kind: 'push', status: await t.push(o.chunk) };
    else if (o.kind === 'prefetch') {
      const key = prefetchKey(o.op);
      if (!ahead.has(key)) {
        const p = startOp(o.op, t);
        p.catch(() => undefined); // surfaces when taken
        ahead.set(key, p);
        await turns(PREFETCH_TURNS);
      }
      r = { kind: 'prefetch' };
    } else if (o.kind === 'pull' || o.kind === 'download') {
      const key = prefetchKey(o);
      const p = ahead.get(key);
      ahead.delete(key);
      r = await (p ?? startOp(o, t));
    } else r = { kind: 'status', status: await t.status() };
    next = step.next(r);
  }
  return next.value;
}

interface Pending {
  payload: Uint8Array;
  max: number;
  rows: number;
}

/** A (status, local version) pair as the app sees it (docs/PROTOCOL.md §P1). */
export function sendStatus(st: SyncStatus, localVersion: number): SendResult['status'] {
  if (st.lastOptimisticVersion < 0 || st.lastConfirmedVersion < 0) return 'error';
  if (st.gaps.length > 0 || st.lastOptimisticVersion < localVersion) return 'out-of-sync';
  return st.lastOptimisticVersion === st.lastConfirmedVersion ? 'synced' : 'syncing';
}

export class SyncSession {
  readonly engine: SyncEngine;
  readonly settings: ClientSettings;
  readonly opts: SessionOptions;
  constructor(engine: SyncEngine, settings: ClientSettings, opts: SessionOptions = {}) {
    this.engine = engine;
    this.settings = settings;
    this.opts = opts;
  }

  /**
   * Own changes after `after`. With block columns (docs/PROTOCOL.md "Block columns") the local
   * feed would leave their edits out (their whole values never travel and their block cells are
   * only in the full feed): the full feed is read then, which first folds own text writes into
   * block cells, and only this site's changes are kept.
   */
  ownChanges(after: Cursor): Generator<Change> {
    const e = this.engine;
    if (!e.syncedTables().some((t) => e.blockColumns(t.name).length > 0)) return e.changes({ localOnly: true, after });
    const all = e.changes({ after });
    const own = e.siteId;
    return (function* () {
      for (const c of all) if (sameBytes(c.siteId, own)) yield c;
    })();
  }

  /** Own changes not yet accepted by the server, as payload chunks cut on db_version boundaries. */
  pendingChunks(): Pending[] {
    const after = { dbVersion: this.settings.get('send_dbversion'), seq: AFTER_WHOLE_VERSION };
    const budget = this.opts.maxChunkBytes ?? 5_000_000;
    const out: Pending[] = [];
    const enc = this.engine.payloadEncoder();
    let max = -1;
    let rows = 0;
    for (const c of this.ownChanges(after)) {
      if (c.dbVersion !== max && enc.byteLength >= budget) {
        const payload = enc.finish();
        if (payload !== null) out.push({ payload, max, rows });
        rows = 0;
      }
      enc.add(c);
      rows++;
      max = c.dbVersion;
    }
    const payload = enc.finish();
    if (payload !== null) out.push({ payload, max, rows });
    return out;
  }

  /** True when own changes are still unsent (cheap: stops at the first change). */
  hasPendingLocal(): boolean {
    const it = this.ownChanges({ dbVersion: this.settings.get('send_dbversion'), seq: AFTER_WHOLE_VERSION });
    const first = it.next();
    it.return(undefined);
    return first.done !== true;
  }

  #localVersion(pending: Pending[]): number {
    const v = Math.max(this.settings.get('own_max'), pending[pending.length - 1]?.max ?? 0);
    if (v > this.settings.get('own_max')) this.settings.set('own_max', v);
    return v;
  }

  *send(): Step<SendResult> {
    const chunks = this.pendingChunks();
    const localVersion = this.#localVersion(chunks);
    let sendV = this.settings.get('send_dbversion');
    if (chunks.length === 0) {
      if (sendV === 0 && localVersion === 0) return { status: 'synced', localVersion, serverVersion: 0 };
      const { status } = yield* op({ kind: 'status' });
      return this.#result(status, localVersion, sendV);
    }
    let last: SyncStatus | null = null;
    let done = 0;
    let rows = 0;
    let bytes = 0;
    for (const chunk of chunks) {
      const { status } = yield* op({ kind: 'push', chunk: { payload: chunk.payload, dbVersionMin: Math.min(sendV + 1, chunk.max), dbVersionMax: chunk.max } });
      last = status;
      if (status?.failures?.apply !== undefined) break;
      sendV = status !== null && status.lastOptimisticVersion >= 0 ? Math.min(status.lastOptimisticVersion, chunk.max) : chunk.max;
      this.settings.set('send_dbversion', sendV);
      done++;
      rows += chunk.rows;
      bytes += chunk.payload.length;
      this.opts.onProgress?.({ phase: 'upload', chunks: done, rows, bytes });
      if (sendV < chunk.max) break; // the server asks for a resend from sendV + 1
    }
    return this.#result(last, localVersion, sendV);
  }

  #result(st: SyncStatus | null, localVersion: number, sendV: number): SendResult {
    if (st === null) return { status: sendV >= localVersion ? 'synced' : 'syncing', localVersion, serverVersion: sendV };
    const r: SendResult = { status: sendStatus(st, localVersion), localVersion, serverVersion: st.lastOptimisticVersion };
    if (st.failures?.apply !== undefined) r.lastFailure = st.failures.apply;
    return r;
  }

  *hasUnsent(): Step<boolean> {
    const localVersion = this.#localVersion(this.hasPendingLocal() ? this.pendingChunks() : []);
    if (localVersion === 0) return false;
    const { status } = yield* op({ kind: 'status' });
    const server = status !== null && status.lastOptimisticVersion >= 0 ? status.lastOptimisticVersion : this.settings.get('send_dbversion');
    return server < localVersion;
  }

  /**
   * Applies one page atomically; on the final page also moves the durable cursor. `resume`, when
   * given, is stored in the same transaction as where an interrupted download resumes (the
   * continuation cursor after this page; 0 once the download is done).
   */
  applyPage(bytes: Uint8Array, finalCursor: ((lastApplied: Cursor | undefined) => Cursor | undefined) | undefined, resume?: number): { rows: number; tables: string[] } {
    return this.engine.driver.transaction(() => {
      const r = this.engine.applyPayload(bytes);
      const to = finalCursor?.(r.last);
      if (to !== undefined) this.settings.advanceCursor(to);
      if (resume !== undefined) this.settings.setResumeCursor(resume);
      return { rows: r.received, tables: r.tables };
    });
  }

  /**
   * Drains `check` from the durable cursor (or from the continuation cursor stored after the last
   * applied page of an interrupted download). `maxChunks` defaults to {@link PIPELINE_MAX_CHUNKS}:
   * batches of one page, so the next one is built by the server while this one is applied.
   */
  *receive(maxChunks: number | undefined = this.opts.maxChunks ?? PIPELINE_MAX_CHUNKS): Step<ReceiveResult> {
    const res: ReceiveResult = { rows: 0, tables: [], chunks: 0, bytes: 0, complete: false };
    const tables = new Set<string>();
    const start = this.settings.cursor();
    const reqAt = (cursor: number): PullRequest => (maxChunks === undefined ? { ...start, cursor } : { ...start, cursor, maxChunks });
    let cursor = this.settings.resumeCursor();
    try {
      while (res.chunks < MAX_DRAIN_CHUNKS) {
        const { batch } = yield* op({ kind: 'pull', req: reqAt(cursor) });
        if (batch.kind === 'empty') {
          // Nothing after a continuation cursor either: the next drain starts at the durable cursor.
          if (cursor !== 0) this.engine.driver.transaction(() => this.settings.setResumeCursor(0));
          res.complete = true;
          break;
        }
        if (batch.kind === 'notReady') {
          res.notReady = true;
          if (batch.status.failures?.check !== undefined) res.lastFailure = batch.status.failures.check;
          break;
        }
        const next = batch.final ? undefined : batch.nextCursor;
        if (!batch.final && next === undefined) throw new SyncProtocolError('non-final check response without nextCursor');
        let askedNext = false;
        const { pages } = batch;
        for (let i = 0; i < pages.length; i++) {
          const page = pages[i];
          if (page === undefined) continue;
          const bytes = 'payload' in page ? page.payload : (yield* op({ kind: 'download', url: page.url })).bytes;
          // Ask for what follows before applying this page: the next page's URL, or the next batch
          // once every remaining page of this one is in hand.
          const following = pages[i + 1];
          if (following !== undefined && 'url' in following) yield* op({ kind: 'prefetch', op: { kind: 'download', url: following.url } });
          if (next !== undefined && !askedNext && pages.slice(i + 1).every((p) => 'payload' in p)) {
            askedNext = true;
            yield* op({ kind: 'prefetch', op: { kind: 'pull', req: reqAt(next) } });
          }
          const isLast = i === pages.length - 1;
          const isFinal = batch.final && isLast;
          const w = page.watermark ?? batch.watermark;
          // Where to resume after this page: its own continuation cursor (the batch's for its last page).
          const resume = isFinal ? 0 : (page.cursor ?? (isLast ? next : undefined));
          let applied: { rows: number; tables: string[] };
          try {
            applied = this.applyPage(bytes, isFinal ? (last) => (w !== undefined ? { dbVersion: w, seq: 0 } : last) : undefined, resume);
          } catch (e) {
            res.error = e instanceof Error ? e.message : String(e);
            return this.#finish(res, tables);
          }
          res.rows += applied.rows;
          for (const t of applied.tables) tables.add(t);
          res.chunks++;
          res.bytes += bytes.length;
          this.opts.onProgress?.({ phase: 'download', chunks: res.chunks, rows: res.rows, bytes: res.bytes });
        }
        if (next === undefined) {
          res.complete = true;
          break;
        }
        cursor = next;
      }
    } finally {
      if (res.rows > 0) this.opts.onChanges?.({ tables: [...tables], rows: res.rows });
    }
    return this.#finish(res, tables);
  }

  #finish(res: ReceiveResult, tables: Set<string>): ReceiveResult {
    res.tables = [...tables];
    return res;
  }

  /**
   * Resync after `resync_required` (resync.ts; docs/PROTOCOL.md "Compaction and the resync
   * horizon"): saves the un-uploaded own writes and clears the synced tables untracked (unless an
   * interrupted resync already did), downloads from 0, then writes the saved rows again as local
   * writes, which the next send uploads.
   */
  *resync(): Step<ResyncResult> {
    const own = (): Generator<Change> => this.ownChanges({ dbVersion: this.settings.get('send_dbversion'), seq: AFTER_WHOLE_VERSION });
    const saved = resyncPending(this.settings) ? -1 : saveAndClear(this.engine, this.settings, own()).rows;
    this.opts.onSiteId?.(this.engine.siteId);
    const receive = yield* this.receive();
    if (!receive.complete || receive.error !== undefined) return { receive, saved: Math.max(saved, 0), restored: 0, complete: false };
    const restored = restore(this.engine, this.settings);
    const r: ResyncResult = { receive, saved: saved < 0 ? restored : saved, restored, complete: true };
    this.opts.onResync?.(r);
    return r;
  }

  /** A payload pushed by a subscription (live mode): applied atomically, cursor to its watermark. */
  applyNotice(payload: Uint8Array, watermark: number | undefined): { rows: number; tables: string[] } {
    const r = this.applyPage(payload, (last) => (watermark !== undefined ? { dbVersion: watermark, seq: 0 } : last));
    if (r.rows > 0) this.opts.onChanges?.(r);
    return r;
  }
}

/** The SQL functions' JSON result strings. */
export function sendJson(s: SendResult): Record<string, unknown> {
  const o: Record<string, unknown> = { status: s.status, localVersion: s.localVersion, serverVersion: s.serverVersion };
  if (s.lastFailure !== undefined) o['lastFailure'] = s.lastFailure;
  return o;
}

export function receiveJson(r: ReceiveResult): Record<string, unknown> {
  const o: Record<string, unknown> = { rows: r.rows, tables: r.tables, chunks: r.chunks, bytes: r.bytes, complete: r.complete };
  if (r.error !== undefined) o['error'] = r.error;
  if (r.lastFailure !== undefined) o['lastFailure'] = r.lastFailure;
  return o;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
