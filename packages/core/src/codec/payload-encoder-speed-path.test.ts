/**
 * The encoder's fast paths (payload-encoder.ts `putUint` / `putValue` / `putBytes`, one
 * reservation per row) and the limb checksum (fnv.ts `checksum48Number`) against the plain codec
 * functions they replace (value.ts `encodeValue` & co., fnv.ts `fnv1a64`): byte for byte, for random changes and for
 * every width and length boundary, including values long enough to grow the buffer mid-row.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CoreErrorCode } from '../errors.ts';
import type { CoreError } from '../errors.ts';
import type { Change, SqlValue } from '../types.ts';
import { checksum48Number, fnv1a64 } from './fnv.ts';
import { lz4BlockDecompress } from './lz4-block.ts';
import { PayloadEncoder } from './payload-encoder.ts';
import { PAYLOAD_HEADER_SIZE } from './payload-header.ts';
import { changeArb, fcSeed, numRuns, referenceBody } from './test-arbitraries.ts';


/** Low 48 bits of FNV-1a-64 on the 32-bit-halves path (fnv.ts `fnv1a64`): the reference of the limb checksum. */
const reference48 = (b: Uint8Array, start = 0, end = b.length): number => Number(fnv1a64(b.subarray(start, end)) & 0xffffffffffffn);

/** The body of a payload (decompressed when compressed); checks the checksum against {@link reference48}. */
function bodyOf(payload: Uint8Array): Uint8Array {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const expanded = dv.getUint32(8, false);
  const sum = dv.getUint16(26, false) * 2 ** 32 + dv.getUint32(28, false);
  expect(sum).toBe(reference48(payload, PAYLOAD_HEADER_SIZE, payload.length));
  const body = payload.subarray(PAYLOAD_HEADER_SIZE);
  return expanded === 0 ? body : lz4BlockDecompress(body, expanded);
}

/** Byte equality; on a difference, the first differing offset and the bytes around it. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  let i = 0;
  const n = Math.min(actual.length, expected.length);
  while (i < n && actual[i] === expected[i]) i++;
  const at = i === n && actual.length === expected.length ? -1 : i;
  const around = (b: Uint8Array): number[] => Array.from(b.subarray(Math.max(0, at - 4), at + 8));
  expect({ at, length: actual.length, bytes: at < 0 ? [] : around(actual) }).toEqual({ at: -1, length: expected.length, bytes: at < 0 ? [] : around(expected) });
}

function encodeAll(changes: readonly Change[]): Uint8Array {
  const enc = new PayloadEncoder({ schemaHash: 7n });
  for (const c of changes) enc.add(c);
  const p = enc.finish();
  if (p === null) throw new Error('no payload');
  return p;
}

const site = Uint8Array.from({ length: 16 }, (_, i) => i * 13 + 1);
const base: Change = { tbl: 'todos', pk: Uint8Array.of(1, 11, 1, 0x61), col: 'title', val: null, colVersion: 1, dbVersion: 1, siteId: site, cl: 1, seq: 0 };

const CLOCKS = [0, 1, 255, 256, 65535, 65536, 2 ** 24 - 1, 2 ** 24, 2 ** 32 - 1, 2 ** 32, 2 ** 40 - 1, 2 ** 40, 2 ** 48 - 1, 2 ** 48, Number.MAX_SAFE_INTEGER];
const S = 2n ** 53n;
const VALUES: SqlValue[] = [
  null,
  0n,
  1n,
  -1n,
  255n,
  -256n,
  S - 1n,
  -(S - 1n),
  S,
  -S,
  S + 1n,
  -(S + 1n),
  (1n << 63n) - 1n,
  -(1n << 63n),
  0,
  -0,
  1.5,
  -1.5,
  NaN,
  Infinity,
  -Infinity,
  '',
  'a'.repeat(63),
  'a'.repeat(64),
  'é'.repeat(10),
  'x'.repeat(62) + '☃',
  '😀',
  'y'.repeat(300_000),
  new Uint8Array(0),
  new Uint8Array(64).fill(5),
  new Uint8Array(65).fill(6),
  new Uint8Array(1 << 20).fill(7),
];

describe('payload encoder fast paths', () => {
  test('every clock width and value boundary encodes as the codec functions do', () => {
    const changes: Change[] = [];
    for (const v of CLOCKS) {
      changes.push({ ...base, colVersion: v }, { ...base, dbVersion: v }, { ...base, cl: v }, { ...base, seq: v });
    }
    for (const val of VALUES) changes.push({ ...base, val, col: typeof val === 'string' ? 'note' : 'title' });
    // Long names and keys, a key over the short-copy size, names alternating (the last-name memo).
    changes.push({ ...base, tbl: 'Ünïcode', col: 'ünï', pk: new Uint8Array(200).fill(9) }, { ...base, tbl: 't'.repeat(100) }, base);
    expectSameBytes(bodyOf(encodeAll(changes)), referenceBody(changes));
  });

  test('random changes encode as the codec functions do', () => {
    fc.assert(
      fc.property(fc.array(changeArb(), { minLength: 1, maxLength: 40 }), (changes) => {
        expectSameBytes(bodyOf(encodeAll(changes)), referenceBody(changes));
      }),
      { numRuns: numRuns(300), seed: fcSeed(4242) },
    );
  });

  test('a change refused mid-row leaves nothing of it behind', () => {
    for (const bad of [1n << 64n, -(1n << 64n), {} as unknown as SqlValue, undefined as unknown as SqlValue]) {
      const skipped: CoreError[] = [];
      const enc = new PayloadEncoder({ schemaHash: 7n, onInvalidChange: (e) => skipped.push(e) });
      enc.add(base);
      const before = enc.byteLength;
      enc.add({ ...base, val: bad });
      expect(enc.byteLength).toBe(before);
      expect(skipped.map((e) => e.code)).toEqual([CoreErrorCode.PAYLOAD_BAD_VALUE]);
      enc.add({ ...base, seq: 1 });
      expectSameBytes(bodyOf(enc.finish() as Uint8Array), referenceBody([base, { ...base, seq: 1 }]));
    }
  });
});

describe('checksum48Number (16-bit limbs)', () => {
  test('equals FNV-1a-64 on 32-bit halves (fnv1a64), low 48 bits, on random bytes and ranges', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), (b, x, y) => {
        const s = b.length === 0 ? 0 : x % b.length;
        const e = s + (b.length === 0 ? 0 : y % (b.length - s + 1));
        expect(checksum48Number(b)).toBe(reference48(b));
        expect(checksum48Number(b, s, e)).toBe(reference48(b, s, e));
      }),
      { numRuns: numRuns(500), seed: fcSeed(4242) },
    );
    const big = Uint8Array.from({ length: 1 << 16 }, (_, i) => (i * 2654435761) >>> 11);
    expect(checksum48Number(big)).toBe(reference48(big));
    expect(checksum48Number(new Uint8Array(0))).toBe(reference48(new Uint8Array(0)));
  });
});
