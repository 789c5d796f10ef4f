import { describe, expect, test } from 'vitest';
import { BloomFilter } from './bloom.ts';

const enc = new TextEncoder();

describe('BloomFilter (compacted keys)', () => {
  test('no false negatives over 10,000 keys; under 5% false positives over 10,000 others', () => {
    const f = BloomFilter.forKeys(10_000);
    const added = Array.from({ length: 10_000 }, (_, i) => enc.encode(`key-${i}`));
    for (const k of added) f.add(k);
    // Read back from its stored form, as the merge does.
    const g = BloomFilter.from(Uint8Array.from(f.bits), f.k);
    for (const k of added) expect(g.mayContain(k)).toBe(true);
    let fp = 0;
    for (let i = 0; i < 10_000; i++) if (g.mayContain(enc.encode(`other-${i}`))) fp++;
    expect(fp).toBeLessThan(500);
  });

  test('binary keys that differ in one byte are told apart; an empty filter contains nothing', () => {
    const f = BloomFilter.forKeys(1_000);
    let fp = 0;
    for (let i = 0; i < 1_000; i++) f.add(Uint8Array.of(1, i & 0xff, i >> 8, 0));
    for (let i = 0; i < 1_000; i++) expect(f.mayContain(Uint8Array.of(1, i & 0xff, i >> 8, 0))).toBe(true);
    for (let i = 0; i < 1_000; i++) if (f.mayContain(Uint8Array.of(1, i & 0xff, i >> 8, 1))) fp++;
    expect(fp).toBeLessThan(50);
    const empty = BloomFilter.forKeys(0);
    expect(empty.mayContain(Uint8Array.of())).toBe(false);
    expect(empty.mayContain(enc.encode('x'))).toBe(false);
    expect(() => BloomFilter.from(new Uint8Array(0), 7)).toThrow(RangeError);
  });
});
