/**
 * `npm run bench` in packages/core: the CRDT engine against raw better-sqlite3 doing the same
 * rows in the same run (file databases, WAL). Prints a table; never fails on timings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '../src/adapters/sqlite/index.ts';
import type { SyncEngine } from '../src/engine/engine.ts';
import type { Change } from '../src/types.ts';
import { decodePayload } from '../src/codec/payload.ts';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
const dir = mkdtempSync(join(tmpdir(), 'offsync-bench-'));
let peakRss = process.memoryUsage().rss;
const sample = (): void => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  sample();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function openRaw(name: string): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(DDL);
  return db;
}

function openTracked(name: string): SyncEngine {
  const e = openSyncDatabase(join(dir, name));
  e.driver.exec(DDL);
  e.init('todos');
  return e;
}

const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);
function insertAll(db: Database.Database): void {
  const st = db.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < N; i++) st.run(ids[i], `todo number ${i}`, i % 2, i % 3 === 0 ? null : `note ${i}`);
  })();
}
const updateAll = (db: Database.Database): void => void db.prepare("UPDATE todos SET title = title || ' (edited)'").run();
const deleteTenth = (db: Database.Database): void => void db.prepare("DELETE FROM todos WHERE rowid % 10 = 0").run();

const rows: { op: string; baseline: string; value: string; ratio: string }[] = [];
const ms = (x: number): string => `${x.toFixed(0)} ms`;
const rate = (n: number, t: number): string => `${Math.round(n / (t / 1000)).toLocaleString('en-US')}/s`;

const raw = openRaw('raw.db');
const eng = openTracked('tracked.db');
const engDb = (eng.driver as unknown as { exec(s: string): void });
void engDb;
// better-sqlite3 handle behind the engine, for identical statements.
const trackedDb = new Database(join(dir, 'tracked.db'));
trackedDb.pragma('journal_mode = WAL');
trackedDb.pragma('synchronous = NORMAL');

for (const [op, fn] of [
  ['insert (1 txn)', insertAll],
  ['update 1 column', updateAll],
  ['delete 10%', deleteTenth],
] as const) {
  const tRaw = time(() => fn(raw));
  const tTracked = time(() => fn(trackedDb));
  rows.push({ op: `tracked ${op}`, baseline: ms(tRaw), value: ms(tTracked), ratio: `${(tTracked / tRaw).toFixed(2)}× raw` });
}

let changes: Change[] = [];
const tExtract = time(() => {
  changes = [...eng.changes()];
});
rows.push({ op: 'extract all changes since 0', baseline: '-', value: rate(changes.length, tExtract), ratio: `${changes.length} changes` });

let payload: Uint8Array | null = null;
const tEncode = time(() => {
  payload = eng.encodeChanges(changes);
});
const bytes = (payload as Uint8Array | null)?.length ?? 0;
rows.push({ op: 'encode payload', baseline: '-', value: rate(changes.length, tEncode), ratio: `${(bytes / changes.length).toFixed(1)} bytes/change on the wire` });
const tDecode = time(() => void decodePayload(payload as unknown as Uint8Array));
rows.push({ op: 'decode payload', baseline: '-', value: rate(changes.length, tDecode), ratio: '' });

const target = openTracked('apply.db');
const rawApply = openRaw('raw-apply.db');
const live = raw.prepare("SELECT id, title, done, note FROM todos").all() as Record<string, unknown>[];
const tRawApply = time(() => {
  const st = rawApply.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  rawApply.transaction(() => {
    for (const r of live) st.run(r['id'], r['title'], r['done'], r['note']);
  })();
});
const tApply = time(() => void target.applyPayload(payload as unknown as Uint8Array));
rows.push({ op: 'apply payload into empty db', baseline: ms(tRawApply), value: rate(changes.length, tApply), ratio: `${(tApply / tRawApply).toFixed(2)}× raw insert of the rows` });

// Conflicting merge both ways: both replicas edit every surviving row, then exchange.
const a = target;
const b = openTracked('b.db');
b.applyPayload(payload as unknown as Uint8Array);
const dbA = new Database(join(dir, 'apply.db'));
const dbB = new Database(join(dir, 'b.db'));
dbA.prepare("UPDATE todos SET title = 'A' || title, done = 1 - done").run();
dbB.prepare("UPDATE todos SET title = 'B' || title").run();
const fromA = a.encodeChanges([...a.changes({ localOnly: true })]);
const fromB = b.encodeChanges([...b.changes({ localOnly: true })]);
let merged = 0;
const tConflict = time(() => {
  merged += b.applyPayload(fromA as Uint8Array).received;
  merged += a.applyPayload(fromB as Uint8Array).received;
});
rows.push({ op: 'conflicting merge both ways', baseline: '-', value: rate(merged, tConflict), ratio: `${merged} changes` });

const live2 = Number((trackedDb.prepare('SELECT count(*) AS n FROM todos').get() as { n: number }).n);
let metaBytes = 0;
try {
  metaBytes = Number((trackedDb.prepare("SELECT SUM(pgsize) AS s FROM dbstat WHERE name LIKE 'todos\\_\\_crdt%' ESCAPE '\\'").get() as { s: number }).s);
} catch {
  metaBytes = NaN;
}
const baseBytes = Number((trackedDb.prepare("SELECT SUM(pgsize) AS s FROM dbstat WHERE name = 'todos' OR name LIKE 'sqlite_autoindex_todos%'").get() as { s: number }).s);
rows.push({ op: 'metadata bytes per live row', baseline: `${(baseBytes / live2).toFixed(0)} B/row table`, value: `${(metaBytes / live2).toFixed(0)} B/row`, ratio: `${live2} live rows` });
rows.push({ op: 'peak RSS', baseline: '-', value: `${(peakRss / 2 ** 20).toFixed(0)} MiB`, ratio: '' });

console.log(`\n@offsync/core bench — N = ${N.toLocaleString('en-US')} rows, file databases in WAL mode, node ${process.version}\n`);
console.table(rows);
for (const d of [raw, trackedDb, rawApply, dbA, dbB]) d.close();
eng.close();
a.close();
b.close();
rmSync(dir, { recursive: true, force: true });
