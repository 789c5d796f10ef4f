import fc from 'fast-check';
import * as lz4js from 'lz4js';
import { expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import { lz4BlockCompress, lz4BlockCompressBound, lz4BlockDecompress } from './lz4-block.ts';
import { numRuns } from './test-arbitraries.ts';

/** Parses a block and checks the standard end-of-block rules a strict decoder relies on. */
function checkEndRules(block: Uint8Array, n: number): void {
  let ip = 0;
  let op = 0;
  let lastMatchStart = -1;
  for (;;) {
    const token = block[ip++]!;
    let lit = token >> 4;
    if (lit === 15) for (let b = 255; b === 255; ) lit += b = block[ip++]!;
    ip += lit;
    op += lit;
    if (ip === block.length) break;
    ip += 2;
    let ml = token & 15;
    if (ml === 15) for (let b = 255; b === 255; ) ml += b = block[ip++]!;
    lastMatchStart = op;
    op += ml + 4;
    expect(op).toBeLessThanOrEqual(n - 5); // last 5 bytes are literals
  }
  expect(op).toBe(n);
  if (lastMatchStart >= 0) expect(lastMatchStart).toBeLessThanOrEqual(n - 12);
}

function lz4jsDecompress(src: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n + 64);
  const len = lz4js.decompressBlock(src, out, 0, src.length, 0);
  return out.slice(0, len);
}

const dataArb = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }),
  fc.uint8Array({ maxLength: 20 }),
  fc.array(fc.constantFrom(0, 1, 2, 97), { maxLength: 3000 }).map((a) => Uint8Array.from(a)),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 500 })).map(([unit, k]) => {
    const out = new Uint8Array(unit.length * k);
    for (let i = 0; i < k; i++) out.set(unit, i * unit.length);
    return out;
  }),
);

test('round trip, end rules, and lz4js cross-check', () => {
  fc.assert(
    fc.property(dataArb, (data) => {
      const c = lz4BlockCompress(data);
      if (c === null) return;
      expect(c.length).toBeLessThanOrEqual(data.length);
      expect(lz4BlockDecompress(c, data.length)).toEqual(data);
      checkEndRules(c, data.length);
      expect(lz4jsDecompress(c, data.length)).toEqual(data);
    }),
    { seed: 7, numRuns: numRuns(500) },
  );
});

test('decompresses what lz4js compresses', () => {
  fc.assert(
    fc.property(dataArb, (data) => {
      const dst = new Uint8Array(lz4js.compressBound(data.length));
      const len = lz4js.compressBlock(data, dst, 0, data.length, new Uint32Array(1 << 16));
      if (len === 0) return; // lz4js: incompressible
      expect(lz4BlockDecompress(dst.subarray(0, len), data.length)).toEqual(data);
    }),
    { seed: 8, numRuns: numRuns(300) },
  );
});

test('incompressible data returns null, repetitive data compresses hard', () => {
  const rnd = new Uint8Array(4096);
  let x = 12345;
  for (let i = 0; i < rnd.length; i++) rnd[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
  expect(lz4BlockCompress(rnd)).toBeNull();
  const zeros = new Uint8Array(1 << 20);
  const c = lz4BlockCompress(zeros)!;
  expect(c.length).toBeLessThan(zeros.length / 200);
  expect(lz4BlockDecompress(c, zeros.length).every((b) => b === 0)).toBe(true);
  expect(lz4BlockCompressBound(100)).toBeGreaterThan(100);
  // tiny inputs are all literals: 1 token + bytes > input, so null
  expect(lz4BlockCompress(Uint8Array.of(1, 2, 3))).toBeNull();
  expect(lz4BlockDecompress(Uint8Array.of(0), 0)).toEqual(new Uint8Array());
});

function expectBad(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CoreError);
    expect((e as CoreError).code).toBe(CoreErrorCode.PAYLOAD_BAD_COMPRESSION);
    return;
  }
  throw new Error('expected PAYLOAD_BAD_COMPRESSION');
}

test('malformed blocks throw PAYLOAD_BAD_COMPRESSION', () => {
  expectBad(() => lz4BlockDecompress(new Uint8Array(), 0));
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x10), 1)); // literal runs past input
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x10, 65), 2)); // too short
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x20, 65, 66), 1)); // too long
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x14, 65, 0, 0, 0x00), 10)); // offset 0
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x14, 65, 2, 0, 0x00), 10)); // offset > produced
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x14, 65, 1), 10)); // truncated offset
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0xf0), 100)); // truncated length
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x1f, 65, 1, 0, 255), 1000)); // truncated match length
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0x14, 65, 1, 0), 10)); // ends after a match
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0), -1));
  expectBad(() => lz4BlockDecompress(Uint8Array.of(0), 2 ** 31));
  expect(lz4BlockDecompress(Uint8Array.of(0x14, 65, 1, 0, 0x00), 9)).toEqual(new Uint8Array(9).fill(65));
});

test('random garbage never escapes as a non-CoreError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 5000 }), (src, n) => {
      try {
        expect(lz4BlockDecompress(src, n).length).toBe(n);
      } catch (e) {
        if (!(e instanceof CoreError)) throw e;
        expect(e.code).toBe(CoreErrorCode.PAYLOAD_BAD_COMPRESSION);
      }
    }),
    { seed: 9, numRuns: numRuns(2000) },
  );
});
