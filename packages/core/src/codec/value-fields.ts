/**
 * Typed field readers for payload rows (§P4): like `decodeValue`, but they insist on one storage
 * class and avoid building generic values.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { ByteReader } from './bytes.ts';
import { badValue, decodeUtf8, readLength, readMagnitude, TYPE_BLOB, TYPE_INT64_MIN, TYPE_INTEGER, TYPE_NEG_INTEGER, TYPE_TEXT } from './value.ts';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Largest clock value (`db_version`, `seq`, `col_version`, causal length `cl`) a payload may carry
 * (docs/PROTOCOL.md "Limits"). 2^48-1 is far beyond any real counter (a device making a million
 * transactions a day needs 770,000 years) and leaves 2^53 - 2^48 increments of headroom below the
 * safe-integer range, so a clock pushed to the bound by a hostile upload can never reach 2^53.
 */
export const MAX_CLOCK = 2 ** 48 - 1;

/** Reads a value that must be TEXT of at most `maxLen` UTF-8 bytes (PAYLOAD_TOO_LARGE beyond). */
export function decodeTextField(r: ByteReader, field: string, maxLen = Infinity): string {
  const at = r.pos;
  const t = r.u8();
  if ((t & 7) !== TYPE_TEXT) throw badValue(`${field} must be TEXT`, at);
  return decodeUtf8(r.bytes(readLength(r, t >> 3, at, maxLen)), at);
}

/**
 * Like {@link decodeTextField}, but returns `previous.text` when the bytes equal `previous.bytes`
 * (table and column names repeat on every row: one string per run instead of one per row), and
 * updates `previous`.
 */
export function decodeRepeatedTextField(r: ByteReader, field: string, maxLen: number, previous: { bytes: Uint8Array; text: string }): string {
  const at = r.pos;
  const t = r.u8();
  if ((t & 7) !== TYPE_TEXT) throw badValue(`${field} must be TEXT`, at);
  const bytes = r.bytes(readLength(r, t >> 3, at, maxLen));
  const prev = previous.bytes;
  if (prev.length === bytes.length) {
    let i = 0;
    while (i < bytes.length && prev[i] === bytes[i]) i++;
    if (i === bytes.length) return previous.text;
  }
  const text = decodeUtf8(bytes, at);
  previous.bytes = bytes;
  previous.text = text;
  return text;
}

/** Reads a value that must be a BLOB of at most `maxLen` bytes; returns a subarray of the reader's buffer. */
export function decodeBlobField(r: ByteReader, field: string, maxLen = Infinity): Uint8Array {
  const at = r.pos;
  const t = r.u8();
  if ((t & 7) !== TYPE_BLOB) throw badValue(`${field} must be BLOB`, at);
  return r.bytes(readLength(r, t >> 3, at, maxLen));
}

function outOfRange(field: string, at: number, maxClock: number): CoreError {
  return new CoreError(CoreErrorCode.CLOCK_OUT_OF_RANGE, `${field} exceeds the clock bound ${maxClock}`, { details: { field, offset: at, limit: maxClock } });
}

/**
 * Reads a non-negative INTEGER clock field as a number. Values above `maxClock` (default
 * {@link MAX_CLOCK}, at most 2^53-1) throw CLOCK_OUT_OF_RANGE; a wrong type or a negative
 * value throws PAYLOAD_BAD_VALUE.
 */
export function decodeClockField(r: ByteReader, field: string, maxClock = MAX_CLOCK): number {
  const at = r.pos;
  const t = r.u8();
  const code = t & 7;
  const n = t >> 3;
  if (code === TYPE_INTEGER) {
    if (n < 1 || n > 8) throw badValue(`invalid integer width ${n}`, at);
    if (n <= 6) {
      const v = r.uintBE(n);
      if (v > maxClock) throw outOfRange(field, at, maxClock);
      return v;
    }
    const m = readMagnitude(r, n);
    if (m > BigInt(Math.min(maxClock, MAX_SAFE))) throw outOfRange(field, at, maxClock);
    return Number(m);
  }
  if (code === TYPE_NEG_INTEGER) {
    if (n < 1 || n > 8) throw badValue(`invalid integer width ${n}`, at);
    const m = readMagnitude(r, n);
    if (m === 0n) return 0;
    throw badValue(`${field} must not be negative`, at);
  }
  if (code === TYPE_INT64_MIN) throw badValue(`${field} must not be negative`, at);
  throw badValue(`${field} must be INTEGER`, at);
}
