/**
 * Extract + encode one payload of every change since 0, CPU time, OffSync next to the native
 * SQLite Sync 1.1.4 build on the bench table and writes of core.bench.ts (databases kept across
 * runs under the OS temp dir, per N): `npx tsx bench/extract-native.ts` in packages/core.
 * Prints, per run, OffSync's array path (`encodeChanges([...changes()])`), its streaming path
 * (`payloadEncoder()` fed by `changes()`, as download pages are built), `encodeFeed()` when the
 * engine has it, and `cloudsync_payload_encode` over `cloudsync_changes`. BENCH_ROWS, REPS.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '@offsync/core/sqlite';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const REPS = Number(process.env['REPS'] ?? 5);
const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);
function writeAll(db: Database.Database): void {
  const st = db.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < N; i++) st.run(ids[i], `todo number ${i}`, i % 2, i % 3 === 0 ? null : `note ${i}`);
  })();
  db.prepare("UPDATE todos SET title = title || ' (edited)'").run();
  db.prepare('DELETE FROM todos WHERE rowid % 10 = 0').run();
}

const ours = join(tmpdir(), `offsync-extract-bench-${N}.db`);
if (!existsSync(ours)) {
  const e = openSyncDatabase(ours);
  e.driver.exec(DDL);
  e.init('todos');
  const db = new Database(ours);
  writeAll(db);
  db.close();
  e.foldPending();
  e.close();
}
const extension = (createRequire(import.meta.url)('@sqliteai/sqlite-sync-linux-x86_64') as { path: string }).path;
const theirs = join(tmpdir(), `offsync-extract-bench-native-${N}.db`);
const fresh = !existsSync(theirs);
const native = new Database(theirs);
native.loadExtension(extension);
if (fresh) {
  native.exec(DDL);
  native.prepare("SELECT cloudsync_init('todos')").get();
  writeAll(native);
}
const eng = openSyncDatabase(ours);

function cpu(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}
const ENCODE_SQL = 'SELECT cloudsync_payload_encode(tbl, pk, col_name, col_value, col_version, db_version, site_id, cl, seq) FROM cloudsync_changes WHERE db_version > ?';
const feedEncode = (eng as unknown as { encodeFeed?: (req?: object) => Uint8Array | null }).encodeFeed;
const t: Record<string, number[]> = { array: [], stream: [], encodeFeed: [], native: [] };
let ref: Uint8Array | null = null;
for (let r = 0; r < REPS; r++) {
  t['array']?.push(cpu(() => void (ref = eng.encodeChanges([...eng.changes()]))));
  let p: Uint8Array | null = null;
  t['stream']?.push(
    cpu(() => {
      const enc = eng.payloadEncoder();
      for (const ch of eng.changes()) enc.add(ch);
      p = enc.finish();
    }),
  );
  if (p === null || ref === null || Buffer.compare(p, ref) !== 0) throw new Error('streamed payload differs');
  if (feedEncode !== undefined) {
    t['encodeFeed']?.push(cpu(() => void (p = feedEncode.call(eng, {}))));
    if (p === null || Buffer.compare(p, ref) !== 0) throw new Error('encodeFeed payload differs');
  }
  t['native']?.push(cpu(() => void native.prepare(ENCODE_SQL).pluck().get(0)));
}
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const nat = med(t['native'] ?? []);
for (const [k, xs] of Object.entries(t)) {
  if (xs.length === 0) continue;
  console.log(`${k.padEnd(11)} cpu median ${med(xs).toFixed(0).padStart(5)} ms (${(med(xs) / nat).toFixed(2)}× native)  [${xs.map((x) => x.toFixed(0)).join(' ')}]`);
}
native.close();
eng.close();
