/**
 * The G3 chunked-batch assembler (domains/sync/chunk-batches.ts) on its own: order, duplicates,
 * abandon, byte limits and TTL with an injected clock; several assemblers (nodes) on one store.
 */
import { describe, expect, test } from 'vitest';
import { ChunkBatches, chunkFieldsOf, MemorySharedStore } from '../src/domains/sync/index.ts';
import type { Chunk, SyncError } from '../src/domains/sync/index.ts';

const W = { dbVersionMin: 7, dbVersionMax: 7 };
const bytes = (n: number, fill = n): Uint8Array => new Uint8Array(n).fill(fill & 0xff);
const chunk = (batchId: string, index: number, final: boolean, payload: Uint8Array = bytes(10, index + 1), window = W): Chunk => ({ batchId, index, final, window, payload });

async function refusal(f: () => unknown): Promise<SyncError> {
  try {
    await f();
  } catch (e) {
    return e as SyncError;
  }
  throw new Error('expected a refusal');
}

describe('ChunkBatches', async () => {
  test('chunks in order are buffered and handed over, in order, with the window, on the final chunk', async () => {
    const b = new ChunkBatches();
    const p = [bytes(3, 1), bytes(4, 2), bytes(5, 3)];
    expect(await b.add('db', 's1', chunk('B', 0, false, p[0]))).toEqual({ kind: 'buffered' });
    expect(await b.add('db', 's1', chunk('B', 1, false, p[1]))).toEqual({ kind: 'buffered' });
    expect((await b.stats()).bufferedBytes).toBe(7);
    expect(await b.add('db', 's1', chunk('B', 2, true, p[2]))).toEqual({ kind: 'complete', payloads: p, window: W });
    expect([(await b.stats()).bufferedBytes, (await b.stats()).openBatches]).toEqual([0, 0]);
    // A one-chunk batch completes at once.
    expect(await b.add('db', 's1', chunk('C', 0, true, p[0]))).toEqual({ kind: 'complete', payloads: [p[0]], window: W });
  });

  test('sites and databases are assembled independently', async () => {
    const b = new ChunkBatches();
    await b.add('db', 's1', chunk('B', 0, false, bytes(1, 1)));
    await b.add('db', 's2', chunk('B', 0, false, bytes(1, 2)));
    await b.add('other', 's1', chunk('B', 0, false, bytes(1, 3)));
    expect((await b.stats()).openBatches).toBe(3);
    const r = await b.add('db', 's2', chunk('B', 1, true, bytes(1, 4)));
    expect(r.kind === 'complete' ? r.payloads.map((x) => x[0]) : r).toEqual([2, 4]);
    expect(await b.peek('db', 's1')).toEqual({ batchId: 'B', chunks: 1, bytes: 1 });
  });

  test('a re-send of a received chunk is idempotent; other bytes under its index refuse the batch', async () => {
    const b = new ChunkBatches();
    await b.add('db', 's', chunk('B', 0, false, bytes(4, 1)));
    await b.add('db', 's', chunk('B', 1, false, bytes(4, 2)));
    expect(await b.add('db', 's', chunk('B', 1, false, bytes(4, 2)))).toEqual({ kind: 'duplicate' });
    expect(await b.add('db', 's', chunk('B', 0, false, bytes(4, 1)))).toEqual({ kind: 'duplicate' });
    expect(await b.peek('db', 's')).toEqual({ batchId: 'B', chunks: 2, bytes: 8 });
    const r = await b.add('db', 's', chunk('B', 2, true, bytes(4, 3)));
    expect(r.kind === 'complete' ? r.payloads.map((x) => x[0]) : r).toEqual([1, 2, 3]);

    await b.add('db', 's', chunk('C', 0, false, bytes(4, 1)));
    expect((await refusal(() => b.add('db', 's', chunk('C', 0, false, bytes(4, 9))))).code).toBe('batch_invalid');
    expect(await b.peek('db', 's')).toBeUndefined();
  });

  test('after a batch was merged, re-sends of its chunks are duplicates (never merged twice)', async () => {
    const b = new ChunkBatches();
    await b.add('db', 's', chunk('B', 0, false));
    expect((await b.add('db', 's', chunk('B', 1, true))).kind).toBe('complete');
    // Not recorded as merged (e.g. the merge failed): a late chunk of that batch is refused.
    expect((await refusal(() => b.add('db', 's', chunk('B', 1, true)))).code).toBe('batch_invalid');
    await b.add('db', 's', chunk('C', 0, false));
    expect((await b.add('db', 's', chunk('C', 1, true))).kind).toBe('complete');
    await b.applied('db', 's', 'C', 1);
    expect(await b.add('db', 's', chunk('C', 1, true))).toEqual({ kind: 'duplicate' });
    expect(await b.add('db', 's', chunk('C', 0, false))).toEqual({ kind: 'duplicate' });
    expect((await b.stats()).openBatches).toBe(0);
  });

  test('a gap, a chunk before chunk 0, or another window refuses the batch and discards its buffer', async () => {
    const b = new ChunkBatches();
    await b.add('db', 's', chunk('B', 0, false));
    const gap = (await refusal(() => b.add('db', 's', chunk('B', 2, false))));
    expect([gap.code, gap.status]).toEqual(['batch_invalid', 409]);
    expect([(await b.stats()).openBatches, (await b.stats()).bufferedBytes]).toEqual([0, 0]);
    // The rest of the refused batch is refused too (its chunk 0 is gone).
    expect((await refusal(() => b.add('db', 's', chunk('B', 1, true)))).code).toBe('batch_invalid');
    expect((await refusal(() => b.add('db', 's', chunk('X', 3, false)))).code).toBe('batch_invalid');

    await b.add('db', 's', chunk('C', 0, false));
    expect((await refusal(() => b.add('db', 's', chunk('C', 1, true, bytes(1), { dbVersionMin: 7, dbVersionMax: 8 })))).code).toBe('batch_invalid');
    expect((await b.stats()).openBatches).toBe(0);
  });

  test('a new batchId from the same site abandons the open batch', async () => {
    const b = new ChunkBatches();
    await b.add('db', 's', chunk('A', 0, false, bytes(5, 1)));
    await b.add('db', 's', chunk('A', 1, false, bytes(5, 2)));
    expect(await b.add('db', 's', chunk('B', 0, false, bytes(3, 7)))).toEqual({ kind: 'buffered' });
    expect((await b.stats()).bufferedBytes).toBe(3);
    expect((await refusal(() => b.add('db', 's', chunk('A', 2, true)))).code).toBe('batch_invalid');
    // The stray chunk of A abandoned B as well: the client re-sends B with a new id.
    expect((await b.stats()).bufferedBytes).toBe(0);
    const r = await b.add('db', 's', chunk('C', 0, true, bytes(2, 5)));
    expect(r.kind === 'complete' ? r.payloads : r).toEqual([bytes(2, 5)]);
  });

  test('per-site limit: a batch over it is refused (413) and discarded; the final chunk counts too', async () => {
    const b = new ChunkBatches({ maxSiteBytes: 100 });
    await b.add('db', 's', chunk('B', 0, false, bytes(60)));
    const e = (await refusal(() => b.add('db', 's', chunk('B', 1, false, bytes(41)))));
    expect([e.code, e.status, e.retryable]).toEqual(['batch_too_large', 413, false]);
    expect([(await b.stats()).openBatches, (await b.stats()).bufferedBytes]).toEqual([0, 0]);
    await b.add('db', 's', chunk('C', 0, false, bytes(60)));
    expect((await refusal(() => b.add('db', 's', chunk('C', 1, true, bytes(41))))).code).toBe('batch_too_large');
    await b.add('db', 's', chunk('D', 0, false, bytes(60)));
    expect((await b.add('db', 's', chunk('D', 1, true, bytes(40)))).kind).toBe('complete');
  });

  test('global limit: buffering beyond it is refused (429, retryable) and that site\'s batch discarded; others are kept', async () => {
    const b = new ChunkBatches({ maxSiteBytes: 1000, maxTotalBytes: 100 });
    await b.add('db', 's1', chunk('B', 0, false, bytes(50)));
    await b.add('db', 's2', chunk('B', 0, false, bytes(30)));
    await b.add('db', 's3', chunk('B', 0, false, bytes(10)));
    const e = (await refusal(() => b.add('db', 's3', chunk('B', 1, false, bytes(11)))));
    expect([e.code, e.status, e.retryable]).toEqual(['batch_buffers_full', 429, true]);
    expect(await b.peek('db', 's3')).toBeUndefined();
    expect((await b.stats()).bufferedBytes).toBe(80);
    // A final chunk is not held across requests: it completes even when the buffers are full.
    await b.add('db', 's4', chunk('B', 0, false, bytes(20)));
    expect((await b.add('db', 's1', chunk('B', 1, true, bytes(500)))).kind).toBe('complete');
    expect((await b.stats()).bufferedBytes).toBe(50);
  });

  test('TTL: a batch whose next chunk does not come in time is discarded; activity keeps it alive', async () => {
    let now = 1_000;
    const b = new ChunkBatches({ ttlMs: 10_000, now: () => now });
    await b.add('db', 'slow', chunk('B', 0, false, bytes(8)));
    await b.add('db', 'busy', chunk('B', 0, false, bytes(8)));
    now += 6_000;
    await b.add('db', 'busy', chunk('B', 1, false, bytes(8)));
    now += 6_000; // slow: 12 s idle, busy: 6 s
    expect(await b.peek('db', 'slow')).toBeUndefined();
    expect(await b.peek('db', 'busy')).toEqual({ batchId: 'B', chunks: 2, bytes: 16 });
    expect((await b.stats()).bufferedBytes).toBe(16);
    expect((await refusal(() => b.add('db', 'slow', chunk('B', 1, true)))).code).toBe('batch_invalid');
    now += 3_999; // busy: 9.999 s idle
    expect((await b.add('db', 'busy', chunk('B', 2, true))).kind).toBe('complete');
    // Expiry also runs on add (no explicit sweep), for every site.
    await b.add('db', 'x', chunk('E', 0, false, bytes(4)));
    now += 10_000;
    await b.add('db', 'y', chunk('E', 0, false, bytes(2)));
    expect([await b.peek('db', 'x'), (await b.stats()).bufferedBytes]).toEqual([undefined, 2]);
  });

  test('nodes on one store: the chunks of a batch land on different assemblers; limits are shared; one final chunk merges once', async () => {
    const store = new MemorySharedStore();
    const nodes = [0, 1, 2].map(() => new ChunkBatches({ store, maxSiteBytes: 1000, maxTotalBytes: 100 }));
    const p = [bytes(10, 1), bytes(10, 2), bytes(10, 3), bytes(10, 4)];
    expect(await nodes[0]?.add('db', 's', chunk('B', 0, false, p[0]))).toEqual({ kind: 'buffered' });
    expect(await nodes[1]?.add('db', 's', chunk('B', 1, false, p[1]))).toEqual({ kind: 'buffered' });
    // A re-send of chunk 0 on a third node is a duplicate; its bytes are held once.
    expect(await nodes[2]?.add('db', 's', chunk('B', 0, false, p[0]))).toEqual({ kind: 'duplicate' });
    expect(await nodes[2]?.add('db', 's', chunk('B', 2, false, p[2]))).toEqual({ kind: 'buffered' });
    expect(await nodes[0]?.stats()).toEqual({ openBatches: 1, bufferedBytes: 30 });
    // The global limit counts the buffers of every node.
    await nodes[1]?.add('db', 'other', chunk('X', 0, false, bytes(60)));
    expect((await refusal(() => nodes[2]?.add('db', 'third', chunk('Y', 0, false, bytes(11))))).code).toBe('batch_buffers_full');
    // The final chunk reaches two nodes at once: exactly one assembles the batch.
    const finals = await Promise.allSettled([nodes[0]?.add('db', 's', chunk('B', 3, true, p[3])), nodes[1]?.add('db', 's', chunk('B', 3, true, p[3]))]);
    const done = finals.flatMap((r) => (r.status === 'fulfilled' && r.value?.kind === 'complete' ? [r.value] : []));
    expect(done).toEqual([{ kind: 'complete', payloads: p, window: W }]);
    expect(finals.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(['batch_invalid']);
    await nodes[0]?.applied('db', 's', 'B', 3);
    // After the merge, a late re-send on any node is a duplicate.
    expect(await nodes[2]?.add('db', 's', chunk('B', 3, true, p[3]))).toEqual({ kind: 'duplicate' });
    expect(await nodes[1]?.stats()).toEqual({ openBatches: 1, bufferedBytes: 60 });
  });

  test('chunkFieldsOf: no batchId = plain upload; malformed fields are invalid_request', async () => {
    expect(chunkFieldsOf({ blob: 'x' })).toBeUndefined();
    expect(chunkFieldsOf({ batchId: 'u-1', chunkIndex: 2, isFinal: false })).toEqual({ batchId: 'u-1', index: 2, final: false });
    for (const bad of [{ batchId: '' }, { batchId: 5 }, { batchId: 'a', isFinal: true }, { batchId: 'a', chunkIndex: -1, isFinal: true }, { batchId: 'a', chunkIndex: 1.5, isFinal: true }, { batchId: 'a', chunkIndex: 0, isFinal: 'yes' }, { batchId: 'x'.repeat(201), chunkIndex: 0, isFinal: true }]) {
      expect((await refusal(() => chunkFieldsOf(bad))).code).toBe('invalid_request');
    }
  });
});
