/**
 * The G3 chunked-batch assembler (domains/sync/chunk-batches.ts) on its own: order, duplicates,
 * abandon, byte limits and TTL with an injected clock.
 */
import { describe, expect, test } from 'vitest';
import { ChunkBatches, chunkFieldsOf } from '../src/domains/sync/chunk-batches.ts';
import type { Chunk } from '../src/domains/sync/chunk-batches.ts';
import type { SyncError } from '../src/domains/sync/sync-errors.ts';

const W = { dbVersionMin: 7, dbVersionMax: 7 };
const bytes = (n: number, fill = n): Uint8Array => new Uint8Array(n).fill(fill & 0xff);
const chunk = (batchId: string, index: number, final: boolean, payload: Uint8Array = bytes(10, index + 1), window = W): Chunk => ({ batchId, index, final, window, payload });

function refusal(f: () => unknown): SyncError {
  try {
    f();
  } catch (e) {
    return e as SyncError;
  }
  throw new Error('expected a refusal');
}

describe('ChunkBatches', () => {
  test('chunks in order are buffered and handed over, in order, with the window, on the final chunk', () => {
    const b = new ChunkBatches();
    const p = [bytes(3, 1), bytes(4, 2), bytes(5, 3)];
    expect(b.add('db', 's1', chunk('B', 0, false, p[0]))).toEqual({ kind: 'buffered' });
    expect(b.add('db', 's1', chunk('B', 1, false, p[1]))).toEqual({ kind: 'buffered' });
    expect(b.bufferedBytes).toBe(7);
    expect(b.add('db', 's1', chunk('B', 2, true, p[2]))).toEqual({ kind: 'complete', payloads: p, window: W });
    expect([b.bufferedBytes, b.openBatches]).toEqual([0, 0]);
    // A one-chunk batch completes at once.
    expect(b.add('db', 's1', chunk('C', 0, true, p[0]))).toEqual({ kind: 'complete', payloads: [p[0]], window: W });
  });

  test('sites and databases are assembled independently', () => {
    const b = new ChunkBatches();
    b.add('db', 's1', chunk('B', 0, false, bytes(1, 1)));
    b.add('db', 's2', chunk('B', 0, false, bytes(1, 2)));
    b.add('other', 's1', chunk('B', 0, false, bytes(1, 3)));
    expect(b.openBatches).toBe(3);
    const r = b.add('db', 's2', chunk('B', 1, true, bytes(1, 4)));
    expect(r.kind === 'complete' ? r.payloads.map((x) => x[0]) : r).toEqual([2, 4]);
    expect(b.peek('db', 's1')).toEqual({ batchId: 'B', chunks: 1, bytes: 1 });
  });

  test('a re-send of a received chunk is idempotent; other bytes under its index refuse the batch', () => {
    const b = new ChunkBatches();
    b.add('db', 's', chunk('B', 0, false, bytes(4, 1)));
    b.add('db', 's', chunk('B', 1, false, bytes(4, 2)));
    expect(b.add('db', 's', chunk('B', 1, false, bytes(4, 2)))).toEqual({ kind: 'duplicate' });
    expect(b.add('db', 's', chunk('B', 0, false, bytes(4, 1)))).toEqual({ kind: 'duplicate' });
    expect(b.peek('db', 's')).toEqual({ batchId: 'B', chunks: 2, bytes: 8 });
    const r = b.add('db', 's', chunk('B', 2, true, bytes(4, 3)));
    expect(r.kind === 'complete' ? r.payloads.map((x) => x[0]) : r).toEqual([1, 2, 3]);

    b.add('db', 's', chunk('C', 0, false, bytes(4, 1)));
    expect(refusal(() => b.add('db', 's', chunk('C', 0, false, bytes(4, 9)))).code).toBe('batch_invalid');
    expect(b.peek('db', 's')).toBeUndefined();
  });

  test('after a batch was merged, re-sends of its chunks are duplicates (never merged twice)', () => {
    const b = new ChunkBatches();
    b.add('db', 's', chunk('B', 0, false));
    expect(b.add('db', 's', chunk('B', 1, true)).kind).toBe('complete');
    // Not recorded as merged (e.g. the merge failed): a late chunk of that batch is refused.
    expect(refusal(() => b.add('db', 's', chunk('B', 1, true))).code).toBe('batch_invalid');
    b.add('db', 's', chunk('C', 0, false));
    expect(b.add('db', 's', chunk('C', 1, true)).kind).toBe('complete');
    b.applied('db', 's', 'C', 1);
    expect(b.add('db', 's', chunk('C', 1, true))).toEqual({ kind: 'duplicate' });
    expect(b.add('db', 's', chunk('C', 0, false))).toEqual({ kind: 'duplicate' });
    expect(b.openBatches).toBe(0);
  });

  test('a gap, a chunk before chunk 0, or another window refuses the batch and discards its buffer', () => {
    const b = new ChunkBatches();
    b.add('db', 's', chunk('B', 0, false));
    const gap = refusal(() => b.add('db', 's', chunk('B', 2, false)));
    expect([gap.code, gap.status]).toEqual(['batch_invalid', 409]);
    expect([b.openBatches, b.bufferedBytes]).toEqual([0, 0]);
    // The rest of the refused batch is refused too (its chunk 0 is gone).
    expect(refusal(() => b.add('db', 's', chunk('B', 1, true))).code).toBe('batch_invalid');
    expect(refusal(() => b.add('db', 's', chunk('X', 3, false))).code).toBe('batch_invalid');

    b.add('db', 's', chunk('C', 0, false));
    expect(refusal(() => b.add('db', 's', chunk('C', 1, true, bytes(1), { dbVersionMin: 7, dbVersionMax: 8 }))).code).toBe('batch_invalid');
    expect(b.openBatches).toBe(0);
  });

  test('a new batchId from the same site abandons the open batch', () => {
    const b = new ChunkBatches();
    b.add('db', 's', chunk('A', 0, false, bytes(5, 1)));
    b.add('db', 's', chunk('A', 1, false, bytes(5, 2)));
    expect(b.add('db', 's', chunk('B', 0, false, bytes(3, 7)))).toEqual({ kind: 'buffered' });
    expect(b.bufferedBytes).toBe(3);
    expect(refusal(() => b.add('db', 's', chunk('A', 2, true))).code).toBe('batch_invalid');
    // The stray chunk of A abandoned B as well: the client re-sends B with a new id.
    expect(b.bufferedBytes).toBe(0);
    const r = b.add('db', 's', chunk('C', 0, true, bytes(2, 5)));
    expect(r.kind === 'complete' ? r.payloads : r).toEqual([bytes(2, 5)]);
  });

  test('per-site limit: a batch over it is refused (413) and discarded; the final chunk counts too', () => {
    const b = new ChunkBatches({ maxSiteBytes: 100 });
    b.add('db', 's', chunk('B', 0, false, bytes(60)));
    const e = refusal(() => b.add('db', 's', chunk('B', 1, false, bytes(41))));
    expect([e.code, e.status, e.retryable]).toEqual(['batch_too_large', 413, false]);
    expect([b.openBatches, b.bufferedBytes]).toEqual([0, 0]);
    b.add('db', 's', chunk('C', 0, false, bytes(60)));
    expect(refusal(() => b.add('db', 's', chunk('C', 1, true, bytes(41)))).code).toBe('batch_too_large');
    b.add('db', 's', chunk('D', 0, false, bytes(60)));
    expect(b.add('db', 's', chunk('D', 1, true, bytes(40))).kind).toBe('complete');
  });

  test('global limit: buffering beyond it is refused (429, retryable) and that site\'s batch discarded; others are kept', () => {
    const b = new ChunkBatches({ maxSiteBytes: 1000, maxTotalBytes: 100 });
    b.add('db', 's1', chunk('B', 0, false, bytes(50)));
    b.add('db', 's2', chunk('B', 0, false, bytes(30)));
    b.add('db', 's3', chunk('B', 0, false, bytes(10)));
    const e = refusal(() => b.add('db', 's3', chunk('B', 1, false, bytes(11))));
    expect([e.code, e.status, e.retryable]).toEqual(['batch_buffers_full', 429, true]);
    expect(b.peek('db', 's3')).toBeUndefined();
    expect(b.bufferedBytes).toBe(80);
    // A final chunk is not held across requests: it completes even when the buffers are full.
    b.add('db', 's4', chunk('B', 0, false, bytes(20)));
    expect(b.add('db', 's1', chunk('B', 1, true, bytes(500))).kind).toBe('complete');
    expect(b.bufferedBytes).toBe(50);
  });

  test('TTL: a batch whose next chunk does not come in time is discarded; activity keeps it alive', () => {
    let now = 1_000;
    const b = new ChunkBatches({ ttlMs: 10_000, now: () => now });
    b.add('db', 'slow', chunk('B', 0, false, bytes(8)));
    b.add('db', 'busy', chunk('B', 0, false, bytes(8)));
    now += 6_000;
    b.add('db', 'busy', chunk('B', 1, false, bytes(8)));
    now += 6_000; // slow: 12 s idle, busy: 6 s
    b.sweep();
    expect(b.peek('db', 'slow')).toBeUndefined();
    expect(b.peek('db', 'busy')).toEqual({ batchId: 'B', chunks: 2, bytes: 16 });
    expect(b.bufferedBytes).toBe(16);
    expect(refusal(() => b.add('db', 'slow', chunk('B', 1, true))).code).toBe('batch_invalid');
    now += 3_999; // busy: 9.999 s idle
    expect(b.add('db', 'busy', chunk('B', 2, true)).kind).toBe('complete');
    // Expiry also runs on add (no explicit sweep), for every site.
    b.add('db', 'x', chunk('E', 0, false, bytes(4)));
    now += 10_000;
    b.add('db', 'y', chunk('E', 0, false, bytes(2)));
    expect([b.peek('db', 'x'), b.bufferedBytes]).toEqual([undefined, 2]);
  });

  test('chunkFieldsOf: no batchId = plain upload; malformed fields are invalid_request', () => {
    expect(chunkFieldsOf({ blob: 'x' })).toBeUndefined();
    expect(chunkFieldsOf({ batchId: 'u-1', chunkIndex: 2, isFinal: false })).toEqual({ batchId: 'u-1', index: 2, final: false });
    for (const bad of [{ batchId: '' }, { batchId: 5 }, { batchId: 'a', isFinal: true }, { batchId: 'a', chunkIndex: -1, isFinal: true }, { batchId: 'a', chunkIndex: 1.5, isFinal: true }, { batchId: 'a', chunkIndex: 0, isFinal: 'yes' }, { batchId: 'x'.repeat(201), chunkIndex: 0, isFinal: true }]) {
      expect(refusal(() => chunkFieldsOf(bad)).code).toBe('invalid_request');
    }
  });
});
