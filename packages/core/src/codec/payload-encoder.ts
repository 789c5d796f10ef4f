/**
 * Payload encoder (docs/PROTOCOL.md §P4): rows are appended to one growing buffer; the
 * body is LZ4-compressed at the end when that is not larger, and stamped with a v2 header and
 * checksum48 of the body as transmitted.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { Change } from '../types.ts';
import { ByteWriter } from './bytes.ts';
import { checksum48Number } from './fnv.ts';
import { LZ4_MAX_INPUT_SIZE, lz4BlockCompressBound, lz4BlockCompressInto } from './lz4-block.ts';
import { isFragmentName } from './payload-fragments.ts';
import { DEFAULT_LIB_VERSION, PAYLOAD_HEADER_SIZE, writePayloadHeader } from './payload-header.ts';
import { encodeBlob, encodeText, encodeUintWithCode, encodeValue, TYPE_INTEGER } from './value.ts';

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

  #name(s: string): void {
    let enc = this.#names.get(s);
    if (enc === undefined) {
      const tmp = new ByteWriter(s.length + 8);
      encodeText(tmp, s);
      enc = tmp.toBytes();
      if (this.#names.size >= NAME_CACHE_MAX) this.#names.clear();
      this.#names.set(s, enc);
    }
    this.#w.bytes(enc);
  }

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
    const w = this.#w;
    const mark = w.length;
    try {
      this.#name(tbl);
      encodeBlob(w, pk);
      this.#name(col);
      encodeValue(w, change.val);
      encodeUintWithCode(w, TYPE_INTEGER, change.colVersion);
      encodeUintWithCode(w, TYPE_INTEGER, change.dbVersion);
      encodeBlob(w, siteId);
      encodeUintWithCode(w, TYPE_INTEGER, change.cl);
      encodeUintWithCode(w, TYPE_INTEGER, change.seq);
    } catch (e) {
      w.length = mark; // leave the encoder consistent
      throw e;
    }
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
