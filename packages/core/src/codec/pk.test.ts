import fc from 'fast-check';
import { expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { SqlValue } from '../types.ts';
import { decodePk, encodePk } from './pk.ts';
import { fromHex, INT64_MIN, numRuns, pkValueArb, sameValue, toHex } from './test-arbitraries.ts';

const VECTOR_VALUES: SqlValue[] = [1n, -1n, 1.5, Uint8Array.of(0), 's', 127n, 128n, 200n, 255n, 256n, 32767n, 32768n, INT64_MIN];
const V099 = '0D 0901 0801 02 000000000000F83F 0C0100 0B0173 097F 0980 09C8 09FF 110100 117FFF 118000 06';
const V0868 = '0D 0901 0801 02 3FF8000000000000 0C0100 0B0173 097F 110080 1100C8 1100FF 110100 117FFF 19008000 06';

function pkCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CoreError) return e.code;
    throw e;
  }
  return 'ok';
}

test("'a1' encodes to 01 0B 02 61 31", () => {
  expect(toHex(encodePk(['a1']))).toBe('010B026131');
  expect(decodePk(fromHex('010B026131'))).toEqual(['a1']);
});

test('B.3 vector: 0.9.99 bytes exactly; 0.8.68 decodes to the same values', () => {
  expect(toHex(encodePk(VECTOR_VALUES))).toBe(V099.replace(/ /g, ''));
  for (const [hex, be] of [[V099, false], [V0868, true]] as const) {
    const got = decodePk(fromHex(hex), be);
    expect(got.length).toBe(VECTOR_VALUES.length);
    got.forEach((v, i) => expect(sameValue(v, VECTOR_VALUES[i]!)).toBe(true));
  }
});

test('invalid keys throw PK_INVALID', () => {
  const P = CoreErrorCode.PK_INVALID;
  expect(pkCode(() => encodePk([]))).toBe(P);
  expect(pkCode(() => encodePk([null]))).toBe(P);
  expect(pkCode(() => encodePk(new Array<SqlValue>(256).fill(1n)))).toBe(P);
  expect(pkCode(() => encodePk([1n << 64n]))).toBe(P);
  expect(pkCode(() => decodePk(new Uint8Array()))).toBe(P);
  expect(pkCode(() => decodePk(fromHex('0005')))).toBe(P);
  expect(pkCode(() => decodePk(fromHex('0105')))).toBe(P); // NULL
  expect(pkCode(() => decodePk(fromHex('010B0261')))).toBe(P); // truncated
  expect(pkCode(() => decodePk(fromHex('010B02613100')))).toBe(P); // trailing
  expect(pkCode(() => decodePk(fromHex('020900')))).toBe(P); // count too high
  expect(pkCode(() => decodePk(fromHex('010B01FF')))).toBe(P); // bad UTF-8
  expect(encodePk(new Array<SqlValue>(255).fill(1n)).length).toBe(1 + 255 * 2);
});

test('round trip', () => {
  fc.assert(
    fc.property(fc.array(pkValueArb, { minLength: 1, maxLength: 6 }), (values) => {
      const got = decodePk(encodePk(values));
      expect(got.length).toBe(values.length);
      got.forEach((v, i) => expect(sameValue(v, values[i]!)).toBe(true));
    }),
    { seed: 2, numRuns: numRuns(1000) },
  );
});
