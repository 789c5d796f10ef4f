/**
 * Raw LZ4 *block* format (no frame, no magic), as used for payload bodies (docs/PROTOCOL.md §P4).
 *
 * Own implementation, written from the public LZ4 block format description:
 * a block is a list of sequences `token | [literal length ext] | literals | offset u16le |
 * [match length ext]`; the last sequence has literals only. The compressor follows the standard
 * end-of-block rules so that any conforming decoder (the extension uses LZ4_decompress_safe)
 * accepts our output: the last 5 bytes are always literals and the last match starts at least
 * 12 bytes before the end of the block. The decompressor is bounds-checked: any malformed input
 * throws CoreError PAYLOAD_BAD_COMPRESSION and the output is exactly `expandedSize` bytes.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';

const MIN_MATCH = 4;
const LAST_LITERALS = 5;
const MF_LIMIT = 12;
const MAX_DISTANCE = 65535;
const MAX_HASH_LOG = 16;
const SKIP_STRENGTH = 6;
/** Largest expanded size we ever decompress (C INT_MAX). */
export const LZ4_MAX_INPUT_SIZE = 0x7fffffff;

const hashTable = new Int32Array(1 << MAX_HASH_LOG);

/** Worst-case compressed size of `n` input bytes. */
export function lz4BlockCompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/** Knuth's multiplicative hash constant (2^32 / golden ratio; Math.imul takes it modulo 2^32). */
const HASH_MUL = 2654435761;

/** Copies `len` bytes `src[from..)` to `dst[op..)`; returns the new `op`. */
function writeLiterals(src: Uint8Array, from: number, len: number, dst: Uint8Array, op: number): number {
  if (len < 32) {
    for (let i = 0; i < len; i++) dst[op + i] = src[from + i] as number;
  } else {
    dst.set(src.subarray(from, from + len), op);
  }
  return op + len;
}

function writeLengthExt(dst: Uint8Array, op: number, rest: number): number {
  let n = rest;
  while (n >= 255) {
    dst[op++] = 255;
    n -= 255;
  }
  dst[op++] = n;
  return op;
}

/**
 * Compresses `src` into `dst` starting at `dstOffset`. `dst` must have at least
 * {@link lz4BlockCompressBound}(src.length) bytes after `dstOffset`. Returns the number of bytes
 * written, or -1 as soon as the output would exceed `maxOutput` bytes.
 *
 * Match finding (fixed: the golden payloads compare bytes): one hash table of the 4-byte word at
 * each probed position (little-endian, Knuth multiplicative hash, 2^8..2^16 entries sized to the
 * input), probes accelerate by 1 every 2^6 misses, a hit extends backwards into the pending
 * literals and forwards up to the last 5 bytes, and after each match the position 2 bytes before
 * its end is seeded. Words are read with one little-endian DataView load and the forward
 * extension compares 4 bytes at a time (the first differing byte is the lowest set byte of the
 * xor); both give the same positions as byte-wise reads.
 */
export function lz4BlockCompressInto(src: Uint8Array, dst: Uint8Array, dstOffset: number, maxOutput: number): number {
  const n = src.length;
  let op = dstOffset;
  const opLimit = dstOffset + Math.min(maxOutput, lz4BlockCompressBound(n));
  let anchor = 0;
  if (n >= MF_LIMIT + 1) {
    let hashLog = 8;
    while (hashLog < MAX_HASH_LOG && 1 << hashLog < n) hashLog++;
    const shift = 32 - hashLog;
    const table = hashTable;
    table.fill(0, 0, 1 << hashLog);
    const sv = new DataView(src.buffer, src.byteOffset, n);
    const ipLimit = n - MF_LIMIT; // last match start allowed
    const matchLimit = n - LAST_LITERALS; // matches end before this
    const wordLimit = matchLimit - 4; // last start of a 4-byte compare inside the match limit
    let ip = 0;
    let searchCount = 1 << SKIP_STRENGTH;
    while (ip <= ipLimit) {
      const seq = sv.getInt32(ip, true);
      const h = Math.imul(seq, HASH_MUL) >>> shift;
      let ref = (table[h] as number) - 1;
      table[h] = ip + 1;
      if (ref < 0 || ip - ref > MAX_DISTANCE || sv.getInt32(ref, true) !== seq) {
        ip += searchCount++ >> SKIP_STRENGTH;
        continue;
      }
      searchCount = 1 << SKIP_STRENGTH;
      // Extend backwards into pending literals.
      while (ip > anchor && ref > 0 && src[ip - 1] === src[ref - 1]) {
        ip--;
        ref--;
      }
      let mEnd = ip + MIN_MATCH;
      let r = ref + MIN_MATCH;
      for (;;) {
        if (mEnd > wordLimit) {
          while (mEnd < matchLimit && src[mEnd] === src[r]) {
            mEnd++;
            r++;
          }
          break;
        }
        const diff = sv.getInt32(mEnd, true) ^ sv.getInt32(r, true);
        if (diff !== 0) {
          mEnd += (31 - Math.clz32(diff & -diff)) >>> 3;
          break;
        }
        mEnd += 4;
        r += 4;
      }
      const litLen = ip - anchor;
      const matchLen = mEnd - ip - MIN_MATCH;
      // Worst case size of this sequence, checked before writing (dst is bound-sized anyway).
      if (op + 1 + litLen + Math.floor(litLen / 255) + 3 + Math.floor(matchLen / 255) + 1 > opLimit) return -1;
      const tokenPos = op++;
      let token: number;
      if (litLen >= 15) {
        token = 15 << 4;
        op = writeLengthExt(dst, op, litLen - 15);
      } else token = litLen << 4;
      op = writeLiterals(src, anchor, litLen, dst, op);
      const offset = ip - ref;
      dst[op++] = offset & 0xff;
      dst[op++] = offset >>> 8;
      if (matchLen >= 15) {
        token |= 15;
        op = writeLengthExt(dst, op, matchLen - 15);
      } else token |= matchLen;
      dst[tokenPos] = token;
      ip = mEnd;
      anchor = ip;
      // Seed the table with a position inside the match for better ratios.
      if (ip - 2 <= ipLimit) {
        table[Math.imul(sv.getInt32(ip - 2, true), HASH_MUL) >>> shift] = ip - 2 + 1;
      }
    }
  }
  const litLen = n - anchor;
  if (op + 1 + litLen + Math.floor(litLen / 255) + 1 > opLimit) return -1;
  if (litLen >= 15) {
    dst[op++] = 15 << 4;
    op = writeLengthExt(dst, op, litLen - 15);
  } else dst[op++] = litLen << 4;
  op = writeLiterals(src, anchor, litLen, dst, op);
  return op - dstOffset;
}

/**
 * Compresses `src` as one LZ4 block. Returns null when the result would be larger than the
 * input (incompressible); ties keep the compressed form (§P4).
 */
export function lz4BlockCompress(src: Uint8Array): Uint8Array | null {
  const dst = new Uint8Array(lz4BlockCompressBound(src.length));
  const len = lz4BlockCompressInto(src, dst, 0, src.length);
  if (len < 0) return null;
  return dst.slice(0, len);
}

function bad(message: string, at: number): CoreError {
  return new CoreError(CoreErrorCode.PAYLOAD_BAD_COMPRESSION, `LZ4: ${message}`, { details: { offset: at } });
}

/**
 * First output allocation, grown by doubling: 8x the block, which covers our payload bodies
 * (they compress about 4.9x, bench/lz4-speed.ts) in one allocation — no grow, no copy, and a
 * lower peak than a 4x start that doubles near the end — while a block that lies about its
 * expansion reserves at most 8x what it sent (never more than the announced size).
 */
function initialCapacity(inputLen: number, expandedSize: number): number {
  return Math.min(expandedSize, Math.max(64 * 1024, inputLen * 8));
}

/** A copy of `dst[0..used)` in a buffer of at least `need` bytes: doubling, capped at `max`. */
function grown(dst: Uint8Array, used: number, need: number, max: number): Uint8Array<ArrayBuffer> {
  let cap = dst.length * 2;
  while (cap < need) cap *= 2;
  const next = new Uint8Array(Math.min(cap, max));
  next.set(dst.subarray(0, used));
  return next;
}

/**
 * Decompresses one LZ4 block that must expand to exactly `expandedSize` bytes.
 * Throws CoreError PAYLOAD_BAD_COMPRESSION on any malformed input; never reads or writes out of
 * bounds. The output buffer starts small and grows by doubling, never beyond `expandedSize`:
 * memory follows what the block really produces, and a block that would expand past the
 * announced size stops at the first sequence that overflows it. The caller bounds
 * `expandedSize` (payload.ts checks it against the expanded-size budget first).
 *
 * Speed: every check runs once per sequence, before any byte of it is written; the copies then
 * run without further checks of ours in plain loops (short literals, short matches; a match at
 * distance >= 4 moves 4 bytes per step, never past its end) or as one `set` / `copyWithin` (long
 * literals, long non-overlapping matches; long overlapping ones double the copied period,
 * distance 1 is a fill).
 */
export function lz4BlockDecompress(src: Uint8Array, expandedSize: number): Uint8Array {
  if (!Number.isInteger(expandedSize) || expandedSize < 0 || expandedSize > LZ4_MAX_INPUT_SIZE) {
    throw bad(`invalid expanded size ${expandedSize}`, 0);
  }
  const iend = src.length;
  if (iend === 0) throw bad('empty block', 0);
  let dst = new Uint8Array(initialCapacity(iend, expandedSize));
  let dv = new DataView(dst.buffer);
  let cap = dst.length;
  let ip = 0;
  let op = 0;
  for (;;) {
    if (ip >= iend) throw bad('block ends without a final literal sequence', ip);
    const token = src[ip++] as number;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= iend) throw bad('truncated literal length', ip);
        b = src[ip++] as number;
        lit += b;
      } while (b === 255);
    }
    if (lit > iend - ip) throw bad('literals run past the input', ip);
    if (lit > expandedSize - op) throw bad('literals run past the announced size', ip);
    if (op + lit > cap) {
      dst = grown(dst, op, op + lit, expandedSize);
      dv = new DataView(dst.buffer);
      cap = dst.length;
    }
    if (lit < 32) {
      for (let i = 0; i < lit; i++) dst[op + i] = src[ip + i] as number;
    } else {
      dst.set(src.subarray(ip, ip + lit), op);
    }
    ip += lit;
    op += lit;
    if (ip === iend) break;
    if (iend - ip < 2) throw bad('truncated match offset', ip);
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw bad(`invalid match offset ${offset}`, ip - 2);
    let ml = token & 15;
    if (ml === 15) {
      let b: number;
      do {
        if (ip >= iend) throw bad('truncated match length', ip);
        b = src[ip++] as number;
        ml += b;
        if (ml > expandedSize) throw bad('match runs past the announced size', ip);
      } while (b === 255);
    }
    ml += MIN_MATCH;
    if (ml > expandedSize - op) throw bad('match runs past the announced size', ip);
    if (op + ml > cap) {
      dst = grown(dst, op, op + ml, expandedSize);
      dv = new DataView(dst.buffer);
      cap = dst.length;
    }
    const end = op + ml;
    let from = op - offset;
    if (ml < 32) {
      if (offset >= 4) {
        // Each 4-byte read ends at or before the write position: no overlap within a step.
        const end4 = end - 4;
        while (op <= end4) {
          dv.setInt32(op, dv.getInt32(from, true), true);
          op += 4;
          from += 4;
        }
      }
      while (op < end) dst[op++] = dst[from++] as number;
    } else if (offset >= ml) {
      dst.copyWithin(op, from, end - offset);
      op = end;
    } else if (offset === 1) {
      dst.fill(dst[from] as number, op, end);
      op = end;
    } else {
      // Overlapping (a repeated pattern): copies that double the period.
      let dist = offset;
      while (op < end) {
        const k = Math.min(dist, end - op);
        dst.copyWithin(op, op - dist, op - dist + k);
        op += k;
        dist += k;
      }
    }
  }
  if (op !== expandedSize) throw bad(`expanded to ${op} bytes, announced ${expandedSize}`, ip);
  return dst;
}
