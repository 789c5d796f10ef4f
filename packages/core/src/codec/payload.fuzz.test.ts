/**
 * Fuzz: random bytes, mutations and truncations of valid payloads (compressed and not, with the
 * checksum recomputed for half of them so the body decoder runs) must either decode or throw a
 * CoreError, and never allocate beyond the expanded-size bound.
 * Seeds are fixed; fast-check prints the seed/counterexample on failure. FC_NUM_RUNS raises runs.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { CoreError } from '../errors.ts';
import type { Change } from '../types.ts';
import { decodePayload, decodePayloadHeader, encodePayload } from './payload.ts';
import { changeArb, fixChecksum, numRuns } from './test-arbitraries.ts';

function mustBeCoreErrorOrOk(bytes: Uint8Array): void {
  try {
    const { header, changes } = decodePayload(bytes, { maxExpandedSize: 1 << 22 });
    expect(changes.length).toBe(header.nrows);
  } catch (e) {
    if (!(e instanceof CoreError)) throw e;
  }
}

const SITES = [new Uint8Array(16).fill(7), new Uint8Array(16).fill(9)];

function samplePayloads(): Uint8Array[] {
  const out: Uint8Array[] = [];
  const lists = fc.sample(fc.array(changeArb(SITES), { minLength: 1, maxLength: 30 }), { seed: 11, numRuns: 60 });
  for (const l of lists) out.push(encodePayload(l, { schemaHash: 123n })!);
  // Single random rows with big blobs: these stay uncompressed.
  for (const c of fc.sample(changeArb(SITES), { seed: 12, numRuns: 20 })) {
    let x = c.seq + 1;
    const blob = Uint8Array.from({ length: 64 }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
    out.push(encodePayload([{ ...c, val: blob.subarray(16), siteId: blob.subarray(0, 16) }], { schemaHash: 9n })!);
  }
  // A surely compressed one.
  const rep: Change[] = Array.from({ length: 200 }, (_, i) => ({
    tbl: 'todos', pk: Uint8Array.of(1, 9, i & 255), col: 'title', val: 'same text', colVersion: 1, dbVersion: 3, siteId: SITES[0]!, cl: 1, seq: i,
  }));
  out.push(encodePayload(rep, { schemaHash: 1n })!);
  return out;
}

const payloads = samplePayloads();

test('fixture set has compressed and uncompressed payloads', () => {
  const compressed = payloads.filter((p) => decodePayloadHeader(p).expandedSize !== 0).length;
  expect(compressed).toBeGreaterThan(2);
  expect(payloads.length - compressed).toBeGreaterThan(2);
});

test('random byte strings (some with a valid header prefix)', () => {
  const header = payloads[0]!.subarray(0, 32);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), fc.boolean(), (rnd, withHeader, fix) => {
      let bytes: Uint8Array = rnd;
      if (withHeader) {
        bytes = new Uint8Array(32 + rnd.length);
        bytes.set(header);
        bytes.set(rnd, 32);
        if (fix) bytes = fixChecksum(bytes);
      }
      mustBeCoreErrorOrOk(bytes);
    }),
    { seed: 20240601, numRuns: numRuns(3000) },
  );
});

const mutationArb = fc.record({
  which: fc.nat(),
  edits: fc.array(fc.record({ pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'xor1', 'insert', 'delete') }), {
    minLength: 1,
    maxLength: 4,
  }),
  truncate: fc.option(fc.nat(), { nil: undefined }),
  fix: fc.boolean(),
});

test('mutations and truncations of valid payloads', () => {
  fc.assert(
    fc.property(mutationArb, ({ which, edits, truncate, fix }) => {
      let bytes = Array.from(payloads[which % payloads.length]!);
      for (const e of edits) {
        const pos = e.pos % (bytes.length + 1);
        if (e.kind === 'set') bytes[pos] = e.byte;
        else if (e.kind === 'xor1') bytes[pos] = (bytes[pos] ?? 0) ^ (1 << (e.byte & 7));
        else if (e.kind === 'insert') bytes.splice(pos, 0, e.byte);
        else bytes.splice(pos, 1);
      }
      if (truncate !== undefined) bytes = bytes.slice(0, truncate % (bytes.length + 1));
      let u8: Uint8Array = Uint8Array.from(bytes.map((b) => b & 255));
      if (fix && u8.length >= 32) u8 = fixChecksum(u8);
      mustBeCoreErrorOrOk(u8);
    }),
    { seed: 77, numRuns: numRuns(3000) },
  );
});

test('every truncation of every fixture fails cleanly', () => {
  for (const p of payloads.slice(0, 10)) {
    for (let n = 0; n < p.length; n++) {
      mustBeCoreErrorOrOk(p.subarray(0, n));
      mustBeCoreErrorOrOk(fixChecksum(p.subarray(0, Math.max(n, 32))));
    }
  }
});

test('an absurd expanded size is refused before allocating', () => {
  const p = payloads.find((x) => decodePayloadHeader(x).expandedSize !== 0)!.slice();
  new DataView(p.buffer).setUint32(8, 0x7fffffff);
  expect(() => decodePayload(fixChecksum(p))).toThrow(CoreError);
});
