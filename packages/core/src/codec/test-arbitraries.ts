/** fast-check arbitraries shared by the codec tests (test-only module). */
import fc from 'fast-check';
import type { Change, SqlValue } from '../types.ts';
import { ByteWriter } from './bytes.ts';
import { checksum48 } from './fnv.ts';
import { MAX_CLOCK } from './value-fields.ts';
import { encodeBlob, encodeText, encodeUintWithCode, encodeValue, TYPE_INTEGER } from './value.ts';

export const INT64_MIN = -(1n << 63n);
export const INT64_MAX = (1n << 63n) - 1n;

export const intArb: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
  fc.constantFrom(0n, 1n, -1n, 127n, 128n, 255n, 256n, 65535n, 65536n, INT64_MIN, INT64_MAX, INT64_MIN + 1n, 1n << 53n, -(1n << 56n)),
  fc.bigInt({ min: -1000n, max: 1000n }),
);

export const realArb: fc.Arbitrary<number> = fc.oneof(
  fc.double(),
  fc.constantFrom(-0, 0, NaN, Infinity, -Infinity, 1.5, -1.5, Number.MIN_VALUE, -Number.MAX_VALUE),
);

export const textArb: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ minLength: 200, maxLength: 400 }),
  fc.constantFrom('', 'a1', 'héllo ☃ 😀', '\u0000', '__[RIP]__'),
);

export const blobArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: 250, maxLength: 300 }),
);

export const valueArb: fc.Arbitrary<SqlValue> = fc.oneof(fc.constant(null), intArb, realArb, textArb, blobArb);
export const pkValueArb: fc.Arbitrary<SqlValue> = fc.oneof(intArb, realArb, textArb, blobArb);

/** Clocks a payload may carry: up to MAX_CLOCK (2^48-1, docs/PROTOCOL.md "Limits"). */
const clockArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(0, 255, 256, 2 ** 32, MAX_CLOCK));

export const changeArb = (siteIds: Uint8Array[] | null = null): fc.Arbitrary<Change> =>
  fc.record({
    tbl: fc.oneof(fc.constantFrom('todos', 'notes', 'Ünïcode'), fc.string({ maxLength: 10 })),
    pk: fc.uint8Array({ minLength: 2, maxLength: 20 }),
    col: fc.oneof(fc.constantFrom('title', 'done', '__[RIP]__'), fc.string({ maxLength: 10 })),
    val: valueArb,
    colVersion: clockArb,
    dbVersion: clockArb,
    siteId: siteIds ? fc.constantFrom(...siteIds) : fc.uint8Array({ minLength: 16, maxLength: 16 }),
    cl: clockArb,
    seq: clockArb,
  });

/** Equality that tells -0 from 0 and NaN from NaN, and compares bytes. */
export function sameValue(a: SqlValue, b: SqlValue): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]);
  return Object.is(a, b);
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
}

export function fromHex(h: string): Uint8Array {
  const s = h.replace(/\s+/g, '');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Runs of a property: `base` in CI; `FC_NUM_RUNS` raises it (long mode, e.g. FC_NUM_RUNS=1000000).
 * With `share` (0..1], a suite splitting its long-mode budget over several properties gets that
 * share of FC_NUM_RUNS.
 */
export function numRuns(base: number, share = 1): number {
  const env = Number(process.env['FC_NUM_RUNS']);
  return Number.isFinite(env) && env > 0 ? Math.max(Math.ceil(env * share), base) : base;
}

/** Seed of a property: fixed in CI; `FC_SEED` replaces it (plus the property's offset) to explore. */
export function fcSeed(fixed: number): number {
  const env = Number(process.env['FC_SEED']);
  return Number.isSafeInteger(env) ? (env + fixed) | 0 : fixed;
}

/** Rewrites the header checksum so the body decoder is exercised past the checksum check. */
export function fixChecksum(p: Uint8Array): Uint8Array {
  const out = p.slice();
  const sum = checksum48(out.subarray(32));
  const v = new DataView(out.buffer);
  v.setUint16(26, Number(sum >> 32n));
  v.setUint32(28, Number(sum & 0xffffffffn));
  return out;
}

/** A payload body as the plain codec functions write it (the reference for the encoder's and decoder's fast paths). */
export function referenceBody(changes: readonly Change[]): Uint8Array {
  const w = new ByteWriter(64);
  for (const c of changes) {
    encodeText(w, c.tbl);
    encodeBlob(w, c.pk);
    encodeText(w, c.col);
    encodeValue(w, c.val);
    encodeUintWithCode(w, TYPE_INTEGER, c.colVersion);
    encodeUintWithCode(w, TYPE_INTEGER, c.dbVersion);
    encodeBlob(w, c.siteId);
    encodeUintWithCode(w, TYPE_INTEGER, c.cl);
    encodeUintWithCode(w, TYPE_INTEGER, c.seq);
  }
  return w.toBytes();
}
