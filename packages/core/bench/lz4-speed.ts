/**
 * LZ4 block codec speed, old vs new in the same process (CPU time):
 * `npx tsx bench/lz4-speed.ts` in packages/core. BENCH_ROWS = changes in the payload body
 * (default 280k, the issue-11 encode profile), REPS = interleaved runs per variant (default 7).
 * The baseline is a verbatim copy of the codec before the speed work (commit 24f2e81); the new
 * compressor's output must be byte-identical, which the bench checks before timing.
 */
import { encodePayload, encodePk, lz4BlockCompress, lz4BlockDecompress } from '@offsync/core';
import type { Change } from '@offsync/core';

// ---- baseline (verbatim copy of src/codec/lz4-block.ts at 24f2e81; errors simplified) ----
const B_MIN_MATCH = 4;
const B_LAST_LITERALS = 5;
const B_MF_LIMIT = 12;
const B_MAX_DISTANCE = 65535;
const B_MAX_HASH_LOG = 16;
const B_SKIP_STRENGTH = 6;
const bHashTable = new Int32Array(1 << B_MAX_HASH_LOG);
function bBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}
function bRead32(b: Uint8Array, i: number): number {
  return (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
}
function bWriteLiterals(src: Uint8Array, from: number, len: number, dst: Uint8Array, op: number): number {
  if (len < 32) {
    for (let i = 0; i < len; i++) dst[op + i] = src[from + i] as number;
  } else {
    dst.set(src.subarray(from, from + len), op);
  }
  return op + len;
}
function bWriteLengthExt(dst: Uint8Array, op: number, rest: number): number {
  let n = rest;
  while (n >= 255) {
    dst[op++] = 255;
    n -= 255;
  }
  dst[op++] = n;
  return op;
}
function baselineCompressInto(src: Uint8Array, dst: Uint8Array, dstOffset: number, maxOutput: number): number {
  const n = src.length;
  let op = dstOffset;
  const opLimit = dstOffset + Math.min(maxOutput, bBound(n));
  let anchor = 0;
  if (n >= B_MF_LIMIT + 1) {
    let hashLog = 8;
    while (hashLog < B_MAX_HASH_LOG && 1 << hashLog < n) hashLog++;
    const shift = 32 - hashLog;
    const table = bHashTable;
    table.fill(0, 0, 1 << hashLog);
    const ipLimit = n - B_MF_LIMIT;
    const matchLimit = n - B_LAST_LITERALS;
    let ip = 0;
    let searchCount = 1 << B_SKIP_STRENGTH;
    while (ip <= ipLimit) {
      const seq = bRead32(src, ip);
      const h = Math.imul(seq, 2654435761) >>> shift;
      let ref = (table[h] as number) - 1;
      table[h] = ip + 1;
      if (ref < 0 || ip - ref > B_MAX_DISTANCE || bRead32(src, ref) !== seq) {
        ip += searchCount++ >> B_SKIP_STRENGTH;
        continue;
      }
      searchCount = 1 << B_SKIP_STRENGTH;
      while (ip > anchor && ref > 0 && src[ip - 1] === src[ref - 1]) {
        ip--;
        ref--;
      }
      let mEnd = ip + B_MIN_MATCH;
      let r = ref + B_MIN_MATCH;
      while (mEnd < matchLimit && src[mEnd] === src[r]) {
        mEnd++;
        r++;
      }
      const litLen = ip - anchor;
      const matchLen = mEnd - ip - B_MIN_MATCH;
      if (op + 1 + litLen + Math.floor(litLen / 255) + 3 + Math.floor(matchLen / 255) + 1 > opLimit) return -1;
      const tokenPos = op++;
      let token: number;
      if (litLen >= 15) {
        token = 15 << 4;
        op = bWriteLengthExt(dst, op, litLen - 15);
      } else token = litLen << 4;
      op = bWriteLiterals(src, anchor, litLen, dst, op);
      const offset = ip - ref;
      dst[op++] = offset & 0xff;
      dst[op++] = offset >>> 8;
      if (matchLen >= 15) {
        token |= 15;
        op = bWriteLengthExt(dst, op, matchLen - 15);
      } else token |= matchLen;
      dst[tokenPos] = token;
      ip = mEnd;
      anchor = ip;
      if (ip - 2 <= ipLimit) {
        table[Math.imul(bRead32(src, ip - 2), 2654435761) >>> shift] = ip - 2 + 1;
      }
    }
  }
  const litLen = n - anchor;
  if (op + 1 + litLen + Math.floor(litLen / 255) + 1 > opLimit) return -1;
  if (litLen >= 15) {
    dst[op++] = 15 << 4;
    op = bWriteLengthExt(dst, op, litLen - 15);
  } else dst[op++] = litLen << 4;
  op = bWriteLiterals(src, anchor, litLen, dst, op);
  return op - dstOffset;
}
function baselineCompress(src: Uint8Array): Uint8Array | null {
  const dst = new Uint8Array(bBound(src.length));
  const len = baselineCompressInto(src, dst, 0, src.length);
  if (len < 0) return null;
  return dst.slice(0, len);
}
function bBad(message: string): Error {
  return new Error(`LZ4: ${message}`);
}
function bInitialCapacity(inputLen: number, expandedSize: number): number {
  return Math.min(expandedSize, Math.max(64 * 1024, inputLen * 4));
}
function baselineDecompress(src: Uint8Array, expandedSize: number): Uint8Array {
  if (!Number.isInteger(expandedSize) || expandedSize < 0 || expandedSize > 0x7fffffff) throw bBad('size');
  const iend = src.length;
  if (iend === 0) throw bBad('empty block');
  let dst = new Uint8Array(bInitialCapacity(iend, expandedSize));
  let ip = 0;
  let op = 0;
  const grow = (need: number): void => {
    let cap = dst.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(Math.min(cap, expandedSize));
    next.set(dst.subarray(0, op));
    dst = next;
  };
  for (;;) {
    if (ip >= iend) throw bBad('block ends without a final literal sequence');
    const token = src[ip++] as number;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= iend) throw bBad('truncated literal length');
        b = src[ip++] as number;
        lit += b;
      } while (b === 255);
    }
    if (lit > iend - ip) throw bBad('literals run past the input');
    if (lit > expandedSize - op) throw bBad('literals run past the announced size');
    if (op + lit > dst.length) grow(op + lit);
    if (lit < 32) {
      for (let i = 0; i < lit; i++) dst[op + i] = src[ip + i] as number;
    } else {
      dst.set(src.subarray(ip, ip + lit), op);
    }
    ip += lit;
    op += lit;
    if (ip === iend) break;
    if (iend - ip < 2) throw bBad('truncated match offset');
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw bBad(`invalid match offset ${offset}`);
    let ml = token & 15;
    if (ml === 15) {
      let b: number;
      do {
        if (ip >= iend) throw bBad('truncated match length');
        b = src[ip++] as number;
        ml += b;
        if (ml > expandedSize) throw bBad('match runs past the announced size');
      } while (b === 255);
    }
    ml += B_MIN_MATCH;
    if (ml > expandedSize - op) throw bBad('match runs past the announced size');
    if (op + ml > dst.length) grow(op + ml);
    const end = op + ml;
    if (ml >= 32) {
      let dist = offset;
      while (op < end) {
        const n = Math.min(dist, end - op);
        dst.copyWithin(op, op - dist, op - dist + n);
        op += n;
        dist += n;
      }
    } else {
      let from = op - offset;
      while (op < end) dst[op++] = dst[from++] as number;
    }
  }
  if (op !== expandedSize) throw bBad(`expanded to ${op} bytes, announced ${expandedSize}`);
  return dst;
}
// ---- end of baseline ----

const N = Number(process.env['BENCH_ROWS'] ?? 280_000);
const REPS = Number(process.env['REPS'] ?? 7);

/** Payload-like changes: UUID-ish text pks, three columns per row, as extract-speed's table. */
function makeChanges(n: number): Change[] {
  const site = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 255);
  const out: Change[] = [];
  const cols = ['title', 'done', 'note'];
  for (let i = 0; out.length < n; i++) {
    const id = `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`;
    const pk = encodePk([id]);
    for (let c = 0; c < 3 && out.length < n; c++) {
      const col = cols[c]!;
      const val = col === 'done' ? BigInt(i & 1) : col === 'title' ? `todo number ${i} (edited)` : i % 3 === 0 ? null : `note ${i}`;
      out.push({ tbl: 'todos', pk, col, val, colVersion: 1 + (i % 3), dbVersion: 1 + i, siteId: site, cl: 1, seq: c });
    }
  }
  return out;
}

/** The uncompressed payload body (what LZ4 sees). */
function bodyOf(changes: Change[]): Uint8Array {
  const p = encodePayload(changes, { schemaHash: 0n })!;
  const expanded = new DataView(p.buffer, p.byteOffset).getUint32(8);
  return expanded === 0 ? p.slice(32) : lz4BlockDecompress(p.subarray(32), expanded);
}

function cpuMs(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

function equal(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const body = bodyOf(makeChanges(N));
const rnd = new Uint8Array(1 << 20);
for (let i = 0, x = 1; i < rnd.length; i++) rnd[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
const blocks64k = Array.from({ length: 200 }, (_, k) => body.subarray(k * 65536, k * 65536 + 65536));
const small = Array.from({ length: 2000 }, (_, k) => body.subarray(k * 997, k * 997 + 200 + (k % 800)));

const oldBlock = baselineCompress(body)!;
const newBlock = lz4BlockCompress(body)!;
if (!equal(oldBlock, newBlock)) throw new Error('compressed bytes differ from the baseline');
if (!equal(baselineDecompress(oldBlock, body.length), lz4BlockDecompress(oldBlock, body.length))) throw new Error('decompressed bytes differ');
for (const s of [...small, ...blocks64k]) if (!equal(baselineCompress(s), lz4BlockCompress(s))) throw new Error('small block differs');

const cases: { name: string; old: () => void; neu: () => void }[] = [
  { name: `compress body (${(body.length / 1e6).toFixed(1)} MB)`, old: () => baselineCompress(body), neu: () => lz4BlockCompress(body) },
  { name: `decompress body (${(oldBlock.length / 1e6).toFixed(1)} MB → ${(body.length / 1e6).toFixed(1)} MB)`, old: () => baselineDecompress(oldBlock, body.length), neu: () => lz4BlockDecompress(oldBlock, body.length) },
  { name: 'compress random 1 MiB (incompressible)', old: () => baselineCompress(rnd), neu: () => lz4BlockCompress(rnd) },
  {
    name: 'compress 2000 small blocks (200..1000 B)',
    old: () => {
      for (const s of small) baselineCompress(s);
    },
    neu: () => {
      for (const s of small) lz4BlockCompress(s);
    },
  },
  {
    name: 'compress 200 blocks of 64 KiB',
    old: () => {
      for (const s of blocks64k) baselineCompress(s);
    },
    neu: () => {
      for (const s of blocks64k) lz4BlockCompress(s);
    },
  },
];

console.log(`lz4-speed: ${N} changes, body ${body.length} B, block ${oldBlock.length} B (ratio ${(body.length / oldBlock.length).toFixed(2)}), ${REPS} interleaved reps, CPU ms`);
for (const c of cases) {
  c.old();
  c.neu();
  const o: number[] = [];
  const n: number[] = [];
  for (let r = 0; r < REPS; r++) {
    o.push(cpuMs(c.old));
    n.push(cpuMs(c.neu));
  }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const min = (a: number[]): number => Math.min(...a);
  console.log(`${c.name.padEnd(52)} old median ${med(o).toFixed(1).padStart(7)} min ${min(o).toFixed(1).padStart(7)} | new median ${med(n).toFixed(1).padStart(7)} min ${min(n).toFixed(1).padStart(7)} | ×${(med(o) / med(n)).toFixed(2)}`);
}
