/**
 * Payload codec (docs/PROTOCOL.md §P4): decoding here, encoding in `payload-encoder.ts`,
 * the 32-byte header in `payload-header.ts`; everything is re-exported from this module.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change, SqlValue } from '../types.ts';
import { ByteReader, sameBytes } from './bytes.ts';
import { checksum48Number } from './fnv.ts';
import { LZ4_MAX_INPUT_SIZE, lz4BlockDecompress } from './lz4-block.ts';
import { FragmentAssembler } from './payload-fragments.ts';
import { decodePayloadHeader, PAYLOAD_HEADER_SIZE } from './payload-header.ts';
import type { PayloadHeader } from './payload-header.ts';
import { decodeBlobField, decodeClockField, decodeRepeatedTextField, MAX_CLOCK, NameCache } from './value-fields.ts';
import { decodeUtf8, decodeValue, TYPE_BLOB, TYPE_INTEGER, TYPE_NEG_INTEGER, TYPE_NEG_REAL, TYPE_NULL, TYPE_REAL, TYPE_TEXT } from './value.ts';

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

/** Type bytes of TEXT / BLOB with a one-byte length (§P4). */
const SHORT_TEXT = (1 << 3) | TYPE_TEXT;
const SHORT_BLOB = (1 << 3) | TYPE_BLOB;

/** Whether `b[at..at+len)` (within bounds) equals `prev`: a name, key or site id repeating the previous row's, read in place. */
function sameRun(b: Uint8Array, at: number, len: number, prev: Uint8Array): boolean {
  if (prev.length !== len || at + len > b.length) return false;
  for (let i = 0; i < len; i++) if (b[at + i] !== prev[i]) return false;
  return true;
}

/** The value of the last {@link shortClock} that succeeded. */
let clockValue = 0;

/**
 * A clock at `b[p..]` written as INTEGER of 1..6 bytes and at most `maxClock`: sets
 * {@link clockValue} and returns the end; -1 for anything else (the checked path decides).
 */
function shortClock(b: Uint8Array, p: number, end: number, maxClock: number): number {
  if (p >= end) return -1;
  const t = b[p] as number;
  const n = t >> 3;
  if ((t & 7) !== TYPE_INTEGER || n < 1 || n > 6 || p + 1 + n > end) return -1;
  let v = 0;
  for (let k = 1; k <= n; k++) v = v * 256 + (b[p + k] as number);
  if (v > maxClock) return -1;
  clockValue = v;
  return p + 1 + n;
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
 * `siteId` object, consecutive rows with equal keys one `pk` object.
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
    const sum = checksum48Number(bytes, PAYLOAD_HEADER_SIZE, bytes.length);
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
  let lastPk: Uint8Array | null = null;
  // Names repeat on every row: each decoded once (value-fields.ts NameCache).
  const tables = new NameCache();
  const columns = new NameCache();
  const b = raw;
  const view = r.view;
  const end = r.end;
  for (let i = 0; i < nrows; i++) {
    // Fast path for the common row: names equal to the previous row's, one-byte lengths, clocks
    // of at most 6 bytes, a NULL / REAL / short INTEGER / TEXT / BLOB value. Anything else — and
    // anything that would fail — leaves it before it throws, and the checked path below decodes
    // the row from its start (same values, same errors).
    fast: {
      let p = r.pos;
      if (p + 2 > end || b[p] !== SHORT_TEXT) break fast;
      let len = b[p + 1] as number;
      const tbl = tables.find(b, p + 2, len);
      if (tbl === undefined || p + 2 + len > end) break fast;
      p += 2 + len;
      if (p + 2 > end || b[p] !== SHORT_BLOB) break fast;
      len = b[p + 1] as number;
      if (len > maxValue || p + 2 + len > end) break fast;
      let pk: Uint8Array;
      if (lastPk !== null && sameRun(b, p + 2, len, lastPk)) pk = lastPk;
      else pk = lastPk = b.subarray(p + 2, p + 2 + len);
      p += 2 + len;
      if (p + 2 > end || b[p] !== SHORT_TEXT) break fast;
      len = b[p + 1] as number;
      const col = columns.find(b, p + 2, len);
      if (col === undefined || p + 2 + len > end) break fast;
      p += 2 + len;
      if (p >= end) break fast;
      const at = p;
      const t = b[p] as number;
      const code = t & 7;
      const n = t >> 3;
      let val: SqlValue;
      if (t === TYPE_NULL) {
        val = null;
        p += 1;
      } else if (code === TYPE_INTEGER || code === TYPE_NEG_INTEGER) {
        if (n < 1 || n > 6 || p + 1 + n > end) break fast;
        let m = 0;
        for (let k = 1; k <= n; k++) m = m * 256 + (b[p + k] as number);
        val = code === TYPE_INTEGER ? BigInt(m) : -BigInt(m);
        p += 1 + n;
      } else if (t === TYPE_REAL || t === TYPE_NEG_REAL) {
        if (p + 9 > end) break fast;
        const v = view.getFloat64(p + 1, !realBigEndian);
        val = t === TYPE_REAL ? v : -v;
        p += 9;
      } else if (t === SHORT_TEXT || t === SHORT_BLOB) {
        if (p + 2 > end) break fast;
        len = b[p + 1] as number;
        if (len > maxValue || p + 2 + len > end) break fast;
        val = t === SHORT_TEXT ? decodeUtf8(b.subarray(p + 2, p + 2 + len), at) : b.subarray(p + 2, p + 2 + len);
        p += 2 + len;
      } else break fast;
      let q = shortClock(b, p, end, maxClock);
      if (q < 0) break fast;
      const colVersion = clockValue;
      p = q;
      q = shortClock(b, p, end, maxClock);
      if (q < 0) break fast;
      const dbVersion = clockValue;
      p = q;
      if (p + 18 > end || b[p] !== SHORT_BLOB || b[p + 1] !== 16 || 16 > maxValue) break fast;
      let siteId: Uint8Array;
      if (lastSite !== null && sameRun(b, p + 2, 16, lastSite)) siteId = lastSite;
      else siteId = lastSite = b.subarray(p + 2, p + 18);
      p += 18;
      q = shortClock(b, p, end, maxClock);
      if (q < 0) break fast;
      const cl = clockValue;
      p = q;
      q = shortClock(b, p, end, maxClock);
      if (q < 0) break fast;
      const seq = clockValue;
      r.pos = q;
      changes[i] = { tbl, pk, col, val, colVersion, dbVersion, siteId, cl, seq };
      continue;
    }
    const tbl = decodeRepeatedTextField(r, 'tbl', maxValue, tables);
    let pk = decodeBlobField(r, 'pk', maxValue);
    if (lastPk !== null && sameBytes(lastPk, pk)) pk = lastPk;
    else lastPk = pk;
    const col = decodeRepeatedTextField(r, 'col_name', maxValue, columns);
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
    if (lastSite !== null && sameBytes(lastSite, siteId)) siteId = lastSite;
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
