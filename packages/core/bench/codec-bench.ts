/**
 * Codec benchmark: `npx tsx packages/core/bench/codec-bench.ts [n]`.
 * Encodes/decodes n changes of the bench table `(id TEXT PRIMARY KEY NOT NULL, title TEXT,
 * done INTEGER, note TEXT)` and compares our LZ4 block codec with lz4js on the payload body.
 */
import * as lz4js from 'lz4js';
import { lz4BlockCompress, lz4BlockDecompress, decodePayload, encodePayload, encodePk } from '../src/index.ts';
import type { Change } from '../src/index.ts';

export interface CodecBenchRow {
  name: string;
  value: number;
  unit: string;
}

function makeChanges(n: number): Change[] {
  const site = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 255);
  const out: Change[] = [];
  const cols = ['title', 'done', 'note'];
  for (let i = 0; out.length < n; i++) {
    const pk = encodePk([`row-${i.toString(36).padStart(6, '0')}`]);
    for (let c = 0; c < 3 && out.length < n; c++) {
      const col = cols[c]!;
      const val = col === 'done' ? BigInt(i & 1) : col === 'title' ? `Task number ${i} – buy milk` : `note ${(i * 7919) % 100000} lorem ipsum dolor`;
      out.push({ tbl: 'bench', pk, col, val, colVersion: 1 + (i % 3), dbVersion: 1 + Math.floor(i / 10), siteId: site, cl: 1, seq: c });
    }
  }
  return out;
}

function time(iterations: number, f: () => void): number {
  f(); // warm-up
  const t0 = performance.now();
  for (let k = 0; k < iterations; k++) f();
  return (performance.now() - t0) / iterations / 1000; // seconds per call
}

/** The uncompressed payload body for `changes` (what LZ4 sees). */
function bodyOf(changes: Change[]): Uint8Array {
  const p = encodePayload(changes, { schemaHash: 0n })!;
  const dv = new DataView(p.buffer, p.byteOffset);
  const expanded = dv.getUint32(8);
  return expanded === 0 ? p.subarray(32) : lz4BlockDecompress(p.subarray(32), expanded);
}

/** Runs the benchmark on `n` changes and returns the result rows. */
export function runCodecBench(n = 100_000, iterations = 5): CodecBenchRow[] {
  const changes = makeChanges(n);
  const rows: CodecBenchRow[] = [];
  let payload: Uint8Array | null = null;
  const encS = time(iterations, () => {
    payload = encodePayload(changes, { schemaHash: 0n });
  });
  const p = payload! as Uint8Array;
  const decS = time(iterations, () => {
    decodePayload(p);
  });
  const body = bodyOf(changes);
  const mb = body.length / 1e6;
  rows.push({ name: 'encode (incl. LZ4 + checksum)', value: n / encS, unit: 'changes/s' });
  rows.push({ name: 'decode (incl. LZ4 + checksum)', value: n / decS, unit: 'changes/s' });
  rows.push({ name: 'wire bytes per change', value: p.length / n, unit: 'B' });
  rows.push({ name: 'raw body bytes per change', value: body.length / n, unit: 'B' });

  let own: Uint8Array | null = null;
  const ownC = time(iterations, () => {
    own = lz4BlockCompress(body);
  });
  const ownBlock = own! as Uint8Array;
  const ownD = time(iterations, () => {
    lz4BlockDecompress(ownBlock, body.length);
  });
  const table = new Uint32Array(1 << 16);
  const dst = new Uint8Array(lz4js.compressBound(body.length));
  let jsLen = 0;
  const jsC = time(iterations, () => {
    table.fill(0);
    jsLen = lz4js.compressBlock(body, dst, 0, body.length, table);
  });
  const jsBlock = dst.slice(0, jsLen);
  const out = new Uint8Array(body.length + 64);
  const jsD = time(iterations, () => {
    lz4js.decompressBlock(jsBlock, out, 0, jsBlock.length, 0);
  });
  rows.push({ name: 'LZ4 compress, own', value: mb / ownC, unit: 'MB/s' });
  rows.push({ name: 'LZ4 compress, lz4js', value: mb / jsC, unit: 'MB/s' });
  rows.push({ name: 'LZ4 decompress, own (checked)', value: mb / ownD, unit: 'MB/s' });
  rows.push({ name: 'LZ4 decompress, lz4js (unchecked)', value: mb / jsD, unit: 'MB/s' });
  rows.push({ name: 'LZ4 ratio, own', value: body.length / ownBlock.length, unit: 'x' });
  rows.push({ name: 'LZ4 ratio, lz4js', value: body.length / jsLen, unit: 'x' });
  return rows;
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('codec-bench.ts');
if (isMain) {
  const n = Number(process.argv[2] ?? 100_000);
  const rows = runCodecBench(n);
  console.log(`codec bench, ${n} changes`);
  console.table(rows.map((r) => ({ metric: r.name, value: Number(r.value.toPrecision(4)), unit: r.unit })));
}
