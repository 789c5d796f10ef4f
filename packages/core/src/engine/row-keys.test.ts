import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { blobHash, RowsByKey } from './row-keys.ts';

interface Row {
  readonly pk: Uint8Array;
  readonly n: number;
}

/** Adds every key not held yet (as the merges do: find, then add) and checks each lookup against a string-keyed map. */
function replay(keys: readonly Uint8Array[], rows: RowsByKey<Row>): void {
  const reference = new Map<string, Row>();
  for (const pk of keys) {
    const name = Buffer.from(pk).toString('hex');
    const found = rows.find(pk);
    expect(found).toBe(reference.get(name));
    if (found === undefined) {
      const r = { pk, n: reference.size };
      rows.add(r);
      reference.set(name, r);
    }
  }
  expect(rows.list.map((r) => r.n)).toEqual([...reference.values()].map((r) => r.n));
  for (const [name, r] of reference) expect(rows.find(Uint8Array.from(Buffer.from(name, 'hex')))).toBe(r);
}

describe('RowsByKey (rows of a merge by key blob)', () => {
  test('finds exactly the keys added, bytewise (random keys with repeats, prefixes, Buffers and copies)', () => {
    const key = fc.uint8Array({ minLength: 0, maxLength: 6 });
    fc.assert(
      fc.property(fc.array(key, { maxLength: 400 }), fc.array(fc.nat(), { maxLength: 400 }), (fresh, repeats) => {
        // Repeats of earlier keys, as fresh copies (a new object with the same bytes) or as Buffers.
        const keys: Uint8Array[] = [...fresh];
        for (const [i, r] of repeats.entries()) {
          const k = fresh[r % Math.max(1, fresh.length)];
          if (k !== undefined) keys.splice(r % (keys.length + 1), 0, i % 2 === 0 ? Uint8Array.from(k) : Buffer.from(k));
        }
        replay(keys, new RowsByKey<Row>());
      }),
      { numRuns: 200 },
    );
  });

  test('stays exact when every key has the same hash: it falls back to exact string keys', () => {
    const rows = new RowsByKey<Row>(() => 7);
    const keys = Array.from({ length: 300 }, (_, i) => Uint8Array.of(i & 0xff, i >> 8));
    replay([...keys, ...keys.slice(0, 50)], rows);
    expect(rows.exact).toBe(true);
  });

  test('keeps its open-addressing table for ordinary keys, through growth', () => {
    const rows = new RowsByKey<Row>();
    const keys = Array.from({ length: 20_000 }, (_, i) => new TextEncoder().encode(`018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f`));
    replay(keys, rows);
    expect(rows.exact).toBe(false);
    expect(rows.list.length).toBe(20_000);
  });

  test('the hash is bytewise: equal bytes in a Buffer and a Uint8Array hash alike, one byte apart differ', () => {
    const a = Uint8Array.of(1, 11, 3, 97, 98, 99);
    expect(blobHash(Buffer.from(a))).toBe(blobHash(a));
    const seen = new Set<number>();
    for (let b = 0; b < 256; b++) seen.add(blobHash(Uint8Array.of(1, 11, 3, 97, 98, b)));
    expect(seen.size).toBe(256);
  });
});
