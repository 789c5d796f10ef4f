/**
 * `npx tsx bench/tracking.bench.ts`: the tracked-write rows of core.bench.ts alone (raw
 * better-sqlite3 vs OffSync's triggers, the same statements through a second connection), REPS
 * fresh repetitions, medians of the ratios in wall clock and in process CPU time (which other
 * load on the machine disturbs less); the fold of the log (engine/write-log.ts), and "the three
 * writes + fold" against the raw writes; the metadata bytes per live row by table/index after
 * the fold. `update 1-row` (one UPDATE per key, N in one transaction, after the three: the
 * deleted keys match nothing) is not one of the three: it shows the per-row trigger cost
 * without SQLite's one-pass multi-row UPDATE, which any UPDATE trigger turns off. For profiling
 * the change-tracking design; prints, never asserts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '../src/adapters/sqlite/index.ts';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const REPS = Number(process.env['BENCH_REPS'] ?? 3);
const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);

function openFile(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return db;
}
/** Wall clock and CPU time (user + system) of `fn`, in ms. */
function time(fn: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const c = process.cpuUsage(c0);
  return { wall: Number(process.hrtime.bigint() - t0) / 1e6, cpu: (c.user + c.system) / 1000 };
}
const ops: [string, (db: Database.Database) => void][] = [
  ['insert', (db) => {
    const st = db.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < N; i++) st.run(ids[i], `todo number ${i}`, i % 2, i % 3 === 0 ? null : `note ${i}`);
    })();
  }],
  ['update', (db) => void db.prepare("UPDATE todos SET title = title || ' (edited)'").run()],
  ['delete', (db) => void db.prepare('DELETE FROM todos WHERE rowid % 10 = 0').run()],
  ['update 1-row', (db) => {
    const st = db.prepare('UPDATE todos SET done = 1 - done WHERE id = ?');
    db.transaction(() => {
      for (let i = 0; i < N; i++) st.run(ids[i]);
    })();
  }],
];
const THREE = ['insert', 'update', 'delete'];
const ratios = new Map<string, { wall: number[]; cpu: number[] }>();
const push = (name: string, wall: number, cpu: number): void => {
  const r = ratios.get(name) ?? ratios.set(name, { wall: [], cpu: [] }).get(name);
  r?.wall.push(wall);
  r?.cpu.push(cpu);
};
const fold: number[] = [];
const foldCpu: number[] = [];
let meta: Record<string, number> = {};
for (let rep = 0; rep < REPS; rep++) {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-tbench-'));
  const raw = openFile(join(dir, 'raw.db'));
  raw.exec(DDL);
  const eng = openSyncDatabase(join(dir, 't.db'));
  eng.driver.exec(DDL);
  eng.init('todos');
  const tdb = openFile(join(dir, 't.db'));
  const sum = { raw: { wall: 0, cpu: 0 }, off: { wall: 0, cpu: 0 } };
  for (const [name, fn] of ops) {
    if (name === 'update 1-row') continue;
    const a = time(() => fn(raw));
    const b = time(() => fn(tdb));
    push(name, b.wall / a.wall, b.cpu / a.cpu);
    for (const [k, t] of [['raw', a], ['off', b]] as const) {
      sum[k].wall += t.wall;
      sum[k].cpu += t.cpu;
    }
  }
  const f = time(() => void eng.changes({ after: { dbVersion: Number.MAX_SAFE_INTEGER, seq: 0 } }).return(undefined));
  fold.push(f.wall);
  foldCpu.push(f.cpu);
  push('3 writes + fold', (sum.off.wall + f.wall) / sum.raw.wall, (sum.off.cpu + f.cpu) / sum.raw.cpu);
  const one = ops.find(([name]) => name === 'update 1-row')?.[1];
  if (one !== undefined) {
    const a = time(() => one(raw));
    const b = time(() => one(tdb));
    push('update 1-row', b.wall / a.wall, b.cpu / a.cpu);
    eng.foldPending();
  }
  const live = Number(tdb.prepare('SELECT count(*) FROM todos').pluck().get());
  meta = {};
  for (const r of tdb.prepare("SELECT name, SUM(pgsize) AS b FROM dbstat GROUP BY name").all() as { name: string; b: number }[]) {
    if (r.name.startsWith('sqlite_') && r.name !== 'sqlite_autoindex_todos_1') continue;
    meta[r.name] = Math.round(r.b / live);
  }
  raw.close();
  tdb.close();
  eng.close();
  rmSync(dir, { recursive: true, force: true });
}
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? NaN;
console.log(`N=${N} reps=${REPS}  (medians of OffSync / raw; ${THREE.join(', ')} in that order on one file, then the fold)`);
const list = (a: number[]): string => a.map((x) => x.toFixed(2)).join(' ');
for (const [k, v] of ratios) console.log(`${k.padEnd(16)} wall ${med(v.wall).toFixed(2)}×  cpu ${med(v.cpu).toFixed(2)}×  (wall ${list(v.wall)}; cpu ${list(v.cpu)})`);
console.log(`fold/feed-open   wall ${med(fold).toFixed(0)} ms  cpu ${med(foldCpu).toFixed(0)} ms`);
console.log('bytes per live row:', meta, 'metadata total', Object.entries(meta).filter(([k]) => k !== 'todos' && k !== 'sqlite_autoindex_todos_1').reduce((s, [, v]) => s + v, 0));
