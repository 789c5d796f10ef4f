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
 * The names a payload repeats on every row (tables, columns), each decoded once: rows of a table
 * alternate between its columns, so one "previous name" would decode a string per row. Holds up
 * to {@link NameCache.SIZE} names (the oldest is replaced); starts with the empty name.
 */
export class NameCache {
  static readonly SIZE = 16;
  readonly bytes: Uint8Array[] = [new Uint8Array(0)];
  readonly text: string[] = [''];
  /** Index of the last name found or added: looked at first. */
  last = 0;
  #next = 1;

  /** The name whose bytes are `b[at, at + len)`, or undefined when it is not held. */
  find(b: Uint8Array, at: number, len: number): string | undefined {
    const n = this.bytes.length;
    for (let k = 0, i = this.last; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
      const prev = this.bytes[i] as Uint8Array;
      if (prev.length !== len) continue;
      let j = 0;
      while (j < len && b[at + j] === prev[j]) j++;
      if (j === len) {
        this.last = i;
        return this.text[i];
      }
    }
    return undefined;
  }

  add(bytes: Uint8Array, text: string): void {
    const i = this.bytes.length < NameCache.SIZE ? this.bytes.length : this.#next;
    this.bytes[i] = bytes;
    this.text[i] = text;
    this.#next = i + 1 === NameCache.SIZE ? 0 : i + 1;
    this.last = i;
  }
}

/** Like {@link decodeTextField}, but a name `names` holds is returned without decoding, and a new one is added to it. */
export function decodeRepeatedTextField(r: ByteReader, field: string, maxLen: number, names: NameCache): string {
  const at = r.pos;
  const t = r.u8();
  if ((t & 7) !== TYPE_TEXT) throw badValue(`${field} must be TEXT`, at);
  const len = readLength(r, t >> 3, at, maxLen);
  const bytes = r.bytes(len);
  const known = names.find(bytes, 0, len);
  if (known !== undefined) return known;
  const text = decodeUtf8(bytes, at);
  names.add(bytes, text);
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
