/**
 * Payload codec (protocol reference B): decoding here, encoding in `payload-encoder.ts`,
 * the 32-byte header in `payload-header.ts`; everything is re-exported from this module.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change } from '../types.ts';
import { ByteReader } from './bytes.ts';
import { checksum48Number } from './fnv.ts';
import { LZ4_MAX_INPUT_SIZE, lz4BlockDecompress } from './lz4-block.ts';
import { decodePayloadHeader, PAYLOAD_HEADER_SIZE } from './payload-header.ts';
import type { PayloadHeader } from './payload-header.ts';
import { decodeBlobField, decodeClockField, decodeTextField } from './value-fields.ts';
import { decodeValue } from './value.ts';

export {
  DEFAULT_LIB_VERSION,
  decodePayloadHeader,
  hasPayloadSignature,
  PAYLOAD_HEADER_SIZE,
  PAYLOAD_NCOLS,
  PAYLOAD_SIGNATURE,
  PAYLOAD_SIGNATURE_TEXT,
} from './payload-header.ts';
export type { PayloadHeader } from './payload-header.ts';
export { encodePayload, PayloadEncoder } from './payload-encoder.ts';
export type { PayloadEncodeOptions } from './payload-encoder.ts';

/**
 * Smallest possible encoded row: tbl `0B 00` (2) + pk `0C 00` (2) + col (2) + NULL value (1) +
 * 4 integers of 2 bytes + site id `0C 10` + 16 bytes (18) = 33 bytes.
 */
export const MIN_ROW_BYTES = 33;
/** LZ4 cannot expand by more than ~255:1; headroom for the final literal tokens. */
const LZ4_MAX_RATIO = 255;

export interface PayloadDecodeLimits {
  /** Refuse payloads announcing more rows (PAYLOAD_TOO_LARGE). */
  maxRows?: number;
  /** Refuse bodies larger than this once expanded (PAYLOAD_TOO_LARGE). Default 2^31-1. */
  maxExpandedSize?: number;
}

export interface DecodedPayload {
  header: PayloadHeader;
  changes: Change[];
}

function badHeader(message: string, details: Record<string, unknown>): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_BAD_HEADER, message, { details });
}

function same16(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Decodes and validates a payload. Checks run in the order of B.1: signature, version, ncols,
 * v2 checksum over the body as transmitted, expanded size, row count, decompression, rows.
 * REAL values are big-endian in v1 payloads and little-endian in v2.
 *
 * Memory: `pk`, `siteId` and BLOB values are **subarrays** (no copy) of the decompressed body,
 * or of `bytes` itself when the body was not compressed. They stay valid as long as the caller
 * does not mutate `bytes`; they keep the whole body alive, so copy them (`slice()`) when
 * retaining a few changes from a big payload. Consecutive rows with equal site ids share one
 * `siteId` object.
 *
 * Every failure is a CoreError (PAYLOAD_* codes).
 */
export function decodePayload(bytes: Uint8Array, limits: PayloadDecodeLimits = {}): DecodedPayload {
  const header = decodePayloadHeader(bytes);
  const bodyLen = bytes.length - PAYLOAD_HEADER_SIZE;
  if (header.version === 2) {
    const sum = checksum48Number(bytes, PAYLOAD_HEADER_SIZE, bytes.length);
    if (BigInt(sum) !== header.checksum) {
      throw new CoreError(CoreErrorCode.PAYLOAD_BAD_CHECKSUM, 'invalid checksum', {
        details: { expected: header.checksum.toString(16), actual: sum.toString(16) },
      });
    }
  }
  const maxExpanded = Math.min(limits.maxExpandedSize ?? LZ4_MAX_INPUT_SIZE, LZ4_MAX_INPUT_SIZE);
  const { expandedSize, nrows } = header;
  let rawLen = bodyLen;
  if (expandedSize !== 0) {
    if (expandedSize > LZ4_MAX_INPUT_SIZE || expandedSize > bodyLen * LZ4_MAX_RATIO + 16) {
      throw badHeader(`expanded size ${expandedSize} impossible for a ${bodyLen}-byte LZ4 body`, { expandedSize, bodyLen });
    }
    rawLen = expandedSize;
  }
  if (rawLen > maxExpanded) {
    throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `payload body of ${rawLen} bytes exceeds the limit ${maxExpanded}`, {
      details: { size: rawLen, limit: maxExpanded },
    });
  }
  if (limits.maxRows !== undefined && nrows > limits.maxRows) {
    throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `payload has ${nrows} rows, limit ${limits.maxRows}`, {
      details: { nrows, limit: limits.maxRows },
    });
  }
  if (nrows * MIN_ROW_BYTES > rawLen) {
    throw badHeader(`${nrows} rows cannot fit in ${rawLen} body bytes`, { nrows, rawLen });
  }
  const raw = expandedSize !== 0 ? lz4BlockDecompress(bytes.subarray(PAYLOAD_HEADER_SIZE), expandedSize) : bytes.subarray(PAYLOAD_HEADER_SIZE);
  const realBigEndian = header.version === 1;
  const r = new ByteReader(raw);
  const changes = new Array<Change>(nrows);
  let lastSite: Uint8Array | null = null;
  for (let i = 0; i < nrows; i++) {
    const tbl = decodeTextField(r, 'tbl');
    const pk = decodeBlobField(r, 'pk');
    const col = decodeTextField(r, 'col_name');
    const val = decodeValue(r, realBigEndian);
    const colVersion = decodeClockField(r, 'col_version');
    const dbVersion = decodeClockField(r, 'db_version');
    const siteAt = r.pos;
    let siteId = decodeBlobField(r, 'site_id');
    if (siteId.length !== 16) {
      throw new CoreError(CoreErrorCode.PAYLOAD_BAD_VALUE, `site_id must be 16 bytes, got ${siteId.length}`, {
        details: { offset: siteAt, row: i },
      });
    }
    if (lastSite !== null && same16(lastSite, siteId)) siteId = lastSite;
    else lastSite = siteId;
    const cl = decodeClockField(r, 'cl');
    const seq = decodeClockField(r, 'seq');
    changes[i] = { tbl, pk, col, val, colVersion, dbVersion, siteId, cl, seq };
  }
  if (r.remaining !== 0) {
    throw new CoreError(CoreErrorCode.PAYLOAD_TRAILING_BYTES, `${r.remaining} bytes after the last row`, {
      details: { trailing: r.remaining },
    });
  }
  return { header, changes };
}
