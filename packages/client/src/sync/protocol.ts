/**
 * The G3 HTTP protocol (docs/PROTOCOL.md §P1) as generators that yield {@link HttpRequest}s
 * and receive {@link HttpResponse}s, so the same code runs over `fetch` (async API) and over the
 * blocking worker (SQL functions). Pure: no I/O here.
 */
import { bodyText, ensureOk, SyncError, SyncProtocolError } from './http.ts';
import type { HttpRequest, HttpResponse } from './http.ts';
import type { NetworkConfig, PageRef, PullBatch, PullRequest, PushChunk, SyncStatus } from './types.ts';

/** The SQLite Sync library version whose G3 behaviour this client implements (`X-CloudSync-Version`). */
export const CLOUDSYNC_COMPAT_VERSION = '1.1.4';
/** Chunks up to this size are sent inline (`{"blob":…}`); larger ones go through an upload URL. */
export const INLINE_LIMIT = 128 * 1024;

export type HttpStep<T> = Generator<HttpRequest, T, HttpResponse>;

/** Per-connection protocol state (the optional runtime ticket). */
export interface ProtocolContext {
  net: NetworkConfig;
  /** 32 lowercase hex digits. */
  siteHex: string;
  ticket?: string;
}

function base(ctx: ProtocolContext): string {
  return `${ctx.net.address}/v2/cloudsync/databases/${encodeURIComponent(ctx.net.databaseId)}/${ctx.siteHex}`;
}

function apiHeaders(ctx: ProtocolContext, json: boolean): Record<string, string> {
  const h: Record<string, string> = { 'X-CloudSync-Version': CLOUDSYNC_COMPAT_VERSION };
  if (ctx.net.credential !== undefined) h['Authorization'] = `Bearer ${ctx.net.credential}`;
  if (ctx.ticket !== undefined) h['X-CloudSync-Ticket'] = ctx.ticket;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

function* api(ctx: ProtocolContext, method: 'GET' | 'POST', action: string, body?: unknown, extra: Record<string, string> = {}): HttpStep<HttpResponse> {
  const req: HttpRequest = { method, url: `${base(ctx)}/${action}`, headers: { ...apiHeaders(ctx, body !== undefined), ...extra } };
  if (body !== undefined) req.body = new TextEncoder().encode(JSON.stringify(body));
  const res = ensureOk(yield req);
  const ticket = res.headers['x-cloudsync-ticket'];
  if (ticket !== undefined && ticket !== '') ctx.ticket = ticket;
  return res;
}

function parseJson(res: HttpResponse, what: string, text = bodyText(res)): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SyncProtocolError(`invalid JSON in ${what} response`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined);

/** Parses a SyncStatus; undefined when the object carries no version fields. */
export function parseStatus(v: unknown): SyncStatus | undefined {
  if (!isObj(v)) return undefined;
  const opt = int(v['lastOptimisticVersion']);
  const conf = int(v['lastConfirmedVersion']);
  if (opt === undefined && conf === undefined) return undefined;
  const s: SyncStatus = { lastOptimisticVersion: opt ?? -1, lastConfirmedVersion: conf ?? -1, gaps: Array.isArray(v['gaps']) ? v['gaps'] : [] };
  const f = v['failures'];
  if (isObj(f)) {
    s.failures = {};
    if (isObj(f['apply'])) s.failures.apply = f['apply'];
    if (isObj(f['check'])) s.failures.check = f['check'];
  }
  return s;
}

/** `GET status`; null for an empty reply. */
export function* statusCall(ctx: ProtocolContext): HttpStep<SyncStatus | null> {
  const res = yield* api(ctx, 'GET', 'status');
  if (res.body.length === 0) return null;
  return parseStatus(parseJson(res, 'status')) ?? null;
}

/** Uploads one chunk: inline when ≤ 128 KiB, otherwise `GET upload` → `PUT` → `POST apply {url}`. */
export function* pushCall(ctx: ProtocolContext, chunk: PushChunk): HttpStep<SyncStatus | null> {
  const window = { dbVersionMin: chunk.dbVersionMin, dbVersionMax: chunk.dbVersionMax };
  let body: Record<string, unknown>;
  if (chunk.payload.length <= INLINE_LIMIT) {
    body = { blob: Buffer.from(chunk.payload.buffer, chunk.payload.byteOffset, chunk.payload.byteLength).toString('base64'), ...window };
  } else {
    const up = parseJson(yield* api(ctx, 'GET', 'upload'), 'upload');
    const url = isObj(up) ? up['url'] : undefined;
    if (typeof url !== 'string' || url === '') throw new SyncProtocolError("missing 'url' in upload response");
    ensureOk(yield { method: 'PUT', url, headers: { Accept: 'text/plain', 'Content-Type': 'application/octet-stream' }, body: chunk.payload }, 300);
    body = { url, ...window };
  }
  const res = yield* api(ctx, 'POST', 'apply', body);
  if (res.body.length === 0) return null;
  return parseStatus(parseJson(res, 'apply')) ?? null;
}

function pageOf(v: unknown): PageRef {
  if (!isObj(v)) throw new SyncProtocolError('invalid chunk in check response');
  const extra: { cursor?: number; watermark?: number } = {};
  const c = int(v['cursor']) ?? int(v['nextCursor']);
  const w = int(v['watermark']);
  if (c !== undefined) extra.cursor = c;
  if (w !== undefined) extra.watermark = w;
  if (typeof v['payload'] === 'string') {
    const b = Buffer.from(v['payload'], 'base64');
    return { payload: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), ...extra }; // a view, not a second copy
  }
  if (typeof v['url'] === 'string') return { url: v['url'], ...extra };
  throw new SyncProtocolError("missing 'url' or 'payload' in check response");
}

/** Interprets a `check` reply (the five shapes of §P1). */
export function parseCheck(res: HttpResponse): PullBatch {
  if (res.body.length === 0) return { kind: 'empty' };
  const text = bodyText(res); // decoded once: a reply with inline pages is megabytes of JSON
  if (text.trim() === '') return { kind: 'empty' };
  const v = parseJson(res, 'check', text);
  if (!isObj(v)) throw new SyncProtocolError('invalid check response');
  const failure = isObj(v['failures']) ? v['failures']['check'] : undefined;
  if (isObj(failure) && failure['retryable'] === false) {
    throw new SyncError(String(failure['code'] ?? 'check_failed'), String(failure['message'] ?? 'check failed'), false);
  }
  if (typeof v['url'] === 'string') return { kind: 'pages', pages: [{ url: v['url'] }], final: true };
  const data = v['data'];
  if (!isObj(data)) {
    const status = parseStatus(v);
    if (status !== undefined) return { kind: 'notReady', status };
    throw new SyncProtocolError('invalid check response');
  }
  const pages = Array.isArray(data['chunks']) ? data['chunks'].map(pageOf) : [pageOf(data)];
  const final = data['final'] !== false;
  const batch: PullBatch = { kind: 'pages', pages, final };
  const next = int(data['nextCursor']) ?? pages[pages.length - 1]?.cursor;
  const w = int(data['watermark']) ?? pages[pages.length - 1]?.watermark;
  if (next !== undefined) batch.nextCursor = next;
  if (w !== undefined) batch.watermark = w;
  if (!final && next === undefined) throw new SyncProtocolError('non-final check response without nextCursor');
  return batch;
}

/** `POST check` with `{dbVersion, seq, cursor[, maxChunks]}`. */
export function* pullCall(ctx: ProtocolContext, req: PullRequest): HttpStep<PullBatch> {
  const body: Record<string, number> = { dbVersion: req.dbVersion, seq: req.seq, cursor: req.cursor };
  if (req.maxChunks !== undefined) body['maxChunks'] = req.maxChunks;
  const res = yield* api(ctx, 'POST', 'check', body, { 'X-CloudSync-Capabilities': 'check-status-response, check-chunks' });
  return parseCheck(res);
}

/** GETs a download page (artifact URL: no credentials). */
export function* downloadCall(url: string): HttpStep<Uint8Array> {
  return ensureOk(yield { method: 'GET', url, headers: {} }, 300).body;
}

/** Runs an HTTP step generator over a blocking fetch. */
export function runHttpBlocking<T>(step: HttpStep<T>, http: (r: HttpRequest) => HttpResponse): T {
  let next = step.next();
  while (!next.done) next = step.next(http(next.value));
  return next.value;
}

/** Runs an HTTP step generator over an asynchronous fetch. */
export async function runHttpAsync<T>(step: HttpStep<T>, http: (r: HttpRequest) => Promise<HttpResponse>): Promise<T> {
  let next = step.next();
  while (!next.done) next = step.next(await http(next.value));
  return next.value;
}
