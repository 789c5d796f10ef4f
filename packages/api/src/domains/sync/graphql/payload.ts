/** Base64 payloads and cursors of the GraphQL sync fields. */
import { ApiError } from '../../../errors.ts';
import type { Cursor } from '../download-pages.ts';
import type { VersionWindow } from '../peer-state.ts';
import { SyncError } from '../sync-errors.ts';

/** Largest decoded payload accepted by `pushChanges` (as the HTTP artifact default). */
export const MAX_PUSH_BYTES = 32 * 1024 * 1024;

/** Standard base64 → bytes; SyncError invalid_payload / payload_too_large. */
export function decodeBase64Payload(text: string, maxBytes = MAX_PUSH_BYTES): Uint8Array {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new SyncError('invalid_payload', 'payload must be standard base64');
  if ((text.length / 4) * 3 > maxBytes + 2) throw new SyncError('payload_too_large', `payload larger than ${maxBytes} bytes`);
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (bytes.length === 0) throw new SyncError('invalid_payload', 'payload is empty');
  return bytes;
}

/** Base64 of a page, computed once per page object: a live page shared by many subscribers is encoded once. */
const base64Cache = new WeakMap<Uint8Array, string>();

export function encodeBase64(bytes: Uint8Array | null): string | null {
  if (bytes === null) return null;
  let text = base64Cache.get(bytes);
  if (text === undefined) {
    text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    base64Cache.set(bytes, text);
  }
  return text;
}

const uint = (v: number): boolean => Number.isSafeInteger(v) && v >= 0;

/** A cursor argument (absent = from the beginning). */
export function cursorArg(c: { dbVersion: number; seq: number } | null | undefined): Cursor {
  if (c === null || c === undefined) return { dbVersion: 0, seq: 0 };
  if (!uint(c.dbVersion) || !uint(c.seq)) throw new ApiError('VALIDATION_FAILED', 'cursor dbVersion and seq must be non-negative integers', { details: { field: 'cursor' } });
  return { dbVersion: c.dbVersion, seq: c.seq };
}

/** The device's `[dbVersionMin, dbVersionMax]` window: both or neither. */
export function windowArg(min: number | null | undefined, max: number | null | undefined): VersionWindow | undefined {
  const hasMin = min !== null && min !== undefined;
  const hasMax = max !== null && max !== undefined;
  if (!hasMin && !hasMax) return undefined;
  if (!hasMin || !hasMax || !uint(min) || !uint(max) || min > max) {
    throw new ApiError('VALIDATION_FAILED', 'dbVersionMin and dbVersionMax must be given together, non-negative, min ≤ max', { details: { field: 'dbVersionMin' } });
  }
  return { dbVersionMin: min, dbVersionMax: max };
}

/** Page size of one pull / subscription batch: `maxBytes` capped at the service page size. */
export function pageBytesArg(maxBytes: number | null | undefined, servicePageBytes: number): number {
  if (maxBytes === null || maxBytes === undefined) return servicePageBytes;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new ApiError('VALIDATION_FAILED', 'maxBytes must be a positive integer', { details: { field: 'maxBytes' } });
  return Math.min(maxBytes, servicePageBytes);
}
