/**
 * The API calls (`upload`, `apply`, `check`, `status`) with the exact response shape of each
 * generation (docs/PROTOCOL.md §P1):
 *
 * | call            | G1 / G2a                     | G2b                 | G3 |
 * |-----------------|------------------------------|---------------------|----|
 * | GET upload      | plain-text URL               | `{"url"}`           | `{"url"}` |
 * | POST upload/apply | empty 200                  | SyncStatus          | SyncStatus (+ `failures.apply`) |
 * | POST check      | plain-text URL / empty       | `{"url"}` / empty   | `{"data":…}` / empty |
 * | GET status      | —                            | SyncStatus          | SyncStatus |
 */
import { MAX_SEQ, pageBudget } from '../download-pages.ts';
import type { Cursor } from '../download-pages.ts';
import type { CheckChunk, CheckData, RejectedReport, SyncStatus, SyncStatusReply, VersionWindow } from '@offsync/core';
import type { RejectionEntry } from '../rejection-log.ts';
import { chunkFieldsOf } from '../chunk-batches.ts';
import { SyncError, toSyncError } from '../sync-errors.ts';
import { annotateRequest } from '../../../observability/request-context.ts';
import type { ApiCall } from './context.ts';
import type { Resume } from './g3-cursors.ts';
import type { PageRequest } from '../prebuilt-pages.ts';
import type { DownloadOptions } from '../sync.service.ts';
import { parseJsonObject, payloadPlace, readBody, sendEmpty, sendJson, sendJsonWithPayloads, sendText } from './io.ts';

const isJsonGen = (c: ApiCall): boolean => c.generation === 'G2b' || c.generation === 'G3';

/** A JSON number that is a non-negative safe integer, else undefined. */
export function uint(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

export async function sendUploadUrl(c: ApiCall): Promise<void> {
  const url = await c.state.artifacts.issueUpload(c.origin, c.db.id, c.site, c.principal); // counts against the credential's pending bytes
  if (isJsonGen(c)) sendJson(c.res, { url });
  else sendText(c.res, url);
}

export async function sendStatus(c: ApiCall): Promise<void> {
  sendJson(c.res, await c.state.service.status(c.db, c.site));
}

/** The upload window of an `apply` body (both bounds or none); invalid_request when min > max. */
export function windowOf(body: Record<string, unknown>): VersionWindow | undefined {
  const min = uint(body['dbVersionMin']);
  const max = uint(body['dbVersionMax']);
  if (min === undefined || max === undefined) return undefined;
  if (min > max) throw new SyncError('invalid_request', 'dbVersionMin is greater than dbVersionMax');
  return { dbVersionMin: min, dbVersionMax: max };
}

/** A G3 inline `blob` (standard base64) → bytes; invalid_payload / payload_too_large. */
export function decodeBlob(blob: unknown, maxBytes: number): Uint8Array {
  if (typeof blob !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(blob) || blob.length % 4 !== 0) {
    throw new SyncError('invalid_payload', 'blob must be standard base64');
  }
  if ((blob.length / 4) * 3 > maxBytes + 2) throw new SyncError('payload_too_large', `payload larger than ${maxBytes} bytes`);
  return new Uint8Array(Buffer.from(blob, 'base64'));
}

/** G3 SyncStatus carrying a refused apply; versions unchanged so the client re-sends later. */
function failureStatus(status: SyncStatus, err: SyncError): SyncStatusReply {
  return {
    ...status,
    failures: { apply: { code: err.code, message: err.detail ?? err.title, retryable: err.retryable, failedAt: new Date().toISOString() } },
  };
}

/** `POST …/upload` (G1 notify) and `POST …/apply` (G2+); G3 chunks of a batch (`batchId`) go through the assembler. */
export async function applyUpload(c: ApiCall): Promise<void> {
  const { state } = c;
  const limit = isJsonGen(c) ? state.limits.maxInlineBodyBytes : state.limits.maxJsonBodyBytes;
  const raw = await readBody(c.req, limit);
  const body = parseJsonObject(raw);
  const window = c.generation === 'G1' ? undefined : windowOf(body);
  const chunk = c.generation === 'G3' ? chunkFieldsOf(body) : undefined;
  let payload: Uint8Array;
  let inlineBytes = 0;
  let hash: string | undefined;
  const recordInline = (): void => {
    if (inlineBytes > 0) state.service.recordTraffic(c.db, c.site, { uploadBytes: inlineBytes, downloadBytes: 0 });
  };
  try {
    if (c.generation === 'G3' && body['blob'] !== undefined) {
      payload = decodeBlob(body['blob'], state.artifacts.maxUploadBytes);
      inlineBytes = raw.length;
    } else {
      const url = body['url'];
      if (typeof url !== 'string' || url === '') throw new SyncError('invalid_request', isJsonGen(c) ? "missing 'url' or 'blob'" : "missing 'url'");
      payload = await state.artifacts.takeUpload(url, c.db.id, c.site);
    }
    let upload: Uint8Array | Uint8Array[] = payload;
    let uploadWindow = window;
    if (chunk !== undefined) {
      // docs/PROTOCOL.md "Chunked batches": nothing is merged and the window is not claimed before the final chunk.
      const step = await state.batches.add(c.db.id, c.site, { ...chunk, window, payload });
      if (step.kind !== 'complete') {
        recordInline();
        sendJson(c.res, await state.service.status(c.db, c.site));
        return;
      }
      upload = step.payloads;
      uploadWindow = step.window;
    }
    const r = await state.service.upload(c.db, c.site, upload, uploadWindow, c.principal);
    if (chunk !== undefined) await state.batches.applied(c.db.id, c.site, chunk.batchId, chunk.index);
    recordInline();
    if (r.schemaHash !== 0n) hash = r.schemaHash.toString();
    if (isJsonGen(c)) sendJson(c.res, r.rejected.length > 0 && c.generation === 'G3' ? { ...r.status, failures: { rejected: rejectionReport(r.rejected) } } : r.status);
    else sendEmpty(c.res);
  } catch (e) {
    const err = toSyncError(e);
    // Batch-assembly refusals are HTTP errors: the client stops this send and re-sends the whole batch.
    if (c.generation !== 'G3' || err.status === 500 || err.code === 'invalid_request' || err.code.startsWith('batch_')) throw err;
    annotateRequest({ code: err.code }); // refused inside a 200 SyncStatus: still a warn line with its code
    sendJson(c.res, failureStatus(await state.service.status(c.db, c.site), err));
  } finally {
    recordDevice(c, hash);
  }
}

/**
 * G3 report of changes the merge rejected on their own (docs/PROTOCOL.md "Rejected changes"):
 * under `failures.rejected`, NOT `failures.apply` — the batch was applied and its window is
 * covered; the device receives compensating changes on its next check.
 */
function rejectionReport(entries: readonly RejectionEntry[]): RejectedReport {
  const first = entries[0];
  return {
    code: first?.code ?? 'rejected',
    message: `${entries.length} change(s) rejected; the server sends the values you may hold`,
    retryable: false,
    count: entries.length,
    changes: entries.slice(0, 20).map((e) => ({ table: e.table, operation: e.operation, code: e.code, reason: e.reason })),
  };
}

export function recordDevice(c: ApiCall, schemaHash?: string): void {
  const version = c.req.headers['x-cloudsync-version'];
  const clientVersion = typeof version === 'string' && version !== '' ? version : c.generation;
  c.state.service.recordDevice(c.db, c.site, c.principal, { clientVersion, generation: c.generation, schemaHash });
}

/** `POST …/check` for G1 (cursor in the path), G2a, G2b and G3 without chunk support: one URL. */
async function checkSinglePage(c: ApiCall, after: Cursor): Promise<void> {
  const r = await c.state.service.download(c.db, c.site, after, c.principal, { payloads: false, generation: c.generation });
  const page = r.pages[0];
  if (page === undefined) return sendEmpty(c.res);
  const url = await c.state.artifacts.issueDownload(
    c.origin,
    { db: c.db.id, site: c.site, from: [page.from.dbVersion, page.from.seq], to: [page.to.dbVersion, page.to.seq], h: r.schemaHash.toString() },
    c.principal,
  );
  if (isJsonGen(c)) sendJson(c.res, { url });
  else sendText(c.res, url);
}

/** Page budgets of one G3 `/check` reply (download-pages.ts `pageBudget`). */
interface Ramp {
  pageBytes: number;
  firstPageBytes: number;
  pageGrowth: number;
}

/**
 * Slow start of a G3 drain (docs/PROTOCOL.md "Packages"): a download that (re)starts at the
 * durable cursor begins with a page of `slowStartBytes`, and every page after it is
 * `slowStartGrowth` times the one before, up to the service's page size, across the `/check`
 * calls of the drain (the continuation cursor holds the next budget). A pipelining client (OffSync's,
 * `maxChunks: 1`) applies the small first page while the server builds the next one, instead of
 * waiting for a whole first page; a client that does not pipeline gets the same bytes in a few
 * more, smaller chunks. Page boundaries follow the same rules as ever (download-pages.ts).
 */
function slowStart(c: ApiCall, resume: Resume): Ramp {
  const pageBytes = c.state.service.pageBytes;
  const { slowStartBytes, slowStartGrowth } = c.state.limits;
  const first = resume.continued ? (resume.pageBytes ?? pageBytes) : slowStartBytes > 0 ? slowStartBytes : pageBytes;
  return { pageBytes, firstPageBytes: Math.min(first, pageBytes), pageGrowth: slowStartGrowth };
}

/** How many pages of `ramp` travel inline: while their budgets fit `inlineBytes` in total (0: URLs). */
function inlinePageCount(ramp: Ramp, maxChunks: number, inlineBytes: number): number {
  let total = 0;
  let n = 0;
  while (n < maxChunks) {
    const budget = pageBudget(ramp, n);
    if (budget === ramp.pageBytes) return n + Math.min(maxChunks - n, Math.floor((inlineBytes - total) / budget)); // full pages from here on
    if (total + budget > inlineBytes) break;
    total += budget;
    n++;
  }
  return n;
}

/** How one G3 `/check` reply's pages are cut and sent (the service's download options), from where it resumes. */
interface DownloadPlan {
  ramp: Ramp;
  inline: boolean;
  opts: DownloadOptions;
}

function downloadPlan(c: ApiCall, resume: Resume, maxChunks: number): DownloadPlan {
  const { limits } = c.state;
  const ramp = slowStart(c, resume);
  const inlinePages = inlinePageCount(ramp, maxChunks, limits.inlineChunksBytes);
  const inline = inlinePages >= 1;
  const opts: DownloadOptions = { ...ramp, payloads: inline, maxPages: inline ? inlinePages : maxChunks, inlineUpTo: limits.inlineDownloadBytes, generation: c.generation };
  return { ramp, inline, opts };
}

/** The prebuilt-page key of a `/check` (prebuilt-pages.ts): the request, where its cursor resumes, its plan. */
function pageRequest(c: ApiCall, base: Cursor, cursor: number, maxChunks: number, after: Cursor, plan: DownloadPlan): PageRequest {
  const { pageBytes, firstPageBytes, pageGrowth, payloads, maxPages, inlineUpTo } = plan.opts;
  return { db: c.db.id, site: c.site, principal: c.principal, base, cursor, maxChunks, generation: c.generation, after, plan: { pageBytes, firstPageBytes, pageGrowth, payloads, maxPages, inlineUpTo } };
}

/**
 * Runs `run` once the whole reply is handed to the socket ('finish'), not before: a SQLite build
 * holds the event loop, and the rest of a reply larger than the socket's buffers would wait for
 * it. Never when the reply does not finish (the client went away).
 */
const afterReply = (res: ApiCall['res']) => (run: () => void): void => {
  if (res.writableFinished) setImmediate(run);
  else res.once('finish', () => setImmediate(run));
};

/** G3 `/check` with `check-chunks`: inline payload, or a batch of chunk URLs with cursors and a watermark. */
async function checkChunks(c: ApiCall, body: Record<string, unknown>): Promise<void> {
  const { state } = c;
  const dbv = uint(body['dbVersion']) ?? 0;
  const seq = uint(body['seq']) ?? 0;
  // After a watermark the client sends seq 0 and means "all of dbVersion seen"; a non-zero seq is a row cursor.
  const base: Cursor = { dbVersion: dbv, seq: seq === 0 ? MAX_SEQ : seq };
  const cursor = uint(body['cursor']) ?? 0;
  const resume = await state.cursors.resolve(c.db.id, c.site, base, cursor);
  const maxChunks = Math.max(1, Math.min(uint(body['maxChunks']) ?? state.limits.defaultMaxChunks, 10_000));
  const plan = downloadPlan(c, resume, maxChunks);
  const { ramp, inline } = plan;
  const build = (after: Cursor, opts: DownloadOptions) => () => state.service.download(c.db, c.site, after, c.principal, opts);
  // A continuation the reply before predicted may be built already (prebuilt-pages.ts); else built now.
  const prebuilt = resume.continued ? await state.prebuilt?.take(pageRequest(c, base, cursor, maxChunks, resume.after, plan), c.db, () => state.service.stamp(c.db, c.site, c.generation)) : undefined;
  const r = prebuilt ?? (await build(resume.after, plan.opts)());
  const first = r.pages[0];
  if (first === undefined) return sendEmpty(c.res);
  if (first.payload !== undefined && r.complete && r.pages.length === 1) {
    const data: CheckData = { payload: payloadPlace(0), watermark: r.watermark, final: true };
    const n = sendJsonWithPayloads(c.res, { data }, [first.payload]);
    state.service.recordTraffic(c.db, c.site, { uploadBytes: 0, downloadBytes: n });
    return;
  }
  // One shared-store record holds the resume position after every chunk of this reply (http/g3-cursors.ts).
  // …and the budget of the page after each chunk, so the slow start goes on where the client resumes.
  const budgets = r.pages.map((_, i) => pageBudget(ramp, i + 1));
  const issuedBudgets = budgets.some((b) => b < ramp.pageBytes) ? budgets : undefined;
  const cursors = await state.cursors.issue(c.db.id, c.site, base, r.pages.map((p) => p.to), issuedBudgets);
  const payloads: Uint8Array[] = [];
  const chunks = await Promise.all(r.pages.map(async (p, i) => {
    const chunk: CheckChunk = { cursor: cursors[i] ?? 0 };
    if (p.payload !== undefined) {
      chunk.payload = payloadPlace(payloads.length);
      payloads.push(p.payload);
    } else {
      chunk.url = await state.artifacts.issueDownload(
        c.origin,
        { db: c.db.id, site: c.site, from: [p.from.dbVersion, p.from.seq], to: [p.to.dbVersion, p.to.seq], h: r.schemaHash.toString() },
        c.principal,
      );
    }
    if (r.complete && i === r.pages.length - 1) chunk.watermark = r.watermark;
    return chunk;
  }));
  const data: CheckData = {
    chunks,
    final: r.complete,
    nextCursor: chunks[chunks.length - 1]?.cursor ?? 0,
  };
  if (r.complete) data.watermark = r.watermark;
  const n = sendJsonWithPayloads(c.res, { data }, payloads);
  if (inline) state.service.recordTraffic(c.db, c.site, { uploadBytes: 0, downloadBytes: n });
  const last = r.pages[r.pages.length - 1];
  if (!r.complete && last !== undefined && state.prebuilt !== undefined) {
    // The request this reply calls for next, exactly as g3-cursors.ts will resolve its cursor: built while this reply travels.
    const next: Resume = { after: last.to, pageBytes: issuedBudgets?.[issuedBudgets.length - 1], continued: true };
    const nextPlan = downloadPlan(c, next, maxChunks);
    state.prebuilt.schedule(pageRequest(c, base, data.nextCursor ?? 0, maxChunks, next.after, nextPlan), c.db, build(next.after, nextPlan.opts), afterReply(c.res));
  }
}

export async function check(c: ApiCall, g1Cursor: Cursor | undefined): Promise<void> {
  if (c.generation === 'G1') {
    await readBody(c.req, c.state.limits.maxJsonBodyBytes);
    return checkSinglePage(c, g1Cursor ?? { dbVersion: 0, seq: 0 });
  }
  const body = parseJsonObject(await readBody(c.req, c.state.limits.maxJsonBodyBytes));
  if (c.generation === 'G3' && c.chunks) return checkChunks(c, body);
  const dbv = uint(body['dbVersion']);
  const seq = uint(body['seq']);
  if (dbv === undefined || seq === undefined) throw new SyncError('invalid_request', "'dbVersion' and 'seq' must be non-negative integers");
  return checkSinglePage(c, { dbVersion: dbv, seq });
}
