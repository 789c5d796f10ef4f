/**
 * Typed field readers for payload rows (B.2): like `decodeValue`, but they insist on one storage
 * class and avoid building generic values.
 */
import type { ByteReader } from './bytes.ts';
import { badValue, decodeUtf8, readLength, readMagnitude, TYPE_BLOB, TYPE_INT64_MIN, TYPE_INTEGER, TYPE_NEG_INTEGER, TYPE_TEXT } from './value.ts';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Reads a value that must be TEXT. */
export function decodeTextField(r: ByteReader, field: string): string {
  const at = r.pos;
  const t = r.u8();
  if ((t & 7) !== TYPE_TEXT) throw badValue(`${field} must be TEXT`, at);
  return decodeUtf8(r.bytes(readLength(r, t >> 3, at)), at);
}

/** Reads a value that must be a BLOB; returns a subarray of the reader's buffer. */
export function decodeBlobField(r: ByteReader, field: string): Uint8Array {
  const at = r.pos;
  const t = r.u8();
  if ((t & 7) !== TYPE_BLOB) throw badValue(`${field} must be BLOB`, at);
  return r.bytes(readLength(r, t >> 3, at));
}

/** Reads a non-negative INTEGER ≤ Number.MAX_SAFE_INTEGER as a number (clock fields). */
export function decodeClockField(r: ByteReader, field: string): number {
  const at = r.pos;
  const t = r.u8();
  const code = t & 7;
  const n = t >> 3;
  if (code === TYPE_INTEGER) {
    if (n < 1 || n > 8) throw badValue(`invalid integer width ${n}`, at);
    if (n <= 6) return r.uintBE(n);
    const m = readMagnitude(r, n);
    if (m > BigInt(MAX_SAFE)) throw badValue(`${field} exceeds 2^53-1`, at);
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
