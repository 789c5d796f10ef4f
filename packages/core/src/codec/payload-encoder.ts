/**
 * Payload encoder (docs/PROTOCOL.md §P4): rows are appended to one growing buffer; the
 * body is LZ4-compressed at the end when that is not larger, and stamped with a v2 header and
 * checksum48 of the body as transmitted.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change, SqlValue } from '../types.ts';
import { ByteWriter } from './bytes.ts';
import { checksum48Number } from './fnv.ts';
import { LZ4_MAX_INPUT_SIZE, lz4BlockCompressBound, lz4BlockCompressInto } from './lz4-block.ts';
import { isFragmentName } from './payload-fragments.ts';
import { DEFAULT_LIB_VERSION, PAYLOAD_HEADER_SIZE, writePayloadHeader } from './payload-header.ts';
import { encodeText, encodeValue, TYPE_BLOB, TYPE_INTEGER, TYPE_NEG_INTEGER, TYPE_NULL, TYPE_REAL, TYPE_NEG_REAL, TYPE_TEXT, putUint } from './value.ts';

export interface PayloadEncodeOptions {
  /** u64 stamped into the header (§P6). */
  schemaHash: bigint;
  /** Library version in the header; default [0, 9, 99]. */
  libVersion?: readonly [number, number, number];
  /**
   * What to do with a change that cannot be encoded (a clock that is not a safe non-negative
   * integer, a site id that is not 16 bytes, a value that is not an SQL value): without this
   * option `add()` throws; with it, the change is left out of the payload, counted in
   * {@link PayloadEncoder.skipped} and reported here. Downloads use it so that one damaged row in
   * a database never fails every download of it (docs/PROTOCOL.md "Limits").
   */
  onInvalidChange?: (error: CoreError, change: Change) => void;
}

const NAME_CACHE_MAX = 4096;
const MAX_ROWS = 0xffffffff;

function badChange(message: string): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_BAD_VALUE, message);
}

function checkClock(v: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw badChange(`${field} must be a non-negative safe integer, got ${v}`);
}

let scratch = new Uint8Array(0);

/** Copies `src` to `b[p..]` (a loop for short arrays: cheaper than `set` at pk/site-id sizes); returns the new end. */
function putBytes(b: Uint8Array, p: number, src: Uint8Array): number {
  const n = src.length;
  if (n > 48) {
    b.set(src, p);
    return p + n;
  }
  for (let i = 0; i < n; i++) b[p + i] = src[i] as number;
  return p + n;
}

/** Bytes of a row after its value: 4 clocks of at most 8 bytes and the site id with its 2-byte head. */
const ROW_TAIL = 4 * 8 + 18;

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const SAFE_MIN = -SAFE_MAX;

/**
 * The value at `w.buf[p..]` (value.ts `encodeValue`, same bytes; at least 64 + 9 bytes reserved):
 * NULL, REAL, integers within ±(2^53-1) and short ASCII TEXT/BLOB here, everything else through
 * `encodeValue` (which grows the buffer as needed, keeping {@link ROW_TAIL} bytes of room after
 * the value). Returns the new end.
 */
function putValue(w: ByteWriter, p: number, v: SqlValue): number {
  const b = w.buf;
  switch (typeof v) {
    case 'string': {
      const len = v.length;
      if (len < 64) {
        let i = 0;
        for (; i < len; i++) {
          const c = v.charCodeAt(i);
          if (c >= 0x80) break;
          b[p + 2 + i] = c;
        }
        if (i === len) {
          b[p] = (1 << 3) | TYPE_TEXT;
          b[p + 1] = len;
          return p + 2 + len;
        }
      }
      break;
    }
    case 'bigint':
      if (v >= 0n) {
        if (v <= SAFE_MAX) return putUint(b, p, TYPE_INTEGER, Number(v));
      } else if (v >= SAFE_MIN) return putUint(b, p, TYPE_NEG_INTEGER, -Number(v));
      break;
    case 'number':
      if (v < 0) {
        b[p] = TYPE_NEG_REAL;
        w.view.setFloat64(p + 1, -v, true);
      } else {
        b[p] = TYPE_REAL; // ≥ 0, -0 and NaN: code 2 with the raw bits
        w.view.setFloat64(p + 1, v, true);
      }
      return p + 9;
    case 'object':
      if (v === null) {
        b[p] = TYPE_NULL;
        return p + 1;
      }
      if (v instanceof Uint8Array && v.length <= 64) {
        p = putUint(b, p, TYPE_BLOB, v.length);
        return putBytes(b, p, v);
      }
      break;
  }
  const mark = w.length;
  w.length = p;
  try {
    encodeValue(w, v);
    w.ensure(ROW_TAIL);
    return w.length;
  } finally {
    w.length = mark;
  }
}

/**
 * Incremental payload builder. `finish()` returns the payload (or null when no row was added)
 * and resets the encoder so it can build the next page.
 */
export class PayloadEncoder {
  readonly #w = new ByteWriter(16 * 1024);
  readonly #names = new Map<string, Uint8Array>();
  readonly #schemaHash: bigint;
  readonly #libVersion: readonly [number, number, number];
  readonly #onInvalid: ((error: CoreError, change: Change) => void) | undefined;
  #rows = 0;
  #skipped = 0;
  #fragments = false;

  constructor(opts: PayloadEncodeOptions) {
    this.#schemaHash = opts.schemaHash;
    this.#libVersion = opts.libVersion ?? DEFAULT_LIB_VERSION;
    this.#onInvalid = opts.onInvalidChange;
  }

  /** Changes left out so far because they could not be encoded (only with `onInvalidChange`). */
  get skipped(): number {
    return this.#skipped;
  }

  /** Uncompressed body bytes so far (for cutting pages at a size budget). */
  get byteLength(): number {
    return this.#w.length;
  }

  get rowCount(): number {
    return this.#rows;
  }

  /** The encoded TEXT of a name (tbl, col_name): one per distinct name, the last two remembered by identity. */
  #name(s: string): Uint8Array {
    let enc = this.#names.get(s);
    if (enc === undefined) {
      const tmp = new ByteWriter(s.length + 8);
      encodeText(tmp, s);
      enc = tmp.toBytes();
      if (this.#names.size >= NAME_CACHE_MAX) this.#names.clear();
      this.#names.set(s, enc);
    }
    return enc;
  }

  #lastTbl = '';
  #lastTblEnc: Uint8Array | undefined;
  #lastCol = '';
  #lastColEnc: Uint8Array | undefined;

  /**
   * Appends one row. Throws CoreError PAYLOAD_BAD_VALUE / PAYLOAD_TOO_LARGE on invalid input,
   * or, with `onInvalidChange`, skips a PAYLOAD_BAD_VALUE change and reports it.
   */
  add(change: Change): void {
    if (this.#onInvalid === undefined) return this.#add(change);
    try {
      this.#add(change);
    } catch (e) {
      if (!(e instanceof CoreError) || e.code !== CoreErrorCode.PAYLOAD_BAD_VALUE) throw e;
      this.#skipped++;
      this.#onInvalid(e, change);
    }
  }

  #add(change: Change): void {
    const { tbl, pk, col, siteId } = change;
    if (typeof tbl !== 'string' || typeof col !== 'string') throw badChange('tbl and col must be strings');
    if (!(pk instanceof Uint8Array)) throw badChange('pk must be a Uint8Array');
    if (!(siteId instanceof Uint8Array) || siteId.length !== 16) throw badChange('siteId must be 16 bytes');
    checkClock(change.colVersion, 'colVersion');
    checkClock(change.dbVersion, 'dbVersion');
    checkClock(change.cl, 'cl');
    checkClock(change.seq, 'seq');
    if (this.#rows >= MAX_ROWS) throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, 'too many rows for one payload');
    let tblEnc = this.#lastTblEnc;
    if (tblEnc === undefined || tbl !== this.#lastTbl) {
      tblEnc = this.#lastTblEnc = this.#name(tbl);
      this.#lastTbl = tbl;
    }
    let colEnc = this.#lastColEnc;
    if (colEnc === undefined || col !== this.#lastCol) {
      colEnc = this.#lastColEnc = this.#name(col);
      this.#lastCol = col;
    }
    const val = change.val;
    const w = this.#w;
    // One reservation per row: names, pk with its head, the value (TEXT/BLOB written here only
    // when short; else by encodeValue) and the tail (clocks, site id).
    w.ensure(tblEnc.length + colEnc.length + pk.length + 9 + 64 + 9 + ROW_TAIL);
    const b = w.buf;
    let p = w.length;
    p = putBytes(b, p, tblEnc);
    p = putUint(b, p, TYPE_BLOB, pk.length);
    p = putBytes(b, p, pk);
    p = putBytes(b, p, colEnc);
    p = putValue(w, p, val);
    const b2 = w.buf; // a new buffer when encodeValue grew it for a long value
    p = putUint(b2, p, TYPE_INTEGER, change.colVersion);
    p = putUint(b2, p, TYPE_INTEGER, change.dbVersion);
    b2[p++] = (1 << 3) | TYPE_BLOB;
    b2[p++] = 16;
    p = putBytes(b2, p, siteId);
    p = putUint(b2, p, TYPE_INTEGER, change.cl);
    p = putUint(b2, p, TYPE_INTEGER, change.seq);
    w.length = p; // nothing is committed before the whole row is written: a throw leaves the encoder as it was
    this.#rows++;
    if (isFragmentName(col)) this.#fragments = true;
  }

  /**
   * Builds the payload (v2; v3 when it holds fragment rows, `fragmentChange`) and resets the
   * encoder. Null when no row was added (§P4).
   */
  finish(): Uint8Array | null {
    const rows = this.#rows;
    if (rows === 0) return null;
    const body = this.#w.subarray();
    const n = body.length;
    if (n > LZ4_MAX_INPUT_SIZE) {
      throw new CoreError(CoreErrorCode.PAYLOAD_TOO_LARGE, `payload body of ${n} bytes exceeds 2^31-1`);
    }
    const bound = lz4BlockCompressBound(n);
    if (scratch.length < bound) scratch = new Uint8Array(Math.max(bound, scratch.length * 2));
    const clen = lz4BlockCompressInto(body, scratch, 0, n);
    let out: Uint8Array;
    let expandedSize: number;
    if (clen >= 0) {
      out = new Uint8Array(PAYLOAD_HEADER_SIZE + clen);
      out.set(scratch.subarray(0, clen), PAYLOAD_HEADER_SIZE);
      expandedSize = n;
    } else {
      out = new Uint8Array(PAYLOAD_HEADER_SIZE + n);
      out.set(body, PAYLOAD_HEADER_SIZE);
      expandedSize = 0;
    }
    if (scratch.length > 64 * 1024 * 1024) scratch = new Uint8Array(0); // don't pin huge buffers
    writePayloadHeader(out, {
      libVersion: this.#libVersion,
      expandedSize,
      nrows: rows,
      schemaHash: this.#schemaHash,
      checksum: checksum48Number(out, PAYLOAD_HEADER_SIZE, out.length),
      version: this.#fragments ? 3 : 2,
    });
    this.#w.reset();
    this.#rows = 0;
    this.#fragments = false;
    return out;
  }
}

/** Encodes changes as one v2 payload; null for zero changes (empty selection → SQL NULL, §P4). */
export function encodePayload(changes: Iterable<Change>, opts: PayloadEncodeOptions): Uint8Array | null {
  const enc = new PayloadEncoder(opts);
  for (const c of changes) enc.add(c);
  return enc.finish();
}
