import fc from 'fast-check';
import { expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change } from '../types.ts';
import { decodePayload, decodePayloadHeader, encodePayload, MAX_CLOCK, PayloadEncoder } from './payload.ts';
import { changeArb, fixChecksum, fromHex, numRuns, sameValue } from './test-arbitraries.ts';

const SITE = fromHex('01A213339D147CFE8DCA6FEE1E2B6B55');

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CoreError) return e.code;
    throw e;
  }
  return 'ok';
}

function expectSameChanges(got: Change[], want: Change[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    expect(g.tbl).toBe(w.tbl);
    expect(g.col).toBe(w.col);
    expect(Array.from(g.pk)).toEqual(Array.from(w.pk));
    expect(Array.from(g.siteId)).toEqual(Array.from(w.siteId));
    expect(sameValue(g.val, w.val)).toBe(true);
    expect([g.colVersion, g.dbVersion, g.cl, g.seq]).toEqual([w.colVersion, w.dbVersion, w.cl, w.seq]);
  });
}

const B5_HEADER = '434C5359 02 000976 000000C6 0009 00000004 FE8B12589F8259A7 971C1C209489';

test('B.5 worked example header', () => {
  const h = decodePayloadHeader(fromHex(B5_HEADER));
  expect(h).toEqual({
    version: 2,
    libVersion: [0, 9, 118],
    expandedSize: 198,
    ncols: 9,
    nrows: 4,
    schemaHash: 0xfe8b12589f8259a7n,
    checksum: 0x971c1c209489n,
  });
});

test('B.5 first row decodes from its documented bytes', () => {
  const row =
    '0B05746F646F73 0C05010B026231 0B057469746C65 0B0666726F6D2042 0901 0901 0C1001A213339D147CFE8DCA6FEE1E2B6B55 0901 0900';
  const body = fromHex(row);
  const header = fromHex('434C5359 02 000976 00000000 0009 00000001 FE8B12589F8259A7 000000000000');
  const p = new Uint8Array(32 + body.length);
  p.set(header);
  p.set(body, 32);
  const { changes } = decodePayload(fixChecksum(p));
  expectSameChanges(changes, [
    { tbl: 'todos', pk: fromHex('010B026231'), col: 'title', val: 'from B', colVersion: 1, dbVersion: 1, siteId: SITE, cl: 1, seq: 0 },
  ]);
});

test('round trip of random change lists (compressed or not)', () => {
  const sites = [SITE, new Uint8Array(16), new Uint8Array(16).fill(255)];
  fc.assert(
    fc.property(fc.array(changeArb(sites), { minLength: 1, maxLength: 40 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (changes, hash) => {
      const p = encodePayload(changes, { schemaHash: hash })!;
      const { header, changes: got } = decodePayload(p);
      expect(header.version).toBe(2);
      expect(header.schemaHash).toBe(hash);
      expect(header.libVersion).toEqual([0, 9, 99]);
      expect(header.nrows).toBe(changes.length);
      expectSameChanges(got, changes);
    }),
    { seed: 3, numRuns: numRuns(500) },
  );
});

test('encoder: null when empty, byteLength/rowCount, compression, reuse after finish', () => {
  expect(encodePayload([], { schemaHash: 0n })).toBeNull();
  const enc = new PayloadEncoder({ schemaHash: 5n, libVersion: [1, 1, 4] });
  const mk = (i: number): Change => ({ tbl: 'todos', pk: fromHex('010B026131'), col: 'title', val: `v${i}`, colVersion: 1, dbVersion: i, siteId: SITE, cl: 1, seq: i });
  for (let i = 0; i < 100; i++) enc.add(mk(i));
  expect(enc.rowCount).toBe(100);
  const raw = enc.byteLength;
  const p = enc.finish()!;
  const h = decodePayloadHeader(p);
  expect(h.expandedSize).toBe(raw);
  expect(p.length).toBeLessThan(raw / 2);
  expect(h.libVersion).toEqual([1, 1, 4]);
  expect(enc.rowCount).toBe(0);
  expect(enc.finish()).toBeNull();
  enc.add(mk(1));
  const one = enc.finish()!;
  expect(decodePayloadHeader(one).expandedSize).toBe(0); // 1 short row does not compress
  expect(decodePayload(one).changes[0]!.val).toBe('v1');
  expect(codeOf(() => enc.add({ ...mk(1), siteId: new Uint8Array(3) }))).toBe(CoreErrorCode.PAYLOAD_BAD_VALUE);
  expect(codeOf(() => enc.add({ ...mk(1), cl: -1 }))).toBe(CoreErrorCode.PAYLOAD_BAD_VALUE);
  expect(codeOf(() => enc.add({ ...mk(1), val: 1n << 70n }))).toBe(CoreErrorCode.PAYLOAD_BAD_VALUE);
  expect(enc.byteLength).toBe(0); // failed adds leave nothing behind
});

test('v1 payloads: big-endian REAL, checksum ignored', () => {
  const body = fromHex('0B0174 0C020901 0B0161 023FF8000000000000 0901 0902 0C10' + '00'.repeat(16) + ' 0901 0900');
  const p = new Uint8Array(32 + body.length);
  p.set(fromHex('434C5359 01 000844 00000000 0009 00000001 0000000000000000 DEADBEEF0000'));
  p.set(body, 32);
  const { header, changes } = decodePayload(p);
  expect(header.version).toBe(1);
  expect(changes[0]!.val).toBe(1.5);
  expect(changes[0]!.dbVersion).toBe(2);
});

test('header and body errors, in B.1 order', () => {
  const good = encodePayload(
    Array.from({ length: 50 }, (_, i): Change => ({ tbl: 't', pk: fromHex('010901'), col: 'c', val: BigInt(i), colVersion: 1, dbVersion: 1, siteId: SITE, cl: 1, seq: i })),
    { schemaHash: 1n },
  )!;
  expect(decodePayloadHeader(good).expandedSize).toBeGreaterThan(0);
  const patch = (off: number, bytes: number[], fix = false): Uint8Array => {
    const p = good.slice();
    p.set(bytes, off);
    return fix ? fixChecksum(p) : p;
  };
  expect(codeOf(() => decodePayload(fromHex('434C')))).toBe(CoreErrorCode.PAYLOAD_TRUNCATED);
  expect(codeOf(() => decodePayload(fromHex('00')))).toBe(CoreErrorCode.PAYLOAD_BAD_SIGNATURE);
  expect(codeOf(() => decodePayload(patch(0, [0x44])))).toBe(CoreErrorCode.PAYLOAD_BAD_SIGNATURE);
  expect(codeOf(() => decodePayload(patch(4, [4])))).toBe(CoreErrorCode.PAYLOAD_UNSUPPORTED_VERSION);
  expect(codeOf(() => decodePayload(patch(12, [0, 0])))).toBe(CoreErrorCode.PAYLOAD_BAD_HEADER);
  expect(codeOf(() => decodePayload(patch(12, [0, 8])))).toBe(CoreErrorCode.PAYLOAD_BAD_HEADER);
  expect(codeOf(() => decodePayload(patch(40, [0x99])))).toBe(CoreErrorCode.PAYLOAD_BAD_CHECKSUM);
  expect(codeOf(() => decodePayload(patch(8, [0x7f, 0, 0, 0])))).toBe(CoreErrorCode.PAYLOAD_BAD_HEADER);
  expect(codeOf(() => decodePayload(patch(8, [0xff, 0, 0, 0])))).toBe(CoreErrorCode.PAYLOAD_BAD_HEADER);
  expect(codeOf(() => decodePayload(patch(14, [0, 1, 0, 0])))).toBe(CoreErrorCode.PAYLOAD_BAD_HEADER);
  expect(codeOf(() => decodePayload(patch(14, [0, 0, 0, 51])))).toBe(CoreErrorCode.PAYLOAD_TRUNCATED);
  expect(codeOf(() => decodePayload(patch(14, [0, 0, 0, 49])))).toBe(CoreErrorCode.PAYLOAD_TRAILING_BYTES);
  expect(codeOf(() => decodePayload(good, { maxRows: 49 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(codeOf(() => decodePayload(good, { maxExpandedSize: 100 }))).toBe(CoreErrorCode.PAYLOAD_TOO_LARGE);
  expect(codeOf(() => decodePayload(fixChecksum(good.subarray(0, good.length - 3))))).toBe(CoreErrorCode.PAYLOAD_BAD_COMPRESSION);
  expect(decodePayload(good).changes.length).toBe(50);
});

test('wrong field types and clock ranges are PAYLOAD_BAD_VALUE', () => {
  const row = (fields: string) => {
    const body = fromHex(fields);
    const p = new Uint8Array(32 + body.length);
    p.set(fromHex('434C5359 02 000963 00000000 0009 00000001 0000000000000000 000000000000'));
    p.set(body, 32);
    return fixChecksum(p);
  };
  const S = '0C10' + '11'.repeat(16);
  const ok = `0B0174 0C020901 0B0163 05 0901 0901 ${S} 0901 0900`;
  expect(decodePayload(row(ok)).changes[0]!.val).toBeNull();
  for (const bad of [
    `0901 0C020901 0B0163 05 0901 0901 ${S} 0901 0900`, // tbl not TEXT
    `0B0174 0B020901 0B0163 05 0901 0901 ${S} 0901 0900`, // pk not BLOB
    `0B0174 0C020901 05 05 0901 0901 ${S} 0901 0900`, // col NULL
    `0B0174 0C020901 0B0163 05 0801 0901 ${S} 0901 0900`, // negative clock
    `0B0174 0C020901 0B0163 05 06 0901 ${S} 0901 0900`, // INT64_MIN clock
    `0B0174 0C020901 0B0163 05 0901 0901 0C0F${'11'.repeat(15)} 0901 0900`, // 15-byte site id
    `0B0174 0C020901 0B0163 05 0901 0901 ${S} 0901 023FF8000000000000`, // REAL seq
  ]) {
    expect(codeOf(() => decodePayload(row(bad)))).toBe(CoreErrorCode.PAYLOAD_BAD_VALUE);
  }
  // Clock bound (docs/PROTOCOL.md "Limits"): MAX_CLOCK = 2^48-1 passes, one more is refused in every clock field.
  expect(decodePayload(row(`0B0174 0C020901 0B0163 05 31FFFFFFFFFFFF 31FFFFFFFFFFFF ${S} 31FFFFFFFFFFFF 31FFFFFFFFFFFF`)).changes[0]).toMatchObject({
    colVersion: MAX_CLOCK, dbVersion: MAX_CLOCK, cl: MAX_CLOCK, seq: MAX_CLOCK,
  });
  const big = '3901000000000000'; // 2^48, width 7
  for (const [i, fields] of [
    `0B0174 0C020901 0B0163 05 ${big} 0901 ${S} 0901 0900`,
    `0B0174 0C020901 0B0163 05 0901 ${big} ${S} 0901 0900`,
    `0B0174 0C020901 0B0163 05 0901 0901 ${S} ${big} 0900`,
    `0B0174 0C020901 0B0163 05 0901 0901 ${S} 0901 ${big}`,
    `0B0174 0C020901 0B0163 05 0901 0901 ${S} 0901 3920000000000000`, // 2^53
    `0B0174 0C020901 0B0163 05 0901 0901 ${S} 0901 41FFFFFFFFFFFFFFFF`, // 2^64-1 (width 8)
  ].entries()) {
    const err = (() => { try { decodePayload(row(fields)); } catch (e) { return e as CoreError; } return undefined; })();
    expect(err?.code, `case ${i}`).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
    expect(err?.details['field']).toBe(['col_version', 'db_version', 'cl', 'seq', 'seq', 'seq'][i]);
  }
  const maxSafe = `0B0174 0C020901 0B0163 05 0800 0901 ${S} 0901 391FFFFFFFFFFFFF`;
  expect(codeOf(() => decodePayload(row(maxSafe)))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
  expect(decodePayload(row(maxSafe), { maxClock: Number.MAX_SAFE_INTEGER }).changes[0]!.seq).toBe(Number.MAX_SAFE_INTEGER);
  expect(codeOf(() => decodePayload(row(`0B0174 0C020901 0B0163 05 0901 0901 ${S} 0901 0905`), { maxClock: 4 }))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
});
