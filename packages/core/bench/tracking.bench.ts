/**
 * `npx tsx bench/tracking.bench.ts`: the tracked-write rows of core.bench.ts alone (raw
 * better-sqlite3 vs OffSync's triggers, the same statements through a second connection), REPS
 * fresh repetitions, medians of the ratios, plus the metadata bytes per live row by table/index
 * after the fold. For profiling the change-tracking design; prints, never asserts.
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
function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
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
];
const ratios = new Map<string, number[]>();
const fold: number[] = [];
let meta: Record<string, number> = {};
for (let rep = 0; rep < REPS; rep++) {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-tbench-'));
  const raw = openFile(join(dir, 'raw.db'));
  raw.exec(DDL);
  const eng = openSyncDatabase(join(dir, 't.db'));
  eng.driver.exec(DDL);
  eng.init('todos');
  const tdb = openFile(join(dir, 't.db'));
  for (const [name, fn] of ops) {
    const a = time(() => fn(raw));
    const b = time(() => fn(tdb));
    (ratios.get(name) ?? ratios.set(name, []).get(name))?.push(b / a);
  }
  fold.push(time(() => void eng.changes({ after: { dbVersion: Number.MAX_SAFE_INTEGER, seq: 0 } }).return(undefined)));
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
console.log(`N=${N} reps=${REPS}`);
for (const [k, v] of ratios) console.log(`${k.padEnd(8)} ${med(v).toFixed(2)}× raw  (${v.map((x) => x.toFixed(2)).join(' ')})`);
console.log(`fold/feed-open ${med(fold).toFixed(0)} ms`);
console.log('bytes per live row:', meta, 'metadata total', Object.entries(meta).filter(([k]) => k !== 'todos' && k !== 'sqlite_autoindex_todos_1').reduce((s, [, v]) => s + v, 0));
