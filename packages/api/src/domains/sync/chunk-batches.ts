/**
 * G3 chunked batches (docs/PROTOCOL.md "Chunked batches"). SQLite Sync 1.1.x cuts one large
 * local transaction into several `apply` calls that share one window and carry `batchId`,
 * `chunkIndex` (0, 1, …) and `isFinal`; chunk boundaries fall inside rows, so no chunk can be
 * merged (or judged by RLS) on its own. This assembler buffers the chunks of one batch per
 * (database, site) until the final chunk arrives and then hands all of them over, in order, to be
 * merged as ONE atomic upload (`SyncService.upload` with an array → `engine.applyPayloads`).
 *
 * Rules:
 * - chunk indexes arrive in order 0, 1, 2, …; a re-send of a chunk already received (same index,
 *   same bytes) is acknowledged again and changes nothing; a gap, another window, or other bytes
 *   under a known index refuse (and discard) the batch (`batch_invalid`);
 * - one open batch per (database, site): a chunk with a new `batchId` abandons the open one;
 * - an open batch whose next chunk does not arrive within `ttlMs` is discarded;
 * - bytes held across requests are bounded per site (`maxSiteBytes`, also the largest batch that
 *   is merged) and in total (`maxTotalBytes`); over a limit the site's batch is discarded and the
 *   chunk refused (`batch_too_large` 413, `batch_buffers_full` 429, retryable);
 * - after a batch was merged, a re-send of one of its chunks under the same `batchId` is
 *   acknowledged without merging again (`applied` records it).
 *
 * Buffers live in this process's memory: all chunks of one batch must reach the same process
 * (docs/ARCHITECTURE.md "Scaling out").
 */
import type { VersionWindow } from './peer-state.ts';
import { SyncError } from './sync-errors.ts';

export interface ChunkBatchOptions {
  /** Bytes one site's open batch may hold, final chunk included (default 256 MiB). */
  maxSiteBytes?: number;
  /** Bytes all open batches of this process may hold together (default 1 GiB). */
  maxTotalBytes?: number;
  /** An open batch whose next chunk does not arrive within this time is discarded (default 10 min). */
  ttlMs?: number;
  now?: () => number;
}

/** The batch fields of a G3 `apply` body. */
export interface ChunkFields {
  batchId: string;
  index: number;
  final: boolean;
}

export interface Chunk extends ChunkFields {
  window: VersionWindow | undefined;
  payload: Uint8Array;
}

export type ChunkOutcome =
  /** A non-final chunk was buffered: acknowledge without claiming the window. */
  | { kind: 'buffered' }
  /** A re-send of a chunk already received (or of an already merged batch): acknowledge, nothing else. */
  | { kind: 'duplicate' }
  /** The final chunk: merge `payloads` (in order) as one upload recording `window`. */
  | { kind: 'complete'; payloads: Uint8Array[]; window: VersionWindow | undefined };

interface OpenBatch {
  batchId: string;
  window: VersionWindow | undefined;
  chunks: Uint8Array[];
  bytes: number;
  touched: number;
}

interface AppliedBatch {
  batchId: string;
  lastIndex: number;
  touched: number;
}

const MAX_BATCH_ID = 200;

/**
 * The batch fields of an `apply` body: undefined without `batchId` (a plain upload), otherwise
 * validated (`invalid_request` when malformed).
 */
export function chunkFieldsOf(body: Record<string, unknown>): ChunkFields | undefined {
  const batchId = body['batchId'];
  if (batchId === undefined || batchId === null) return undefined;
  if (typeof batchId !== 'string' || batchId === '' || batchId.length > MAX_BATCH_ID) {
    throw new SyncError('invalid_request', `'batchId' must be a non-empty string of at most ${MAX_BATCH_ID} characters`);
  }
  const index = body['chunkIndex'];
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) throw new SyncError('invalid_request', "'chunkIndex' must be a non-negative integer");
  const final = body['isFinal'];
  if (typeof final !== 'boolean') throw new SyncError('invalid_request', "'isFinal' must be a boolean");
  return { batchId, index, final };
}

const sameWindow = (a: VersionWindow | undefined, b: VersionWindow | undefined): boolean =>
  a === undefined || b === undefined ? a === b : a.dbVersionMin === b.dbVersionMin && a.dbVersionMax === b.dbVersionMax;

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

export class ChunkBatches {
  readonly maxSiteBytes: number;
  readonly maxTotalBytes: number;
  readonly ttlMs: number;
  readonly #now: () => number;
  /** Open batches by (database, site), least recently touched first. */
  readonly #open = new Map<string, OpenBatch>();
  /** The last merged batch per (database, site), least recently touched first. */
  readonly #applied = new Map<string, AppliedBatch>();
  #total = 0;

  constructor(opts: ChunkBatchOptions = {}) {
    this.maxSiteBytes = opts.maxSiteBytes ?? 256 * 1024 * 1024;
    this.maxTotalBytes = opts.maxTotalBytes ?? 1024 * 1024 * 1024;
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Bytes held by open batches. */
  get bufferedBytes(): number {
    return this.#total;
  }

  /** Open batches. */
  get openBatches(): number {
    return this.#open.size;
  }

  /** The open batch of a site, if any (tests, diagnostics). */
  peek(db: string, site: string): { batchId: string; chunks: number; bytes: number } | undefined {
    const b = this.#open.get(key(db, site));
    return b === undefined ? undefined : { batchId: b.batchId, chunks: b.chunks.length, bytes: b.bytes };
  }

  /** Takes one chunk; throws SyncError `batch_invalid` / `batch_too_large` / `batch_buffers_full` (the site's open batch discarded). */
  add(db: string, site: string, chunk: Chunk): ChunkOutcome {
    const now = this.#now();
    this.sweep(now);
    const k = key(db, site);
    let batch = this.#open.get(k);
    if (batch !== undefined && batch.batchId !== chunk.batchId) {
      this.#discard(k); // a new batch abandons the open one
      batch = undefined;
    }
    if (batch === undefined) {
      const done = this.#applied.get(k);
      if (done !== undefined && done.batchId === chunk.batchId && chunk.index <= done.lastIndex) {
        this.#touch(this.#applied, k, done, now);
        return { kind: 'duplicate' };
      }
      if (chunk.index !== 0) throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} arrived before chunk 0; re-send the whole batch`);
      this.#applied.delete(k);
      batch = { batchId: chunk.batchId, window: chunk.window, chunks: [], bytes: 0, touched: now };
    } else if (!sameWindow(batch.window, chunk.window)) {
      this.#discard(k);
      throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} carries another window than chunk 0`);
    } else if (chunk.index < batch.chunks.length) {
      const seen = batch.chunks[chunk.index] as Uint8Array;
      if (!chunk.final && sameBytes(seen, chunk.payload)) {
        this.#touch(this.#open, k, batch, now);
        return { kind: 'duplicate' };
      }
      this.#discard(k);
      throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} was re-sent with other content`);
    } else if (chunk.index > batch.chunks.length) {
      this.#discard(k);
      throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} arrived after chunk ${batch.chunks.length - 1}; chunks must arrive in order`);
    }
    const size = chunk.payload.byteLength;
    if (batch.bytes + size > this.maxSiteBytes) {
      this.#discard(k);
      throw new SyncError('batch_too_large', `batch ${chunk.batchId} exceeds ${this.maxSiteBytes} bytes`);
    }
    if (chunk.final) {
      this.#discard(k);
      return { kind: 'complete', payloads: [...batch.chunks, chunk.payload], window: batch.window };
    }
    if (this.#total + size > this.maxTotalBytes) {
      this.#discard(k);
      throw new SyncError('batch_buffers_full', `chunk buffers of this server are full (${this.maxTotalBytes} bytes); re-send the batch later`);
    }
    batch.chunks.push(chunk.payload);
    batch.bytes += size;
    this.#total += size;
    this.#touch(this.#open, k, batch, now);
    return { kind: 'buffered' };
  }

  /** Records that the batch whose final chunk was `lastIndex` is merged: later re-sends of its chunks are duplicates. */
  applied(db: string, site: string, batchId: string, lastIndex: number): void {
    const k = key(db, site);
    this.#applied.delete(k);
    this.#applied.set(k, { batchId, lastIndex, touched: this.#now() });
  }

  /** Discards the open batch of a site. */
  discard(db: string, site: string): void {
    this.#discard(key(db, site));
  }

  /** Drops open batches and merge records untouched for `ttlMs`. Runs on every `add`. */
  sweep(now = this.#now()): void {
    for (const [k, b] of this.#open) {
      if (b.touched + this.ttlMs > now) break;
      this.#discard(k);
    }
    for (const [k, b] of this.#applied) {
      if (b.touched + this.ttlMs > now) break;
      this.#applied.delete(k);
    }
  }

  #discard(k: string): void {
    const b = this.#open.get(k);
    if (b === undefined) return;
    this.#total -= b.bytes;
    this.#open.delete(k);
  }

  /** Moves an entry to the end of its map (most recently touched). */
  #touch<T extends { touched: number }>(map: Map<string, T>, k: string, v: T, now: number): void {
    v.touched = now;
    map.delete(k);
    map.set(k, v);
  }
}

function key(db: string, site: string): string {
  return `${db}\u0000${site}`;
}
