/**
 * Primary-key blobs (docs/PROTOCOL.md §P4): `[count:u8]` then `count` values (§P4) in primary-key
 * declaration order. Encoding always uses the ≥0.9 rules, so the bytes match what current
 * clients produce (PK blobs are compared as raw bytes).
 */
import { CoreError, CoreErrorCode, isCoreError } from '../errors.ts';
import type { SqlValue } from '../types.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { decodeValue, encodeValue } from './value.ts';

/** Most values a PK blob can hold (count is one byte). */
export const PK_MAX_VALUES = 255;

function pkInvalid(message: string, cause?: unknown): CoreError {
  return new CoreError(CoreErrorCode.PK_INVALID, message, cause === undefined ? undefined : { cause });
}

const scratch = new ByteWriter(64);

/** Encodes primary-key values (1..255, none NULL). Throws CoreError PK_INVALID. */
export function encodePk(values: readonly SqlValue[]): Uint8Array {
  const count = values.length;
  if (count < 1 || count > PK_MAX_VALUES) throw pkInvalid(`a primary key has 1..255 values, got ${count}`);
  scratch.reset();
  scratch.u8(count);
  for (let i = 0; i < count; i++) {
    const v = values[i] as SqlValue;
    if (v === null || v === undefined) throw pkInvalid(`primary-key value ${i} is NULL`);
    try {
      encodeValue(scratch, v);
    } catch (e) {
      throw pkInvalid(`primary-key value ${i} cannot be encoded`, e);
    }
  }
  return scratch.toBytes();
}

/**
 * Decodes a PK blob. `realBigEndian` = true for blobs produced by 0.8.x clients.
 * TEXT values are decoded, BLOB values are subarrays of `blob` (no copy).
 * Throws CoreError PK_INVALID on any problem (bad count, bad value, NULL, trailing bytes).
 *
 * The commonest key, one TEXT value of at most 255 bytes all ASCII (`[01][0B][length][bytes]`,
 * docs/PROTOCOL.md §P4), takes a fast path to the same string; every other blob
 * {@link decodePkGeneral}.
 */
export function decodePk(blob: Uint8Array, realBigEndian = false): SqlValue[] {
  const n = blob.length;
  if (n < 4 || blob[0] !== 1 || blob[1] !== 0x0b || blob[2] !== n - 3) return decodePkGeneral(blob, realBigEndian);
  for (let i = 3; i < n; i++) if ((blob[i] as number) >= 0x80) return decodePkGeneral(blob, realBigEndian);
  return [String.fromCharCode.apply(null, blob.subarray(3) as unknown as number[])];
}

/** {@link decodePk} without its fast path: the value decoder for every key shape (exported for the fast path's equivalence test). */
export function decodePkGeneral(blob: Uint8Array, realBigEndian = false): SqlValue[] {
  if (blob.length < 2) throw pkInvalid('primary-key blob too short');
  const r = new ByteReader(blob);
  const count = r.u8();
  if (count < 1) throw pkInvalid('primary-key blob has zero values');
  const out: SqlValue[] = new Array<SqlValue>(count);
  try {
    for (let i = 0; i < count; i++) {
      const v = decodeValue(r, realBigEndian);
      if (v === null) throw pkInvalid(`primary-key value ${i} is NULL`);
      out[i] = v;
    }
  } catch (e) {
    if (isCoreError(e, CoreErrorCode.PK_INVALID)) throw e;
    throw pkInvalid(`malformed primary-key blob: ${(e as Error).message}`, e);
  }
  if (r.remaining !== 0) throw pkInvalid(`${r.remaining} trailing bytes after primary key`);
  return out;
}
