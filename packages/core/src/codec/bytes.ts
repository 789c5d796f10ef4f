/**
 * Byte buffers for the codec: a growable big-endian {@link ByteWriter} and a bounds-checked
 * {@link ByteReader}. Pure TypeScript (Uint8Array/DataView), no Node APIs.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';

const TWO_32 = 4294967296;

/** Growable output buffer. `length` is the number of bytes written so far. */
export class ByteWriter {
  buf: Uint8Array;
  view: DataView;
  length = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
    this.view = new DataView(this.buf.buffer);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  u16be(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }

  u32be(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
  }

  /** 48-bit unsigned big-endian; `v` must be an integer in [0, 2^48). */
  u48be(v: number | bigint): void {
    const n = typeof v === 'bigint' ? Number(BigInt.asUintN(48, v)) : v;
    this.ensure(6);
    const hi = Math.floor(n / TWO_32);
    this.view.setUint16(this.length, hi);
    this.view.setUint32(this.length + 2, n >>> 0);
    this.length += 6;
  }

  u64be(v: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, v));
    this.length += 8;
  }

  /** Unsigned big-endian integer of exactly `width` (1..7) bytes; `v` < 2^53. */
  uintBE(v: number, width: number): void {
    this.ensure(width);
    const b = this.buf;
    let p = this.length + width;
    let x = v;
    for (let i = 0; i < width; i++) {
      b[--p] = x % 256;
      x = Math.floor(x / 256);
    }
    this.length += width;
  }

  bytes(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.length);
    this.length += src.length;
  }

  f64le(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }

  f64be(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, v, false);
    this.length += 8;
  }

  /** The bytes written so far (a view on the internal buffer, valid until the next write). */
  subarray(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** A copy of the bytes written so far. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

function truncated(at: number, need: number): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_TRUNCATED, `unexpected end of data at offset ${at} (need ${need} bytes)`, {
    details: { offset: at },
  });
}

/** Bounds-checked reader over `buf[pos..end)`; every read past `end` throws PAYLOAD_TRUNCATED. */
export class ByteReader {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos: number;
  readonly end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws PAYLOAD_TRUNCATED unless `n` more bytes are available. */
  need(n: number): void {
    if (n > this.end - this.pos) throw truncated(this.pos, n);
  }

  u8(): number {
    if (this.pos >= this.end) throw truncated(this.pos, 1);
    return this.buf[this.pos++] as number;
  }

  u16be(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32be(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u48be(): number {
    this.need(6);
    const v = this.view.getUint16(this.pos) * TWO_32 + this.view.getUint32(this.pos + 2);
    this.pos += 6;
    return v;
  }

  u64be(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  /** Unsigned big-endian integer of `width` (1..6) bytes as a number. */
  uintBE(width: number): number {
    this.need(width);
    const b = this.buf;
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + (b[this.pos + i] as number);
    this.pos += width;
    return v;
  }

  /** `n` bytes as a subarray of the underlying buffer (no copy). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  f64le(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  f64be(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, false);
    this.pos += 8;
    return v;
  }
}

/** Byte-wise equality (primary-key blobs, site ids); `undefined` equals nothing. */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The bytes as a string (one char per byte): a cheap Map/Set key for a blob (site ids, pk blobs). */
export function bytesKey(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i] ?? 0);
  return s;
}
