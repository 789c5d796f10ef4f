/** Site ids: 16-byte UUIDv7 values identifying a replica (docs/PROTOCOL.md §P1, §P5). */
import { CoreError, CoreErrorCode } from '../errors.ts';

export const SITE_ID_BYTES = 16;

/** A UUIDv7: 48-bit millisecond timestamp, version 7, variant 10, random rest. */
export function uuidv7(nowMs: number, random: (n: number) => Uint8Array): Uint8Array {
  const b = random(16);
  if (b.length !== 16) throw new CoreError(CoreErrorCode.INVALID_ARGUMENT, 'random source returned the wrong length');
  let t = Math.floor(nowMs);
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = 0x70 | ((b[6] ?? 0) & 0x0f);
  b[8] = 0x80 | ((b[8] ?? 0) & 0x3f);
  return b;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i] ?? 0];
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new CoreError(CoreErrorCode.INVALID_ARGUMENT, 'invalid hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Parses a site id given as 32 hex digits (dashes allowed, as in a UUID). */
export function parseSiteId(text: string): Uint8Array {
  const hex = text.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new CoreError(CoreErrorCode.SITE_ID_INVALID, `site id must be 32 hex digits, got "${text.slice(0, 40)}"`);
  return fromHex(hex.toLowerCase());
}

/** UUID text form (8-4-4-4-12) of 16 bytes, as `cloudsync_uuid()` returns. */
export function uuidText(b: Uint8Array): string {
  const h = toHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
