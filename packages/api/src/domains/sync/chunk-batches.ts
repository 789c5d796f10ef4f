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
 * Buffers live in the shared store (shared-store.ts: this process's memory by default, Redis with
 * `REDIS_URL`), keyed by (database, site, batchId): the chunks of one batch may land on different
 * nodes, and the node that receives the final chunk assembles and merges it. Taking the final
 * chunk removes the open batch atomically (GETDEL), so of two nodes that receive the same final
 * chunk at once only one merges (docs/ARCHITECTURE.md "Scaling out").
 */
import type { VersionWindow } from './peer-state.ts';
import { MemorySharedStore } from './shared-store.ts';
import type { SharedStore } from './shared-store.ts';
import { SyncError } from './sync-errors.ts';

export interface ChunkBatchOptions {
  /** Bytes one site's open batch may hold, final chunk included (default 256 MiB). */
  maxSiteBytes?: number;
  /** Bytes all open batches of this server (every node) may hold together (default 1 GiB). */
  maxTotalBytes?: number;
  /** An open batch whose next chunk does not arrive within this time is discarded (default 10 min). */
  ttlMs?: number;
  /** Where chunks are buffered (default: this process's memory). */
  store?: SharedStore;
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

/** The open batch of a site, as stored (its chunks are a list under `listKey`). */
interface OpenBatch {
  batchId: string;
  window: VersionWindow | undefined;
  /** Bytes of its buffered chunks. */
  bytes: number;
}

interface AppliedBatch {
  batchId: string;
  lastIndex: number;
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

/** Store keys (shared-store.ts). */
const siteKey = (db: string, site: string): string => `${db}:${site}`;
const openKey = (k: string): string => `b:o:${k}`;
const listKey = (k: string, batchId: string): string => `b:c:${k}:${Buffer.from(batchId).toString('base64url')}`;
const appliedKey = (k: string): string => `b:a:${k}`;
/** Ledger of buffered bytes: member = site key, bytes = its open batch's. */
const ALL_BUFFERED = 'b:l';

const parse = <T>(raw: Buffer | undefined): T | undefined => (raw === undefined ? undefined : (JSON.parse(raw.toString('utf8')) as T));

export class ChunkBatches {
  readonly maxSiteBytes: number;
  readonly maxTotalBytes: number;
  readonly ttlMs: number;
  readonly #now: () => number;
  readonly #store: SharedStore;

  constructor(opts: ChunkBatchOptions = {}) {
    this.maxSiteBytes = opts.maxSiteBytes ?? 256 * 1024 * 1024;
    this.maxTotalBytes = opts.maxTotalBytes ?? 1024 * 1024 * 1024;
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.#now = opts.now ?? Date.now;
    this.#store = opts.store ?? new MemorySharedStore({ now: this.#now });
  }

  /** Open batches and the bytes they hold, server-wide. */
  async stats(): Promise<{ openBatches: number; bufferedBytes: number }> {
    const l = await this.#store.ledgerRead(ALL_BUFFERED, this.#now());
    return { openBatches: l.members, bufferedBytes: l.bytes };
  }

  /** The open batch of a site, if any (quotas, tests, diagnostics). */
  async peek(db: string, site: string): Promise<{ batchId: string; chunks: number; bytes: number } | undefined> {
    const k = siteKey(db, site);
    const b = parse<OpenBatch>(await this.#store.get(openKey(k)));
    if (b === undefined) return undefined;
    return { batchId: b.batchId, chunks: await this.#store.length(listKey(k, b.batchId)), bytes: b.bytes };
  }

  /** Takes one chunk; throws SyncError `batch_invalid` / `batch_too_large` / `batch_buffers_full` (the site's open batch discarded). */
  async add(db: string, site: string, chunk: Chunk): Promise<ChunkOutcome> {
    const store = this.#store;
    const k = siteKey(db, site);
    let batch = parse<OpenBatch>(await store.get(openKey(k)));
    if (batch !== undefined && batch.batchId !== chunk.batchId) {
      await this.#discard(k, batch); // a new batch abandons the open one
      batch = undefined;
    }
    let count = 0;
    if (batch === undefined) {
      const done = parse<AppliedBatch>(await store.get(appliedKey(k)));
      if (done !== undefined && done.batchId === chunk.batchId && chunk.index <= done.lastIndex) {
        await store.touch(appliedKey(k), this.ttlMs);
        return { kind: 'duplicate' };
      }
      if (chunk.index !== 0) throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} arrived before chunk 0; re-send the whole batch`);
      if (done !== undefined) await store.delete(appliedKey(k));
      batch = { batchId: chunk.batchId, window: chunk.window, bytes: 0 };
    } else {
      if (!sameWindow(batch.window, chunk.window)) {
        await this.#discard(k, batch);
        throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} carries another window than chunk 0`);
      }
      count = await store.length(listKey(k, batch.batchId));
      if (chunk.index < count) {
        const seen = await store.item(listKey(k, batch.batchId), chunk.index);
        if (!chunk.final && seen !== undefined && sameBytes(seen, chunk.payload)) {
          await Promise.all([store.touch(openKey(k), this.ttlMs), store.touch(listKey(k, batch.batchId), this.ttlMs)]);
          return { kind: 'duplicate' };
        }
        await this.#discard(k, batch);
        throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} was re-sent with other content`);
      }
      if (chunk.index > count) {
        await this.#discard(k, batch);
        throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} arrived after chunk ${count - 1}; chunks must arrive in order`);
      }
    }
    const size = chunk.payload.byteLength;
    if (batch.bytes + size > this.maxSiteBytes) {
      await this.#discard(k, batch);
      throw new SyncError('batch_too_large', `batch ${chunk.batchId} exceeds ${this.maxSiteBytes} bytes`);
    }
    if (chunk.final) {
      if (count === 0) return { kind: 'complete', payloads: [chunk.payload], window: batch.window };
      // Of two nodes receiving this final chunk at once, only the one that takes the open batch assembles it.
      const taken = parse<OpenBatch>(await store.take(openKey(k)));
      if (taken?.batchId !== batch.batchId) {
        if (taken !== undefined) await store.set(openKey(k), JSON.stringify(taken), this.ttlMs); // another batch's: put it back
        throw new SyncError('batch_invalid', `batch ${chunk.batchId} was completed or discarded meanwhile; re-send the whole batch`);
      }
      const chunks = await store.list(listKey(k, batch.batchId));
      await this.#discard(k, batch);
      if (chunks.length !== count) throw new SyncError('batch_invalid', `chunks of batch ${chunk.batchId} expired; re-send the whole batch`);
      return { kind: 'complete', payloads: [...chunks.map((c) => new Uint8Array(c.buffer, c.byteOffset, c.byteLength)), chunk.payload], window: batch.window };
    }
    const all = await store.ledgerRead(ALL_BUFFERED, this.#now());
    if (all.bytes + size > this.maxTotalBytes) {
      await this.#discard(k, batch);
      throw new SyncError('batch_buffers_full', `chunk buffers of this server are full (${this.maxTotalBytes} bytes); re-send the batch later`);
    }
    const n = await store.append(listKey(k, batch.batchId), chunk.payload, this.ttlMs);
    if (n !== chunk.index + 1) {
      // Another request appended to this batch meanwhile (a concurrent re-send): refuse it whole.
      await this.#discard(k, batch);
      throw new SyncError('batch_invalid', `chunk ${chunk.index} of batch ${chunk.batchId} was received twice at once; re-send the whole batch`);
    }
    batch.bytes += size;
    await store.set(openKey(k), JSON.stringify(batch), this.ttlMs);
    await store.ledgerSet(ALL_BUFFERED, k, batch.bytes, this.#now() + this.ttlMs);
    return { kind: 'buffered' };
  }

  /** Records that the batch whose final chunk was `lastIndex` is merged: later re-sends of its chunks are duplicates. */
  async applied(db: string, site: string, batchId: string, lastIndex: number): Promise<void> {
    const rec: AppliedBatch = { batchId, lastIndex };
    await this.#store.set(appliedKey(siteKey(db, site)), JSON.stringify(rec), this.ttlMs);
  }

  /** Discards the open batch of a site. */
  async discard(db: string, site: string): Promise<void> {
    const k = siteKey(db, site);
    const b = parse<OpenBatch>(await this.#store.get(openKey(k)));
    if (b !== undefined) await this.#discard(k, b);
  }

  async #discard(k: string, b: OpenBatch): Promise<void> {
    await this.#store.delete(openKey(k), listKey(k, b.batchId));
    await this.#store.ledgerRemove(ALL_BUFFERED, k);
  }
}
