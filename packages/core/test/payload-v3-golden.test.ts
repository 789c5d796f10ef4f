/**
 * Golden test of fragmented values (payload v3, docs/PROTOCOL.md "Fragmented values"): the
 * chunks under `fixtures/payload-v3` were sent by the native SQLite Sync 1.1.4 build (test-only
 * devDependency, loaded, never copied) with `payload_max_chunk_size` 262144 for one row holding a
 * 300,000-character TEXT and a 300,000-byte BLOB (see `meta.json`). They decode, reassemble and
 * merge to exactly the device's values; incomplete or tampered streams are refused.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { decodePayload, decodePayloadHeader, encodePayload, fragmentAssemblerFor, fragmentChange, parseFragmentName, toHex } from '@offsync/core';
import type { Change } from '@offsync/core';
import { openReplica, tableRows } from '@offsync/core/testing';

const DIR = new URL('./fixtures/payload-v3/', import.meta.url);
interface Meta {
  ddl: string;
  title: { length: number; sha256: string };
  data: { length: number; sha256: string };
  changes: Array<{ tbl: string; pk: string; col: string; colVersion: number; dbVersion: number; siteId: string; cl: number; seq: number }>;
  chunks: Array<{ file: string; apply: { batchId: string; chunkIndex: number; isFinal: boolean } }>;
}
const meta = JSON.parse(readFileSync(new URL('meta.json', DIR), 'utf8')) as Meta;
const chunks = meta.chunks.map((c) => new Uint8Array(readFileSync(new URL(c.file, DIR))));

// The device's values, by the rules in meta.json.
const title = Array.from({ length: meta.title.length }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('');
const data = Uint8Array.from({ length: meta.data.length }, (_, i) => ((i * 2654435761) >>> 13) & 255);
const sha = (b: string | Uint8Array): string => createHash('sha256').update(b).digest('hex');
/** Byte equality without a deep comparison of 300,000 elements. */
const sameBytes = (v: unknown, want: Uint8Array): boolean => v instanceof Uint8Array && Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(want);

function decodeBatch(payloads: readonly Uint8Array[]): Change[] {
  const asm = fragmentAssemblerFor();
  const out = payloads.flatMap((p) => decodePayload(p, {}, asm).changes);
  asm.finish();
  return out;
}

describe('payload v3 from the native 1.1.4 build', () => {
  test('the values the fixture rules give are the device values', () => {
    expect(sha(title)).toBe(meta.title.sha256);
    expect(sha(data)).toBe(meta.data.sha256);
  });

  test('chunks: v3 fragment rows, one per chunk, then a v2 chunk; one batch', () => {
    expect(chunks.map((c) => decodePayloadHeader(c).version)).toEqual([3, 3, 3, 3, 2]);
    expect(new Set(meta.chunks.map((c) => c.apply.batchId)).size).toBe(1);
    expect(meta.chunks.map((c) => c.apply.isFinal)).toEqual([false, false, false, false, true]);
    // Alone, a chunk holding part of a value is refused: a value is applied whole or not at all.
    expect(() => decodePayload(chunks[0]!)).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_BAD_FRAGMENT' }));
    const names = chunks.slice(0, 4).map((c) => {
      const asm = fragmentAssemblerFor();
      expect(decodePayload(c, {}, asm).changes).toEqual([]);
      expect(asm.openStreams).toBe(1);
      return parseFragmentName(firstCol(c));
    });
    expect(names.map((n) => [n.col, n.index, n.count, n.total])).toEqual([
      ['title', 0, 2, 300_004],
      ['title', 1, 2, 300_004],
      ['data', 0, 2, 300_004],
      ['data', 1, 2, 300_004],
    ]);
    expect(names[0]!.streamId).toBe(names[1]!.streamId);
    expect(names[2]!.streamId).not.toBe(names[0]!.streamId);
  });

  test('the batch decodes to exactly the device changes, values byte-identical', () => {
    const got = decodeBatch(chunks);
    expect(got.map((c) => ({ tbl: c.tbl, pk: toHex(c.pk).toLowerCase(), col: c.col, colVersion: c.colVersion, dbVersion: c.dbVersion, siteId: toHex(c.siteId).toLowerCase(), cl: c.cl, seq: c.seq }))).toEqual(
      meta.changes.map(({ tbl, pk, col, colVersion, dbVersion, siteId, cl, seq }) => ({ tbl, pk, col, colVersion, dbVersion, siteId, cl, seq })),
    );
    expect(got[0]!.val).toBe(title);
    expect(sameBytes(got[1]!.val, data)).toBe(true);
    expect(got[2]!.val).toBe(7n);
  });

  test('parts reassemble in any order; a missing or repeated part refuses the batch', () => {
    const [t0, t1, d0, d1, last] = chunks as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    const shuffled = decodeBatch([d1, t1, last, t0, d0]);
    expect(shuffled.map((c) => c.col)).toEqual(['n', 'title', 'data']);
    expect(shuffled[1]!.val).toBe(title);
    expect(sameBytes(shuffled[2]!.val, data)).toBe(true);
    expect(() => decodeBatch([t0, t1, d0, last])).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_BAD_FRAGMENT' }));
    expect(() => decodeBatch([t0, t0, t1])).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_BAD_FRAGMENT' }));
    expect(() => decodeBatch([t0, t1, t1])).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_BAD_FRAGMENT' }));
  });

  test('a stream larger than the per-value budget is refused when it opens', () => {
    const asm = fragmentAssemblerFor({ maxValueSize: 300_003 });
    expect(() => decodePayload(chunks[0]!, { maxValueSize: 300_003 }, asm)).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_TOO_LARGE' }));
  });

  test('a tampered part fails the stream hash', () => {
    const [t0, t1] = decodeBatchRaw(chunks.slice(0, 2));
    const bad = t1!.val as Uint8Array;
    const copy = bad.slice();
    copy[100] = (copy[100]! + 1) & 255;
    const p0 = encodePayload([t0!], { schemaHash: 1n })!;
    const p1 = encodePayload([{ ...t1!, val: copy }], { schemaHash: 1n })!;
    expect(decodePayloadHeader(p1).version).toBe(3);
    expect(() => decodeBatch([p0, p1])).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_BAD_FRAGMENT', message: expect.stringMatching(/hash/) }));
  });

  test('our fragment encoding is the same layout: the device parts re-cut by fragmentChange are byte-identical', () => {
    const [t0, t1] = decodeBatchRaw(chunks.slice(0, 2));
    const stream = parseFragmentName(t0!.col).streamId;
    const whole = decodeBatch(chunks)[0]!;
    const mine = fragmentChange(whole, (t0!.val as Uint8Array).length, stream);
    expect(mine.map((c) => c.col)).toEqual([t0!.col, t1!.col]);
    expect(mine.map((c) => toHex(c.val as Uint8Array))).toEqual([toHex(t0!.val as Uint8Array), toHex(t1!.val as Uint8Array)]);
  });

  test('SyncEngine.applyPayloads merges the batch: the central row holds the whole values', () => {
    const e = openReplica(meta.ddl, ['t']);
    const r = e.applyPayloads(chunks, { strictSchemaHash: false });
    expect(r.received).toBe(3);
    const rows = tableRows(e, 't');
    expect(rows).toHaveLength(1);
    expect(rows[0]!['title']).toBe(title);
    expect(sameBytes(rows[0]!['data'], data)).toBe(true);
    expect(rows[0]!['n']).toBe(7n);
    // Without the last part nothing is written.
    const f = openReplica(meta.ddl, ['t']);
    expect(() => f.applyPayloads(chunks.slice(1), { strictSchemaHash: false })).toThrowError(expect.objectContaining({ code: 'CORE_PAYLOAD_BAD_FRAGMENT' }));
    expect(tableRows(f, 't')).toEqual([]);
  });
});

/** Fragment rows as they are in the payloads (no reassembly): decoded as v2 rows. */
function decodeBatchRaw(payloads: readonly Uint8Array[]): Change[] {
  return payloads.flatMap((p) => {
    const v2 = p.slice();
    v2[4] = 2; // the header version is not under the checksum
    return decodePayload(v2).changes;
  });
}

function firstCol(p: Uint8Array): string {
  return decodeBatchRaw([p])[0]!.col;
}
