/**
 * The LZ4 block codec's fast paths (DataView word reads, 4-byte match extension, unchecked
 * copies after per-sequence checks) against an oracle: a verbatim copy of the byte-wise codec
 * they replaced (test/fixtures/lz4-reference.ts, the codec of e849b95). The compressor must emit the same bytes for every input (golden
 * payloads compare bytes, docs/PROTOCOL.md §P4), the decompressor must return the same bytes or
 * refuse with the same CoreError (code, message, offset).
 */
import fc from 'fast-check';
import * as lz4js from 'lz4js';
import { describe, expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import { lz4BlockCompress, lz4BlockCompressBound, lz4BlockCompressInto, lz4BlockDecompress } from './lz4-block.ts';
import { numRuns } from './test-arbitraries.ts';
import { oracleCompress, oracleCompressInto, oracleDecompress } from '../../test/fixtures/lz4-reference.ts';

/** Deterministic pseudo-random bytes (LCG high byte). */
function lcgBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) out[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
  return out;
}

/** Payload-like bytes: short records with a counter and a few repeated fields. */
function recordBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const rnd = lcgBytes(n, seed);
  for (let i = 0; i < n; i++) {
    const k = i % 37;
    out[i] = k < 12 ? 'todo number '.charCodeAt(k) : k < 16 ? (Math.floor(i / 37) >> ((k - 12) * 3)) & 0x7f : k < 20 ? (rnd[i] as number) & 3 : 0x41 + (k % 5);
  }
  return out;
}

/** Input families, each a function of (length, seed). */
const families: Record<string, (n: number, seed: number) => Uint8Array> = {
  random: lcgBytes,
  zeros: (n) => new Uint8Array(n),
  period3: (n) => Uint8Array.from({ length: n }, (_, i) => 97 + (i % 3)),
  period7: (n, s) => Uint8Array.from({ length: n }, (_, i) => (s + i * 5) % 7),
  lowEntropy: (n, s) => lcgBytes(n, s).map((b) => b & 3),
  records: recordBytes,
  randomWithRepeats: (n, s) => {
    const out = lcgBytes(n, s);
    for (let i = 40; i + 20 < n; i += 53) out.copyWithin(i, i - 37 - (i % 11), i - 37 - (i % 11) + 20);
    return out;
  },
};

/** Index of the first difference of two byte arrays (or of their lengths), -1 if equal. */
function firstDiff(a: Uint8Array | null, b: Uint8Array | null): number {
  if (a === null || b === null) return a === b ? -1 : 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function expectSameCompression(data: Uint8Array): void {
  const want = oracleCompress(data);
  const got = lz4BlockCompress(data);
  expect(got === null).toBe(want === null);
  expect(firstDiff(got, want)).toBe(-1);
  if (got !== null) expect(firstDiff(lz4BlockDecompress(got, data.length), data)).toBe(-1);
  // The Into form, at an offset inside a larger buffer, without the incompressible cut-off.
  const bound = lz4BlockCompressBound(data.length);
  const a = new Uint8Array(bound + 9).fill(0xee);
  const b = new Uint8Array(bound + 9).fill(0xee);
  const la = oracleCompressInto(data, a, 7, bound);
  const lb = lz4BlockCompressInto(data, b, 7, bound);
  expect(lb).toBe(la);
  expect(lb).toBeGreaterThan(0);
  expect(firstDiff(b, a)).toBe(-1);
  expect(firstDiff(lz4BlockDecompress(b.subarray(7, 7 + lb), data.length), data)).toBe(-1);
}

type Outcome = { ok: Uint8Array } | { code: string; message: string; details: unknown };

function outcome(f: () => Uint8Array): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    if (!(e instanceof CoreError)) throw e;
    return { code: e.code, message: e.message, details: e.details };
  }
}

function expectSameDecompression(block: Uint8Array, expandedSize: number): Outcome {
  const want = outcome(() => oracleDecompress(block, expandedSize));
  const got = outcome(() => lz4BlockDecompress(block, expandedSize));
  if ('ok' in want && 'ok' in got) {
    expect(got.ok.length).toBe(expandedSize);
    expect(firstDiff(got.ok, want.ok)).toBe(-1);
  } else {
    expect(got).toEqual(want);
    expect('code' in got && got.code).toBe(CoreErrorCode.PAYLOAD_BAD_COMPRESSION);
  }
  return got;
}

describe('compressor: same bytes as the byte-wise oracle', () => {
  test('every length 0..300 of every input family', () => {
    for (const [, make] of Object.entries(families)) {
      for (let n = 0; n <= 300; n++) expectSameCompression(make(n, n * 31 + 1));
    }
  });

  test('lengths at hash-table size steps and around the 64 KiB window', () => {
    const lengths = new Set<number>();
    for (let log = 8; log <= 17; log++) for (const d of [-13, -12, -5, -1, 0, 1, 5, 12, 13]) lengths.add((1 << log) + d);
    for (const d of [-20, -6, -5, -4, -1, 0, 1, 4, 5, 6, 20]) lengths.add(65535 + 12 + d);
    for (const [name, make] of Object.entries(families)) {
      for (const n of lengths) {
        if (n < 0 || (name === 'random' && n > 70000)) continue;
        expectSameCompression(make(n, n));
      }
    }
  });

  test('matches at distances around the 65535 limit, and matches reaching the end-of-block rules', () => {
    for (const dist of [65530, 65533, 65534, 65535, 65536, 65537, 65540]) {
      for (const tail of [0, 1, 4, 5, 6, 11, 12, 13, 40]) {
        const unit = lcgBytes(64, dist + tail);
        const data = lcgBytes(dist + 64 + tail, dist * 3 + tail);
        data.set(unit, 0);
        data.set(unit, dist); // the same 64 bytes again, `dist` later
        expectSameCompression(data);
        expectSameCompression(data.subarray(0, dist + 8 + tail));
      }
    }
  });

  test('random compositions of literals and repeats (property)', () => {
    const chunk = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 400 })).map(([back, len]) => ({ back, len })),
    );
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 60 }), (chunks) => {
        const out: number[] = [];
        for (const c of chunks) {
          if (c instanceof Uint8Array) out.push(...c);
          else if (out.length > 0) {
            const from = Math.max(0, out.length - c.back);
            for (let i = 0; i < c.len; i++) out.push(out[from + i] as number);
          }
        }
        expectSameCompression(Uint8Array.from(out));
      }),
      { seed: 11, numRuns: numRuns(400) },
    );
  });

  test('a maxOutput cut-off gives -1 at the same budgets as the oracle', () => {
    for (const make of [families['records']!, families['randomWithRepeats']!, families['period7']!]) {
      const data = make(3000, 5);
      const bound = lz4BlockCompressBound(data.length);
      const full = oracleCompressInto(data, new Uint8Array(bound), 0, bound);
      for (const max of [0, 1, full >> 1, ...Array.from({ length: 60 }, (_, k) => full - 40 + k), bound]) {
        const a = new Uint8Array(lz4BlockCompressBound(data.length));
        const b = new Uint8Array(lz4BlockCompressBound(data.length));
        const la = oracleCompressInto(data, a, 0, max);
        expect(lz4BlockCompressInto(data, b, 0, max)).toBe(la);
        if (max < full) expect(la).toBe(-1);
        if (la >= 0) expect(la).toBe(full);
        expect(firstDiff(b, a)).toBe(-1);
      }
    }
  });

  test('output is accepted by an independent decoder (lz4js)', () => {
    for (const [, make] of Object.entries(families)) {
      for (const n of [13, 100, 4099, 70000]) {
        const data = make(n, 3);
        const c = lz4BlockCompress(data);
        if (c === null) continue;
        const out = new Uint8Array(n + 64);
        expect(firstDiff(out.subarray(0, lz4js.decompressBlock(c, out, 0, c.length, 0)), data)).toBe(-1);
      }
    }
  });
});

describe('decompressor: same bytes or the same refusal as the oracle', () => {
  const blocks: [Uint8Array, number][] = [];
  for (const [name, make] of Object.entries(families)) {
    for (const n of [0, 1, 13, 40, 300, 2000]) {
      const data = make(n, n + name.length);
      const c = oracleCompress(data);
      if (c !== null) blocks.push([c, n]);
    }
  }
  // Long overlapping matches at every small period, long literal runs, distance-1 runs.
  for (const period of [1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 63, 64, 65]) {
    const data = Uint8Array.from({ length: 1500 }, (_, i) => (i % period) * 13 + 1);
    data.set(lcgBytes(300, period), 600);
    blocks.push([oracleCompress(data)!, data.length]);
  }

  test('round trips, including blocks that outgrow the first output allocation', () => {
    for (const [c, n] of blocks) expect(expectSameDecompression(c, n)).toHaveProperty('ok');
    const zeros = new Uint8Array(3 << 20); // expands ~250x: several doublings
    const z = oracleCompress(zeros)!;
    expect(expectSameDecompression(z, zeros.length)).toHaveProperty('ok');
    const rec = recordBytes(1 << 20, 9);
    expect(expectSameDecompression(oracleCompress(rec)!, rec.length)).toHaveProperty('ok');
  });

  test('every truncation and a wrong announced size are refused as before', () => {
    for (const [c, n] of blocks) {
      for (let len = 0; len < c.length; len++) expectSameDecompression(c.subarray(0, len), n);
      for (const m of [n - 1, n + 1, n + 1000, 0]) if (m >= 0 && m !== n) expect(expectSameDecompression(c, m)).toHaveProperty('code');
    }
  });

  test('every single-byte corruption gives the oracle outcome', () => {
    for (const [c, n] of blocks) {
      if (c.length > 400) continue;
      const bad = c.slice();
      for (let i = 0; i < c.length; i++) {
        for (const v of [0, 0x0f, 0xf0, 0xff, (c[i]! + 1) & 0xff]) {
          bad[i] = v;
          expectSameDecompression(bad, n);
        }
        bad[i] = c[i]!;
      }
    }
  });

  test('random garbage (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 6000 }), (src, n) => {
        expectSameDecompression(src, n);
      }),
      { seed: 12, numRuns: numRuns(3000) },
    );
  });

  test('invalid announced sizes', () => {
    for (const n of [-1, 0.5, 2 ** 31, Number.NaN]) expect(expectSameDecompression(Uint8Array.of(0), n)).toHaveProperty('code');
    expect(expectSameDecompression(new Uint8Array(), 0)).toHaveProperty('code');
  });
});
