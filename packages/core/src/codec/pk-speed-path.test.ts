/**
 * `decodePk`, with its fast path for one ASCII TEXT value, gives exactly what the general decoder
 * (`decodePkGeneral`) gives (values, or the same error) for any blob.
 */
import { describe, expect, test } from 'vitest';
import { decodePk, decodePkGeneral, encodePk } from './pk.ts';
import { prng } from '../testing/index.ts';
import type { SqlValue } from '../types.ts';

const outcome = (f: () => SqlValue[]): unknown => {
  try {
    return { values: f() };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
};

const same = (pk: Uint8Array): void => {
  expect(outcome(() => decodePk(pk)), Buffer.from(pk).toString('hex')).toEqual(outcome(() => decodePkGeneral(pk)));
};

describe('decodePk (fast path) = decodePkGeneral', () => {
  test('keys of every shape, and blobs around the fast path', () => {
    const rand = prng(7);
    const text = (n: number, max: number): string => Array.from({ length: n }, () => String.fromCharCode(Math.floor(rand() * max))).join('');
    const keys: SqlValue[][] = [[''], ['a'], ['\u0000'], ['\u007f'], ['é'], ['x'.repeat(48)], ['x'.repeat(49)], ['y'.repeat(255)], ['y'.repeat(256)], [1n], [-5n], [2.5], [new Uint8Array([1, 2])], ['a', 'b'], [3n, 'k']];
    for (let i = 0; i < 300; i++) keys.push([text(Math.floor(rand() * 80), rand() < 0.8 ? 0x80 : 0x3000)]);
    for (const k of keys) {
      const pk = encodePk(k);
      same(pk);
      // Damaged forms: a byte more or less, a wrong length, a non-ASCII byte, another type.
      same(pk.subarray(0, pk.length - 1));
      same(new Uint8Array([...pk, 0x41]));
      if (pk.length > 2) {
        const wrongLength = pk.slice();
        wrongLength[2] = ((wrongLength[2] as number) + 1) & 0xff;
        same(wrongLength);
      }
      if (pk.length > 3) {
        const high = pk.slice();
        high[3] = 0xc3;
        same(high);
        const count = pk.slice();
        count[0] = 2;
        same(count);
      }
    }
    same(new Uint8Array([1, 0x0b, 0]));
    same(new Uint8Array([1, 0x0b, 1, 0xff]));
    same(new Uint8Array([1, 0x0b]));
  });
});
