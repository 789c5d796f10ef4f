/**
 * Payload codec (docs/PROTOCOL.md §P4): decoding here, encoding in `payload-encoder.ts`,
 * the 32-byte header in `payload-header.ts`; everything is re-exported from this module.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change } from '../types.ts';
import { ByteReader } from './bytes.ts';
import { checksum48Fast } from './checksum48.ts';
import { LZ4_MAX_INPUT_SIZE, lz4BlockDecompress } from './lz4-block.ts';
import { FragmentAssembler } from './payload-fragments.ts';
import { decodePayloadHeader, PAYLOAD_HEADER_SIZE } from './payload-header.ts';
import type { PayloadHeader } from './payload-header.ts';
import { decodeBlobField, decodeClockField, decodeRepeatedTextField, MAX_CLOCK } from './value-fields.ts';
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
export { MAX_CLOCK } from './value-fields.ts';
export { FRAGMENT_COL_PREFIX, FragmentAssembler, fragmentChange, isFragmentName, parseFragmentName } from './payload-fragments.ts';
export type { FragmentLimits, FragmentName } from './payload-fragments.ts';

/** Most fragmented values (payload v3) open at one time in one batch (docs/PROTOCOL.md "Fragmented values"). */
export const MAX_OPEN_FRAGMENT_STREAMS = 256;

/**
 * An assembler for the payloads of one batch, with budgets from `limits`: a stream may announce
 * at most `maxValueSize` bytes, the streams open at one time at most `maxExpandedSize` bytes
 * together, and at most {@link MAX_OPEN_FRAGMENT_STREAMS} streams are open at once.
 */
export function fragmentAssemblerFor(limits: PayloadDecodeLimits = {}): FragmentAssembler {
  return new FragmentAssembler({
    maxValueSize: limitOf(limits, 'maxValueSize'),
    maxOpenBytes: limitOf(limits, 'maxExpandedSize'),
    maxOpenStreams: MAX_OPEN_FRAGMENT_STREAMS,
  });
}

/**
 * Smallest possible encoded row: tbl `0B 00` (2) + pk `0C 00` (2) + col (2) + NULL value (1) +
 * 4 integers of 2 bytes + site id `0C 10` + 16 bytes (18) = 33 bytes.
 */
export const MIN_ROW_BYTES = 33;
/** LZ4 cannot expand by more than ~255:1; headroom for the final literal tokens. */
const LZ4_MAX_RATIO = 255;

/**
 * Budgets checked while decoding, each before the work it bounds (docs/PROTOCOL.md "Limits").
 * Every limit refusal is CoreError PAYLOAD_TOO_LARGE (except `maxClock`: CLOCK_OUT_OF_RANGE).
 */
export interface PayloadDecodeLimits {
  /** Largest payload as received (header + body, compressed or not). Default 48 MiB. */
  maxCompressedSize?: number;
  /** Largest body once expanded (the header's expanded size, or the raw body). Default 64 MiB. */
  maxExpandedSize?: number;
  /** Most rows (changes; 9 values each) in one payload. Default 1,000,000. */
  maxRows?: number;
  /** Largest TEXT/BLOB value (tbl, pk, col_name, value, site_id), in bytes. Default 32 MiB. */
  maxValueSize?: number;
  /** Largest clock value (db_version, seq, col_version, cl). Default {@link MAX_CLOCK}; at most 2^53-1. */
  maxClock?: number;
}

/**
 * Default budgets, sized for the chunks real clients send (5 MB by default, at most 32 MB:
 * `payload_max_chunk_size` is clamped to 256 KB…32 MB): the expanded budget holds the largest
 * chunk twice over, the row budget holds a 32 MB chunk of the smallest rows (32 MiB / 33 B ≈
 * 1.02 M), the compressed budget matches the G3 inline body limit (48 MiB), and a single value
 * may take half the expanded budget.
 */
export const DEFAULT_PAYLOAD_LIMITS: Readonly<Required<PayloadDecodeLimits>> = Object.freeze({
  maxCompressedSize: 48 * 1024 * 1024,
  maxExpandedSize: 64 * 1024 * 1024,
  maxRows: 1_000_000,
  maxValueSize: 32 * 1024 * 1024,
  maxClock: MAX_CLOCK,
});

export interface DecodedPayload {
  header: PayloadHeader;
  changes: Change[];
}

function badHeader(message: string, details: Record<string, unknown>): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_BAD_HEADER, message, { details });
}

function tooLarge(what: string, size: number, limit: number): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `${what} ${size} exceeds the limit ${limit}`, { details: { what, size, limit } });
}

/** A limit from `limits` (a non-negative number), else the default. */
function limitOf(limits: PayloadDecodeLimits, key: keyof PayloadDecodeLimits): number {
  const v = limits[key];
  return typeof v === 'number' && v >= 0 ? v : DEFAULT_PAYLOAD_LIMITS[key];
}

function same16(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Decodes and validates a payload. Checks run in this order: signature, version, ncols (§P4),
 * then the budgets that need only the header (compressed size, expanded size, row count; see
 * {@link PayloadDecodeLimits}), then the v2 checksum over the body as transmitted,
 * decompression (which stops at the first sequence that would overflow the announced size, and
 * allocates as it goes), and the rows (per-value size and clock bounds checked before each value
 * is copied or decoded). A refused payload is refused whole, before anything is returned.
 * REAL values are big-endian in v1 payloads and little-endian in v2 and v3.
 *
 * Fragment rows (v3, `payload-fragments.ts`) are reassembled: without `assembler` every stream
 * must be complete within this payload (else PAYLOAD_BAD_FRAGMENT); with one (the chunks of one
 * batch share it), a part is kept there and the original change appears in the changes of the
 * payload that completes its stream; the caller calls `assembler.finish()` after the last payload.
 *
 * Memory: `pk`, `siteId` and BLOB values are **subarrays** (no copy) of the decompressed body,
 * or of `bytes` itself when the body was not compressed. They stay valid as long as the caller
 * does not mutate `bytes`; they keep the whole body alive, so copy them (`slice()`) when
 * retaining a few changes from a big payload. Consecutive rows with equal site ids share one
 * `siteId` object.
 *
 * Every failure is a CoreError (PAYLOAD_* codes, CLOCK_OUT_OF_RANGE).
 */
export function decodePayload(bytes: Uint8Array, limits: PayloadDecodeLimits = {}, assembler?: FragmentAssembler): DecodedPayload {
  const header = decodePayloadHeader(bytes);
  const maxCompressed = limitOf(limits, 'maxCompressedSize');
  if (bytes.length > maxCompressed) throw tooLarge('payload size', bytes.length, maxCompressed);
  const bodyLen = bytes.length - PAYLOAD_HEADER_SIZE;
  const maxExpanded = Math.min(limitOf(limits, 'maxExpandedSize'), LZ4_MAX_INPUT_SIZE);
  const maxRows = limitOf(limits, 'maxRows');
  const maxValue = limitOf(limits, 'maxValueSize');
  const maxClock = Math.min(limitOf(limits, 'maxClock'), Number.MAX_SAFE_INTEGER);
  const { expandedSize, nrows } = header;
  let rawLen = bodyLen;
  if (expandedSize !== 0) {
    if (expandedSize > LZ4_MAX_INPUT_SIZE || expandedSize > bodyLen * LZ4_MAX_RATIO + 16) {
      throw badHeader(`expanded size ${expandedSize} impossible for a ${bodyLen}-byte LZ4 body`, { expandedSize, bodyLen });
    }
    rawLen = expandedSize;
  }
  if (rawLen > maxExpanded) throw tooLarge('expanded body size', rawLen, maxExpanded);
  if (nrows > maxRows) throw tooLarge('row count', nrows, maxRows);
  if (nrows * MIN_ROW_BYTES > rawLen) {
    throw badHeader(`${nrows} rows cannot fit in ${rawLen} body bytes`, { nrows, rawLen });
  }
  if (header.version === 2) {
    const sum = checksum48Fast(bytes, PAYLOAD_HEADER_SIZE, bytes.length);
    if (BigInt(sum) !== header.checksum) {
      throw new CoreError(CoreErrorCode.PAYLOAD_BAD_CHECKSUM, 'invalid checksum', {
        details: { expected: header.checksum.toString(16), actual: sum.toString(16) },
      });
    }
  }
  const raw = expandedSize !== 0 ? lz4BlockDecompress(bytes.subarray(PAYLOAD_HEADER_SIZE), expandedSize) : bytes.subarray(PAYLOAD_HEADER_SIZE);
  const realBigEndian = header.version === 1;
  const r = new ByteReader(raw);
  let changes = new Array<Change>(nrows);
  const frag = header.version === 3 ? (assembler ?? fragmentAssemblerFor(limits)) : undefined;
  let fragments = 0;
  let lastSite: Uint8Array | null = null;
  // Names repeat on every row: decoded once per run of equal bytes (the initial '' is right for an empty name).
  const lastTbl = { bytes: new Uint8Array(0), text: '' };
  const lastCol = { bytes: new Uint8Array(0), text: '' };
  for (let i = 0; i < nrows; i++) {
    const tbl = decodeRepeatedTextField(r, 'tbl', maxValue, lastTbl);
    const pk = decodeBlobField(r, 'pk', maxValue);
    const col = decodeRepeatedTextField(r, 'col_name', maxValue, lastCol);
    const val = decodeValue(r, realBigEndian, maxValue);
    const colVersion = decodeClockField(r, 'col_version', maxClock);
    const dbVersion = decodeClockField(r, 'db_version', maxClock);
    const siteAt = r.pos;
    let siteId = decodeBlobField(r, 'site_id', maxValue);
    if (siteId.length !== 16) {
      throw new CoreError(CoreErrorCode.PAYLOAD_BAD_VALUE, `site_id must be 16 bytes, got ${siteId.length}`, {
        details: { offset: siteAt, row: i },
      });
    }
    if (lastSite !== null && same16(lastSite, siteId)) siteId = lastSite;
    else lastSite = siteId;
    const cl = decodeClockField(r, 'cl', maxClock);
    const seq = decodeClockField(r, 'seq', maxClock);
    changes[i] = { tbl, pk, col, val, colVersion, dbVersion, siteId, cl, seq };
  }
  if (r.remaining !== 0) {
    throw new CoreError(CoreErrorCode.PAYLOAD_TRAILING_BYTES, `${r.remaining} bytes after the last row`, {
      details: { trailing: r.remaining },
    });
  }
  if (frag !== undefined) {
    const out: Change[] = [];
    for (const c of changes) {
      const whole = frag.add(c);
      if (whole !== c) fragments++;
      if (whole !== null) out.push(whole);
    }
    if (fragments > 0) changes = out;
    if (assembler === undefined) frag.finish();
  }
  return { header, changes };
}
