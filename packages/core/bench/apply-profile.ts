/**
 * The two merge rows of bench/core.bench.ts on their own ("apply into an empty database" and
 * "conflicting merge both ways"), with CPU time (process.cpuUsage) beside wall time, for A/B runs
 * and profiles: `BENCH_ROWS=20000 node --cpu-prof --import tsx bench/apply-profile.ts`. Also the
 * slow-start pages of row 3b (`BENCH_PAGED=0` leaves them out).
 * Same rows, statements and file databases (WAL) as core.bench.ts. Never fails on timings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { decodePayload } from '@offsync/core';
import type { SyncEngine } from '@offsync/core';
import { slowStartPages } from './slow-start-pages.ts';

const N = Number(process.env['BENCH_ROWS'] ?? 100_000);
const REPEAT = Number(process.env['BENCH_REPEAT'] ?? 1);
const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
const dir = mkdtempSync(join(tmpdir(), 'offsync-apply-'));

function measure(fn: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

function openFile(name: string): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return db;
}

function openTracked(name: string): SyncEngine {
  const e = openSyncDatabase(join(dir, name));
  e.driver.exec(DDL);
  e.init('todos');
  return e;
}

const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);
const eng = openTracked('tracked.db');
const trackedDb = openFile('tracked.db');
{
  const st = trackedDb.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  trackedDb.transaction(() => {
    for (let i = 0; i < N; i++) st.run(ids[i], `todo number ${i}`, i % 2, i % 3 === 0 ? null : `note ${i}`);
  })();
  trackedDb.prepare("UPDATE todos SET title = title || ' (edited)'").run();
  trackedDb.prepare('DELETE FROM todos WHERE rowid % 10 = 0').run();
}
const changes = [...eng.changes()];
const payload = eng.encodeChanges(changes) ?? new Uint8Array();
const fmt = (n: number, t: number): string => `${Math.round(n / (t / 1000)).toLocaleString('en-US')}/s`;
const report = (label: string, n: number, m: { wall: number; cpu: number }): void =>
  console.log(`${label.padEnd(34)} ${String(n).padStart(7)} changes  wall ${m.wall.toFixed(0).padStart(5)} ms ${fmt(n, m.wall).padStart(10)}  cpu ${m.cpu.toFixed(0).padStart(5)} ms ${fmt(n, m.cpu).padStart(10)}`);

const dec = measure(() => void decodePayload(payload));
report('decode payload', changes.length, dec);

const best = { fresh: Infinity, paged: Infinity, conflict: Infinity };
// The slow-start pages of core.bench.ts row 3b (slow-start-pages.ts).
const pages = slowStartPages(changes);
let mergedN = 0;
for (let rep = 0; rep < REPEAT; rep++) {
  const a = openTracked(`a${rep}.db`);
  const fresh = measure(() => void a.applyPayload(payload));
  report('apply into an empty database', changes.length, fresh);
  best.fresh = Math.min(best.fresh, fresh.cpu);
  if (process.env['BENCH_PAGED'] !== '0') {
    const p = openTracked(`p${rep}.db`);
    const paged = measure(() => {
      for (const page of pages) p.applyChanges(page);
    });
    report(`apply into an empty db, ${pages.length} pages`, changes.length, paged);
    best.paged = Math.min(best.paged, paged.cpu);
    p.close();
  }

  const b = openTracked(`b${rep}.db`);
  b.applyPayload(payload);
  const dbA = openFile(`a${rep}.db`);
  const dbB = openFile(`b${rep}.db`);
  dbA.prepare("UPDATE todos SET title = 'A' || title, done = 1 - done").run();
  dbB.prepare("UPDATE todos SET title = 'B' || title").run();
  const fromA = a.encodeChanges([...a.changes({ localOnly: true })]) ?? new Uint8Array();
  const fromB = b.encodeChanges([...b.changes({ localOnly: true })]) ?? new Uint8Array();
  let merged = 0;
  const conflict = measure(() => {
    merged += b.applyPayload(fromA).received;
    merged += a.applyPayload(fromB).received;
  });
  report('conflicting merge both ways', merged, conflict);
  best.conflict = Math.min(best.conflict, conflict.cpu);
  mergedN = merged;
  dbA.close();
  dbB.close();
  a.close();
  b.close();
}
if (REPEAT > 1) {
  console.log(`best cpu of ${REPEAT}: apply into an empty database ${best.fresh.toFixed(0)} ms (${fmt(changes.length, best.fresh)}), ${best.paged === Infinity ? '' : `in pages ${best.paged.toFixed(0)} ms (${fmt(changes.length, best.paged)}), `}conflicting merge ${best.conflict.toFixed(0)} ms (${fmt(mergedN, best.conflict)})`);
}
trackedDb.close();
eng.close();
rmSync(dir, { recursive: true, force: true });
