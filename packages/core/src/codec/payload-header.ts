/**
 * Payload container header (docs/PROTOCOL.md §P4): 32 bytes, all integers big-endian.
 *
 * | off | size | field |
 * |-----|------|-------|
 * | 0   | 4    | `CLSY` |
 * | 4   | 1    | version (1 = 0.8.x, 2 = 0.9.x+ with checksum, 3 = 1.1.x: as 2, with fragment rows) |
 * | 5   | 3    | library version major.minor.patch |
 * | 8   | 4    | expanded size (0 = body not compressed) |
 * | 12  | 2    | ncols (always 9) |
 * | 14  | 4    | nrows |
 * | 18  | 8    | schema hash |
 * | 26  | 6    | checksum48 of the body as transmitted (v2) |
 */
import { CoreError, CoreErrorCode } from '../errors.ts';

/** `CLSY`. */
export const PAYLOAD_SIGNATURE: Uint8Array = Uint8Array.of(0x43, 0x4c, 0x53, 0x59);
export const PAYLOAD_SIGNATURE_TEXT = 'CLSY';
export const PAYLOAD_HEADER_SIZE = 32;
/** Values per row (§P4); the only layout we understand. */
export const PAYLOAD_NCOLS = 9;
/** Library version we stamp by default (0.9.99, the npm `latest` client generation). */
export const DEFAULT_LIB_VERSION: readonly [number, number, number] = [0, 9, 99];

export interface PayloadHeader {
  /** 3: a v2 layout carrying fragment rows of a value larger than a chunk (payload-fragments.ts). */
  version: 1 | 2 | 3;
  libVersion: readonly [number, number, number];
  /** 0 = body not compressed; otherwise the exact uncompressed body length. */
  expandedSize: number;
  ncols: number;
  nrows: number;
  schemaHash: bigint;
  /** v2: low 48 bits of FNV-1a-64 of the transmitted body; v1: whatever was sent (ignored). */
  checksum: bigint;
}

/** True when `bytes` starts with the payload signature. */
export function hasPayloadSignature(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x43 && bytes[1] === 0x4c && bytes[2] === 0x53 && bytes[3] === 0x59;
}

/**
 * Parses and checks the header: signature, version ∈ {1, 2, 3}, ncols = 9 (in that order).
 * Throws CoreError PAYLOAD_BAD_SIGNATURE / PAYLOAD_TRUNCATED / PAYLOAD_UNSUPPORTED_VERSION /
 * PAYLOAD_BAD_HEADER.
 */
export function decodePayloadHeader(bytes: Uint8Array): PayloadHeader {
  const sigLen = Math.min(4, bytes.length);
  for (let i = 0; i < sigLen; i++) {
    if (bytes[i] !== PAYLOAD_SIGNATURE[i]) {
      throw new CoreError(CoreErrorCode.PAYLOAD_BAD_SIGNATURE, 'payload does not start with CLSY');
    }
  }
  if (bytes.length < PAYLOAD_HEADER_SIZE) {
    throw new CoreError(CoreErrorCode.PAYLOAD_TRUNCATED, `payload shorter than its ${PAYLOAD_HEADER_SIZE}-byte header`, {
      details: { length: bytes.length },
    });
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, PAYLOAD_HEADER_SIZE);
  const version = v.getUint8(4);
  if (version !== 1 && version !== 2 && version !== 3) {
    throw new CoreError(CoreErrorCode.PAYLOAD_UNSUPPORTED_VERSION, `unsupported payload version ${version}`, {
      details: { version },
    });
  }
  const ncols = v.getUint16(12);
  if (ncols !== PAYLOAD_NCOLS) {
    throw new CoreError(CoreErrorCode.PAYLOAD_BAD_HEADER, `payload has ${ncols} columns per row, expected 9`, {
      details: { ncols },
    });
  }
  return {
    version,
    libVersion: [v.getUint8(5), v.getUint8(6), v.getUint8(7)],
    expandedSize: v.getUint32(8),
    ncols,
    nrows: v.getUint32(14),
    schemaHash: v.getBigUint64(18),
    checksum: (BigInt(v.getUint16(26)) << 32n) | BigInt(v.getUint32(28)),
  };
}

/** Writes a v2 header (v3 with `version: 3`) into `out[0..32)`. `checksum` must be < 2^48. */
export function writePayloadHeader(
  out: Uint8Array,
  h: { libVersion: readonly [number, number, number]; expandedSize: number; nrows: number; schemaHash: bigint; checksum: number; version?: 2 | 3 },
): void {
  const v = new DataView(out.buffer, out.byteOffset, PAYLOAD_HEADER_SIZE);
  out.set(PAYLOAD_SIGNATURE, 0);
  v.setUint8(4, h.version ?? 2);
  v.setUint8(5, h.libVersion[0]);
  v.setUint8(6, h.libVersion[1]);
  v.setUint8(7, h.libVersion[2]);
  v.setUint32(8, h.expandedSize);
  v.setUint16(12, PAYLOAD_NCOLS);
  v.setUint32(14, h.nrows);
  v.setBigUint64(18, BigInt.asUintN(64, h.schemaHash));
  v.setUint16(26, Math.floor(h.checksum / 4294967296));
  v.setUint32(28, h.checksum >>> 0);
}
