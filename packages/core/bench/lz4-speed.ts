/**
 * LZ4 block codec speed, old vs new in the same process (CPU time):
 * `npx tsx bench/lz4-speed.ts` in packages/core. BENCH_ROWS = changes in the payload body
 * (default 280k, the issue-11 encode profile), REPS = interleaved runs per variant (default 7).
 * The baseline is the codec before the speed work (test/fixtures/lz4-reference.ts, as of e849b95); the new
 * compressor's output must be byte-identical, which the bench checks before timing.
 */
import { encodePayload, encodePk, lz4BlockCompress, lz4BlockDecompress } from '@offsync/core';
import type { Change } from '@offsync/core';
import { oracleCompress as baselineCompress, oracleDecompress as baselineDecompress } from '../test/fixtures/lz4-reference.ts';

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
