import fc from 'fast-check';
import { expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { SqlValue } from '../types.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { decodeValue, encodeValue, valueEncodedSize } from './value.ts';
import { fromHex, INT64_MAX, INT64_MIN, numRuns, sameValue, toHex, valueArb } from './test-arbitraries.ts';

function enc(v: SqlValue): string {
  const w = new ByteWriter(4);
  encodeValue(w, v);
  return toHex(w.toBytes());
}

function dec(hex: string, be = false): SqlValue {
  const r = new ByteReader(fromHex(hex));
  const v = decodeValue(r, be);
  expect(r.remaining).toBe(0);
  return v;
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CoreError) return e.code;
    throw e;
  }
  return 'ok';
}

test('encodes with the ≥0.9 rules', () => {
  expect(enc(0n)).toBe('0900');
  expect(enc(255n)).toBe('09FF');
  expect(enc(256n)).toBe('110100');
  expect(enc(-1n)).toBe('0801');
  expect(enc(INT64_MIN)).toBe('06');
  expect(enc(INT64_MAX)).toBe('417FFFFFFFFFFFFFFF');
  expect(enc(-INT64_MAX)).toBe('407FFFFFFFFFFFFFFF');
  expect(enc(1n << 53n)).toBe('3920000000000000');
  // Every magnitude width at its boundaries (value.ts putUint's branches and its generic tail).
  expect(enc(65535n)).toBe('11FFFF');
  expect(enc(65536n)).toBe('19010000');
  expect(enc(16777215n)).toBe('19FFFFFF');
  expect(enc(16777216n)).toBe('2101000000');
  expect(enc(4294967295n)).toBe('21FFFFFFFF');
  expect(enc(4294967296n)).toBe('290100000000');
  expect(enc((1n << 40n) - 1n)).toBe('29FFFFFFFFFF');
  expect(enc(1n << 40n)).toBe('31010000000000');
  expect(enc((1n << 48n) - 1n)).toBe('31FFFFFFFFFFFF');
  expect(enc(1n << 48n)).toBe('3901000000000000');
  expect(enc(-65536n)).toBe('18010000');
  expect(enc(1.5)).toBe('02000000000000F83F');
  expect(enc(-1.5)).toBe('07000000000000F83F');
  expect(enc(-0)).toBe('020000000000000080');
  expect(enc(NaN)).toBe('02000000000000F87F');
  expect(enc(-Infinity)).toBe('07000000000000F07F');
  expect(enc('')).toBe('0B00');
  expect(enc('s')).toBe('0B0173');
  expect(enc(new Uint8Array())).toBe('0C00');
  expect(enc(null)).toBe('05');
  expect(enc('x'.repeat(300)).slice(0, 6)).toBe('13012C');
  expect(enc('é'.repeat(200)).slice(0, 6)).toBe('130190'); // 400 bytes, 2-byte length
});

test('decodes any width and both REAL byte orders', () => {
  expect(dec('41000000000000007F')).toBe(127n);
  expect(dec('1100C8')).toBe(200n);
  expect(dec('19008000')).toBe(32768n);
  expect(dec('023FF8000000000000', true)).toBe(1.5);
  expect(dec('073FF8000000000000', true)).toBe(-1.5);
  expect(dec('408000000000000000')).toBe(INT64_MIN);
  expect(dec('0800')).toBe(0n);
  expect(dec('1B000001' + '61')).toBe('a');
});

test('rejects bad widths, stray bits, overflow and invalid UTF-8', () => {
  const bad = CoreErrorCode.PAYLOAD_BAD_VALUE;
  expect(code(() => dec('01'))).toBe(bad); // integer width 0
  expect(code(() => dec('4900'))).toBe(bad); // width 9
  expect(code(() => dec('418000000000000000'))).toBe(bad); // > INT64_MAX
  expect(code(() => dec('408000000000000001'))).toBe(bad); // < INT64_MIN
  expect(code(() => dec('0D'))).toBe(bad); // NULL with width bits
  expect(code(() => dec('0E'))).toBe(bad); // INT64_MIN with width bits
  expect(code(() => dec('0A0000000000000000'))).toBe(bad); // REAL with width bits
  expect(code(() => dec('0300'))).toBe(bad); // TEXT width 0
  expect(code(() => dec('0B01FF'))).toBe(bad); // invalid UTF-8
  expect(code(() => dec('0B02C3'))).toBe(CoreErrorCode.PAYLOAD_TRUNCATED);
  expect(code(() => dec('1109'))).toBe(CoreErrorCode.PAYLOAD_TRUNCATED);
  expect(code(() => dec('02000000'))).toBe(CoreErrorCode.PAYLOAD_TRUNCATED);
  expect(code(() => dec('44FFFFFFFFFFFFFFFF'))).toBe(bad); // absurd blob length
  expect(code(() => enc(INT64_MAX + 1n))).toBe(bad);
  expect(code(() => enc(true as unknown as SqlValue))).toBe(bad);
});

test('round trip of every SqlValue kind; size matches', () => {
  fc.assert(
    fc.property(fc.array(valueArb, { maxLength: 8 }), (values) => {
      const w = new ByteWriter(1);
      for (const v of values) {
        const before = w.length;
        encodeValue(w, v);
        expect(w.length - before).toBe(valueEncodedSize(v));
      }
      const r = new ByteReader(w.toBytes());
      for (const v of values) expect(sameValue(decodeValue(r, false), v)).toBe(true);
      expect(r.remaining).toBe(0);
    }),
    { seed: 1, numRuns: numRuns(1000) },
  );
});
