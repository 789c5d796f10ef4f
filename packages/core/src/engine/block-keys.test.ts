/** Position ids of block cells: the ids 1.1.4 produced in our observations, and strict order. */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { positionBetween } from './block-keys.ts';

test('the ids the native 1.1.4 build wrote (docs/PROTOCOL.md "Block columns")', () => {
  expect(positionBetween(null, null)).toBe('a0');
  expect(positionBetween('a0', null)).toBe('a1');
  expect(positionBetween('a2', null)).toBe('a3');
  expect(positionBetween('a0', 'a1')).toBe('a0V');
  expect(positionBetween('a1', 'a2')).toBe('a1V');
  expect(positionBetween(null, 'a0')).toBe('Zz');
  expect(positionBetween('az', null)).toBe('b00');
});

test('always strictly between its neighbours, byte-wise', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(), { minLength: 1, maxLength: 60 }), (steps) => {
      const ids = ['a0'];
      for (const at of steps) {
        const i = at % (ids.length + 1);
        const lo = i === 0 ? null : (ids[i - 1] as string);
        const hi = i === ids.length ? null : (ids[i] as string);
        const id = positionBetween(lo, hi);
        if (lo !== null) expect(lo < id).toBe(true);
        if (hi !== null) expect(id < hi).toBe(true);
        ids.splice(i, 0, id);
      }
    }),
    { seed: 41, numRuns: 300 },
  );
});
