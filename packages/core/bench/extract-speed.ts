/**
 * Extraction / payload codec micro-bench (CPU time, A/B friendly):
 * `npx tsx bench/extract-speed.ts` in packages/core. The bench table and writes of core.bench.ts
 * (insert N, update one column of every row, delete 10%), in a database file kept across runs
 * (EXTRACT_BENCH_DB, default under the OS temp dir, per N) so that the payload bytes of two
 * builds can be compared by their printed SHA-256. BENCH_ROWS = N (default 100k), REPS = runs.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { decodePayload } from '@offsync/core';
import type { Change } from '@offsync/core';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const REPS = Number(process.env['REPS'] ?? 5);
const path = process.env['EXTRACT_BENCH_DB'] ?? join(tmpdir(), `offsync-extract-bench-${N}.db`);
const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

if (!existsSync(path)) {
  const e = openSyncDatabase(path);
  e.driver.exec(DDL);
  e.init('todos');
  const db = new Database(path);
  const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);
  const st = db.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < N; i++) st.run(ids[i], `todo number ${i}`, i % 2, i % 3 === 0 ? null : `note ${i}`);
  })();
  db.prepare("UPDATE todos SET title = title || ' (edited)'").run();
  db.prepare('DELETE FROM todos WHERE rowid % 10 = 0').run();
  db.close();
  e.foldPending();
  e.close?.();
}
const eng = openSyncDatabase(path);

function cpu(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const min = (xs: number[]): string => Math.min(...xs).toFixed(0);
const rate = (n: number, ms: number): string => `${Math.round(n / (ms / 1000)).toLocaleString('en-US')}/s`;

const tx: number[] = [];
const te: number[] = [];
const td: number[] = [];
const tf: number[] = [];
let changes: Change[] = [];
let payload: Uint8Array = new Uint8Array();
const feedEncode = (eng as unknown as { encodeFeed?: (req?: object) => Uint8Array | null }).encodeFeed;
for (let r = 0; r < REPS; r++) {
  tx.push(cpu(() => void (changes = [...eng.changes()])));
  te.push(cpu(() => void (payload = eng.encodeChanges(changes) ?? new Uint8Array())));
  td.push(cpu(() => void decodePayload(payload)));
  if (feedEncode !== undefined) {
    let p2: Uint8Array | null = null;
    tf.push(cpu(() => void (p2 = feedEncode.call(eng, {}))));
    if (p2 === null || Buffer.compare(p2, payload) !== 0) throw new Error('encodeFeed bytes differ from encodeChanges([...changes()])');
  }
}
const n = changes.length;
console.log(`changes ${n}, payload ${payload.length} B, sha256 ${createHash('sha256').update(payload).digest('hex').slice(0, 16)}`);
console.log(`extract          cpu median ${med(tx).toFixed(0)} ms (min ${min(tx)})  ${rate(n, med(tx))}   [${tx.map((x) => x.toFixed(0)).join(' ')}]`);
console.log(`encode           cpu median ${med(te).toFixed(0)} ms (min ${min(te)})  ${rate(n, med(te))}   [${te.map((x) => x.toFixed(0)).join(' ')}]`);
console.log(`extract+encode   cpu          ${(med(tx) + med(te)).toFixed(0)} ms  ${rate(n, med(tx) + med(te))}`);
console.log(`decode           cpu median ${med(td).toFixed(0)} ms (min ${min(td)})  ${rate(n, med(td))}   [${td.map((x) => x.toFixed(0)).join(' ')}]`);
if (tf.length > 0) console.log(`encodeFeed       cpu median ${med(tf).toFixed(0)} ms (min ${min(tf)})  ${rate(n, med(tf))}   [${tf.map((x) => x.toFixed(0)).join(' ')}]`);
