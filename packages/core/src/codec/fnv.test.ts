import fc from 'fast-check';
import { expect, test } from 'vitest';
import { checksum48, fnv1a64 } from './fnv.ts';
import { numRuns } from './test-arbitraries.ts';

function reference(bytes: Uint8Array, seed = 0xcbf29ce484222325n): bigint {
  let h = seed;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

const enc = (s: string) => new TextEncoder().encode(s);

test('known FNV-1a-64 vectors', () => {
  expect(fnv1a64(new Uint8Array())).toBe(0xcbf29ce484222325n);
  expect(fnv1a64(enc('a'))).toBe(0xaf63dc4c8601ec8cn);
  expect(fnv1a64(enc('foobar'))).toBe(0x85944171f73967e8n);
  expect(checksum48(enc('foobar'))).toBe(0x4171f73967e8n);
});

test('matches a bigint reference on random input, with and without seed', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (bytes, seed) => {
      expect(fnv1a64(bytes)).toBe(reference(bytes));
      expect(fnv1a64(bytes, seed)).toBe(reference(bytes, seed));
      expect(checksum48(bytes)).toBe(reference(bytes) & 0xffffffffffffn);
    }),
    { seed: 42, numRuns: numRuns(300) },
  );
});

test('seed continues a hash', () => {
  const a = enc('hello '), b = enc('world');
  expect(fnv1a64(b, fnv1a64(a))).toBe(fnv1a64(enc('hello world')));
});
