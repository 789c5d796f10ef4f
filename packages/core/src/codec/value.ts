/**
 * Value encoding shared by payload rows and primary-key blobs (docs/PROTOCOL.md §P4).
 *
 * Type byte: bits 0-2 = type code, bits 3-7 = `n`, the width in bytes of the big-endian integer
 * or length that follows. We always encode with the ≥0.9 rules (minimum unsigned width, REAL
 * little-endian) and decode any width 1..8.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { SqlValue } from '../types.ts';
import type { ByteReader, ByteWriter } from './bytes.ts';

export const TYPE_NEG_INTEGER = 0;
export const TYPE_INTEGER = 1;
export const TYPE_REAL = 2;
export const TYPE_TEXT = 3;
export const TYPE_BLOB = 4;
export const TYPE_NULL = 5;
export const TYPE_INT64_MIN = 6;
export const TYPE_NEG_REAL = 7;

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const TWO_63 = 1n << 63n;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function badValue(message: string, offset?: number): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_BAD_VALUE, message, offset === undefined ? undefined : { details: { offset } });
}

/** Minimum number of bytes (≥ 1) holding the unsigned integer `n` (n < 2^53). */
export function uintWidth(n: number): number {
  if (n < 0x100) return 1;
  if (n < 0x10000) return 2;
  if (n < 0x1000000) return 3;
  if (n < 0x100000000) return 4;
  if (n < 0x10000000000) return 5;
  if (n < 0x1000000000000) return 6;
  return 7;
}

/**
 * Type byte `code` plus `n` (a safe non-negative integer) as a minimal-width big-endian
 * magnitude, at `b[p..]` (at least 8 bytes of room); returns the new end. The encoder's
 * reserved-row path and {@link encodeUintWithCode} both write through it.
 */
export function putUint(b: Uint8Array, p: number, code: number, n: number): number {
  if (n < 0x100) {
    b[p] = (1 << 3) | code;
    b[p + 1] = n;
    return p + 2;
  }
  if (n < 0x10000) {
    b[p] = (2 << 3) | code;
    b[p + 1] = n >>> 8;
    b[p + 2] = n & 0xff;
    return p + 3;
  }
  if (n < 0x1000000) {
    b[p] = (3 << 3) | code;
    b[p + 1] = n >>> 16;
    b[p + 2] = (n >>> 8) & 0xff;
    b[p + 3] = n & 0xff;
    return p + 4;
  }
  if (n < 0x100000000) {
    b[p] = (4 << 3) | code;
    b[p + 1] = n >>> 24;
    b[p + 2] = (n >>> 16) & 0xff;
    b[p + 3] = (n >>> 8) & 0xff;
    b[p + 4] = n & 0xff;
    return p + 5;
  }
  const width = uintWidth(n);
  b[p] = (width << 3) | code;
  let x = n;
  for (let i = width; i >= 1; i--) {
    b[p + i] = x % 256;
    x = Math.floor(x / 256);
  }
  return p + 1 + width;
}

/** Writes a type byte plus `n` as a minimal-width unsigned magnitude (n a safe non-negative integer). */
export function encodeUintWithCode(w: ByteWriter, code: number, n: number): void {
  w.ensure(8);
  w.length = putUint(w.buf, w.length, code, n);
}

function encodeBigMagnitude(w: ByteWriter, code: number, mag: bigint): void {
  if (mag <= BigInt(MAX_SAFE)) {
    encodeUintWithCode(w, code, Number(mag));
    return;
  }
  const width = mag >= 1n << 56n ? 8 : 7;
  w.ensure(9);
  w.buf[w.length++] = (width << 3) | code;
  for (let i = width - 1; i >= 0; i--) w.buf[w.length++] = Number((mag >> BigInt(8 * i)) & 0xffn);
}

/** Encodes an INTEGER. Throws PAYLOAD_BAD_VALUE outside the int64 range. */
export function encodeInteger(w: ByteWriter, v: bigint): void {
  if (v >= 0n) {
    if (v > INT64_MAX) throw badValue(`integer ${v} exceeds int64`);
    encodeBigMagnitude(w, TYPE_INTEGER, v);
  } else if (v === INT64_MIN) {
    w.u8(TYPE_INT64_MIN);
  } else {
    if (v < INT64_MIN) throw badValue(`integer ${v} below int64`);
    encodeBigMagnitude(w, TYPE_NEG_INTEGER, -v);
  }
}

/** UTF-8 bytes of a string (ASCII fast path). */
export function utf8Encode(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/** Encodes a TEXT value. */
export function encodeText(w: ByteWriter, s: string): void {
  const len = s.length;
  if (len < 64) {
    // ASCII fast path: one length byte, one byte per char.
    w.ensure(2 + len);
    const b = w.buf;
    const start = w.length + 2;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      b[start + i] = c;
    }
    if (i === len) {
      b[w.length] = (1 << 3) | TYPE_TEXT;
      b[w.length + 1] = len;
      w.length = start + len;
      return;
    }
  }
  const maxBytes = len * 3;
  const wub = uintWidth(maxBytes);
  w.ensure(1 + wub + maxBytes);
  const at = w.length + 1 + wub;
  const { written } = textEncoder.encodeInto(s, w.buf.subarray(at, at + maxBytes));
  const wa = uintWidth(written);
  if (wa < wub) w.buf.copyWithin(w.length + 1 + wa, at, at + written);
  w.buf[w.length++] = (wa << 3) | TYPE_TEXT;
  w.uintBE(written, wa);
  w.length += written;
}

/** Encodes a BLOB value. */
export function encodeBlob(w: ByteWriter, b: Uint8Array): void {
  encodeUintWithCode(w, TYPE_BLOB, b.length);
  w.bytes(b);
}

/** Encodes a REAL value (little-endian, ≥0.9 rules; negative values as code 7 + abs). */
export function encodeReal(w: ByteWriter, v: number): void {
  w.ensure(9);
  if (v < 0) {
    w.buf[w.length++] = TYPE_NEG_REAL;
    w.f64le(-v);
  } else {
    // ≥ 0, -0 and NaN: code 2 with the raw bits.
    w.buf[w.length++] = TYPE_REAL;
    w.f64le(v);
  }
}

/** Encodes any {@link SqlValue}. Throws PAYLOAD_BAD_VALUE for non-SqlValue input. */
export function encodeValue(w: ByteWriter, v: SqlValue): void {
  switch (typeof v) {
    case 'string':
      encodeText(w, v);
      return;
    case 'bigint':
      encodeInteger(w, v);
      return;
    case 'number':
      encodeReal(w, v);
      return;
    case 'object':
      if (v === null) {
        w.u8(TYPE_NULL);
        return;
      }
      if (v instanceof Uint8Array) {
        encodeBlob(w, v);
        return;
      }
  }
  throw badValue(`not an SQL value: ${typeof v}`);
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Number of bytes {@link encodeValue} writes for `v`. */
export function valueEncodedSize(v: SqlValue): number {
  if (v === null) return 1;
  if (typeof v === 'number') return 9;
  if (typeof v === 'bigint') {
    if (v === INT64_MIN) return 1;
    const mag = v < 0n ? -v : v;
    if (mag <= BigInt(MAX_SAFE)) return 1 + uintWidth(Number(mag));
    return mag >= 1n << 56n ? 9 : 8;
  }
  const len = typeof v === 'string' ? utf8Length(v) : v.length;
  return 1 + uintWidth(len) + len;
}

/** Reads the `n`-byte (1..8) big-endian magnitude as a bigint. */
export function readMagnitude(r: ByteReader, n: number): bigint {
  if (n <= 6) return BigInt(r.uintBE(n));
  const hiBytes = n - 4;
  const hi = r.uintBE(hiBytes);
  const lo = r.uintBE(4);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Reads an `n`-byte (1..8) length and checks it fits in the remaining bytes and in `maxLen`
 * (PAYLOAD_TOO_LARGE: a TEXT/BLOB value larger than the configured per-value limit).
 */
export function readLength(r: ByteReader, n: number, at: number, maxLen = Infinity): number {
  if (n < 1 || n > 8) throw badValue(`invalid length width ${n}`, at);
  let len: number;
  if (n <= 6) len = r.uintBE(n);
  else {
    const m = readMagnitude(r, n);
    if (m > BigInt(MAX_SAFE)) throw badValue('length out of range', at);
    len = Number(m);
  }
  r.need(len);
  if (len > maxLen) {
    throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `value of ${len} bytes exceeds the per-value limit ${maxLen}`, { details: { offset: at, size: len, limit: maxLen } });
  }
  return len;
}

/** Decodes UTF-8 text strictly (invalid UTF-8 → PAYLOAD_BAD_VALUE). */
export function decodeUtf8(bytes: Uint8Array, at?: number): string {
  const len = bytes.length;
  if (len <= 48) {
    let ascii = true;
    for (let i = 0; i < len; i++) {
      if ((bytes[i] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw badValue('invalid UTF-8 in TEXT value', at);
  }
}

/**
 * Decodes one value. `realBigEndian`: true for payload v1 (0.8.x), false for v2. TEXT/BLOB
 * values longer than `maxLen` bytes throw PAYLOAD_TOO_LARGE before they are copied or decoded.
 */
export function decodeValue(r: ByteReader, realBigEndian: boolean, maxLen = Infinity): SqlValue {
  const at = r.pos;
  const t = r.u8();
  const code = t & 7;
  const n = t >> 3;
  switch (code) {
    case TYPE_INTEGER:
    case TYPE_NEG_INTEGER: {
      if (n < 1 || n > 8) throw badValue(`invalid integer width ${n}`, at);
      const mag = readMagnitude(r, n);
      if (code === TYPE_INTEGER) {
        if (mag > INT64_MAX) throw badValue('integer exceeds int64', at);
        return mag;
      }
      if (mag > TWO_63) throw badValue('negative integer below int64', at);
      return -mag;
    }
    case TYPE_INT64_MIN:
      if (n !== 0) throw badValue('stray width bits on INT64_MIN', at);
      return INT64_MIN;
    case TYPE_REAL:
    case TYPE_NEG_REAL: {
      if (n !== 0) throw badValue('stray width bits on REAL', at);
      const v = realBigEndian ? r.f64be() : r.f64le();
      return code === TYPE_REAL ? v : -v;
    }
    case TYPE_TEXT: {
      const len = readLength(r, n, at, maxLen);
      return decodeUtf8(r.bytes(len), at);
    }
    case TYPE_BLOB: {
      const len = readLength(r, n, at, maxLen);
      return r.bytes(len);
    }
    default: // TYPE_NULL (code 5)
      if (n !== 0) throw badValue('stray width bits on NULL', at);
      return null;
  }
}
