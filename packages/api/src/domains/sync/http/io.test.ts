import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { jsonWithPayloads, payloadPlace } from './io.ts';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

test('jsonWithPayloads is the JSON of the value with each payload place holding its base64 text', () => {
  const payloads = [randomBytes(100_001), new Uint8Array(0), randomBytes(7), randomBytes(3)];
  const value = {
    data: {
      note: 'déjà vu ✓ "quoted" \\ \u0001',
      chunks: [{ cursor: 1, payload: payloadPlace(0) }, { cursor: 2, url: 'https://x/y?z=1' }, { cursor: 3, payload: payloadPlace(1) }, { cursor: 4, payload: payloadPlace(2), watermark: 9 }],
      last: payloadPlace(3),
      final: true,
    },
  };
  const body = jsonWithPayloads(value, payloads);
  const expected = JSON.parse(JSON.stringify(value)) as typeof value;
  expected.data.chunks[0] = { cursor: 1, payload: b64(payloads[0] as Uint8Array) };
  expected.data.chunks[2] = { cursor: 3, payload: '' };
  expected.data.chunks[3] = { cursor: 4, payload: b64(payloads[2] as Uint8Array), watermark: 9 };
  expected.data.last = b64(payloads[3] as Uint8Array);
  expect(JSON.parse(body.toString('utf8'))).toEqual(expected);
  // Byte for byte what JSON.stringify gives with the base64 texts in place.
  expect(body.equals(Buffer.from(JSON.stringify(expected), 'utf8'))).toBe(true);
  // A subarray's own bytes, not its whole buffer.
  const big = randomBytes(64);
  expect(JSON.parse(jsonWithPayloads({ p: payloadPlace(0) }, [big.subarray(10, 20)]).toString('utf8'))).toEqual({ p: b64(big.subarray(10, 20)) });
});

test('a payload without its place, or a look-alike place of another process, is not filled in', () => {
  expect(() => jsonWithPayloads({ p: 'x' }, [randomBytes(4)])).toThrow(/no place/);
  const alien = '\u0000offsync-payload-0000000000000000-0\u0000';
  expect(JSON.parse(jsonWithPayloads({ a: alien }, []).toString('utf8'))).toEqual({ a: alien });
});
