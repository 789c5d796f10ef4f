/**
 * `npm run bench` in packages/core: in one run, raw better-sqlite3, OffSync and the native
 * SQLite Sync 1.1.4 build (devDependency `@sqliteai/sqlite-sync-linux-x86_64`, loaded into
 * better-sqlite3 as an extension; bench and tests only) doing the same rows (file databases, WAL).
 * Prints a table with ratios; never fails on timings. BENCH_ROWS overrides N.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '../src/adapters/sqlite/index.ts';
import { decodePayload } from '../src/index.ts';
import type { SyncEngine, Change } from '../src/index.ts';
import { slowStartPages } from './slow-start-pages.ts';

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

function openFile(name: string): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  return db;
}

function openRaw(name: string): Database.Database {
  const db = openFile(name);
  db.exec(DDL);
  return db;
}

function openTracked(name: string): SyncEngine {
  const e = openSyncDatabase(join(dir, name));
  e.driver.exec(DDL);
  e.init('todos');
  return e;
}

/** The native extension's path, or undefined when the package is not installed. */
function nativeExtension(): string | undefined {
  try {
    return (createRequire(import.meta.url)('@sqliteai/sqlite-sync-linux-x86_64') as { path: string }).path;
  } catch {
    return undefined;
  }
}
const extension = nativeExtension();

function openNative(name: string): Database.Database {
  const db = openFile(name);
  db.loadExtension(extension as string);
  db.exec(DDL);
  db.prepare("SELECT cloudsync_init('todos')").get();
  return db;
}

const ids = Array.from({ length: N }, (_, i) => `018f${i.toString(16).padStart(8, '0')}-7c3a-4b1e-9d2f-${(i * 7919).toString(16).padStart(12, '0')}`);
function insertAll(db: Database.Database): void {
  const st = db.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < N; i++) st.run(ids[i], `todo number ${i}`, i % 2, i % 3 === 0 ? null : `note ${i}`);
  })();
}
const updateAll = (db: Database.Database): void => void db.prepare("UPDATE todos SET title = title || ' (edited)'").run();
const deleteTenth = (db: Database.Database): void => void db.prepare('DELETE FROM todos WHERE rowid % 10 = 0').run();

interface Row {
  operation: string;
  raw: string;
  offsync: string;
  'sqlite-sync 1.1.4': string;
  'offsync vs raw': string;
  'offsync vs sqlite-sync': string;
}
const rows: Row[] = [];
const ms = (x: number): string => `${x.toFixed(0)} ms`;
const rate = (n: number, t: number): string => `${Math.round(n / (t / 1000)).toLocaleString('en-US')}/s`;
const x = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '-');
const NA = 'not installed';

const raw = openRaw('raw.db');
const eng = openTracked('tracked.db');
// better-sqlite3 handle behind the engine, for identical statements.
const trackedDb = openFile('tracked.db');
const native = extension === undefined ? undefined : openNative('native.db');

// 1. Tracked writes: the same statements on the three databases. OffSync's triggers append to
// the write log; the fold into the clock tables (engine/write-log.ts) is timed on its own below.
const totals = { raw: 0, off: 0, nat: 0 };
for (const [op, fn] of [
  ['tracked insert (1 txn)', insertAll],
  ['update 1 column of every row', updateAll],
  ['delete 10%', deleteTenth],
] as const) {
  const tRaw = time(() => fn(raw));
  const tOff = time(() => fn(trackedDb));
  const tNat = native === undefined ? NaN : time(() => fn(native));
  totals.raw += tRaw;
  totals.off += tOff;
  totals.nat += tNat;
  rows.push({ operation: op, raw: ms(tRaw), offsync: ms(tOff), 'sqlite-sync 1.1.4': native === undefined ? NA : ms(tNat), 'offsync vs raw': x(tOff, tRaw), 'offsync vs sqlite-sync': x(tOff, tNat) });
}
// The fold of everything the three statements logged (what the next feed read or merge would do).
const tFold = time(() => void eng.foldPending());
rows.push({
  operation: 'the three writes + fold of the write log',
  raw: ms(totals.raw),
  offsync: `${ms(totals.off + tFold)} (fold ${ms(tFold)})`,
  'sqlite-sync 1.1.4': native === undefined ? NA : ms(totals.nat),
  'offsync vs raw': x(totals.off + tFold, totals.raw),
  'offsync vs sqlite-sync': x(totals.off + tFold, totals.nat),
});

// 2. Extraction of every change since 0, then the payload codec. Rows 4 and 5 give wall time, like
// every other row, and beside it the CPU time of this process (user + system, GC threads
// included; both sides run in it): on a shared machine wall time there mostly measures the
// neighbours, on a quiet one CPU time charges OffSync for V8's parallel GC.
/** CPU time (ms) of the last {@link timeWithCpu}. */
let lastCpu = NaN;
/** {@link time}, noting the process CPU time it took in {@link lastCpu}. */
function timeWithCpu(fn: () => void): number {
  const c0 = process.cpuUsage();
  const wall = time(fn);
  const c = process.cpuUsage(c0);
  lastCpu = (c.user + c.system) / 1000;
  return wall;
}
let changes: Change[] = [];
const tExtract = timeWithCpu(() => {
  changes = [...eng.changes()];
});
const cExtract = lastCpu;
const CHANGES_SQL = 'SELECT tbl, pk, col_name, col_value, col_version, db_version, site_id, cl, seq FROM cloudsync_changes WHERE db_version > ?';
let nativeCount = 0;
const tNatExtract = native === undefined ? NaN : timeWithCpu(() => void (nativeCount = native.prepare(CHANGES_SQL).raw().all(0).length));
const cNatExtract = native === undefined ? NaN : lastCpu;
rows.push({
  operation: 'extract all changes since 0 (changes/s)',
  raw: '-',
  offsync: `${rate(changes.length, tExtract)} (${changes.length})`,
  'sqlite-sync 1.1.4': native === undefined ? NA : `${rate(nativeCount, tNatExtract)} (${nativeCount})`,
  'offsync vs raw': '-',
  'offsync vs sqlite-sync': `${x(tExtract / changes.length, tNatExtract / nativeCount)} time/change (CPU ${x(cExtract / changes.length, cNatExtract / nativeCount)})`,
});

// Row 5 is the path download pages take: the feed written straight into one payload
// (engine `encodeFeed`, a `FeedCursor` into a `PayloadEncoder`: no Change object, no array),
// which must give the bytes of `encodeChanges([...changes()])`.
let payload: Uint8Array = new Uint8Array();
const tExtractEncode = timeWithCpu(() => {
  payload = eng.encodeFeed() ?? new Uint8Array();
});
const cExtractEncode = lastCpu;
if (Buffer.compare(payload, eng.encodeChanges(changes) ?? new Uint8Array()) !== 0) throw new Error('encodeFeed() differs from encodeChanges([...changes()])');
const ENCODE_SQL = 'SELECT cloudsync_payload_encode(tbl, pk, col_name, col_value, col_version, db_version, site_id, cl, seq) FROM cloudsync_changes WHERE db_version > ?';
let nativePayload: Uint8Array = new Uint8Array();
const tNatEncode = native === undefined ? NaN : timeWithCpu(() => void (nativePayload = native.prepare(ENCODE_SQL).pluck().get(0) as Uint8Array));
const cNatEncode = native === undefined ? NaN : lastCpu;
rows.push({
  operation: 'extract + encode one payload (changes/s)',
  raw: '-',
  offsync: `${rate(changes.length, tExtractEncode)} (${(payload.length / changes.length).toFixed(1)} B/change)`,
  'sqlite-sync 1.1.4': native === undefined ? NA : `${rate(nativeCount, tNatEncode)} (${(nativePayload.length / nativeCount).toFixed(1)} B/change)`,
  'offsync vs raw': '-',
  'offsync vs sqlite-sync': `${x(tExtractEncode / changes.length, tNatEncode / nativeCount)} time/change (CPU ${x(cExtractEncode / changes.length, cNatEncode / nativeCount)})`,
});
const tDecode = time(() => void decodePayload(payload));
rows.push({ operation: 'decode payload (changes/s)', raw: '-', offsync: rate(changes.length, tDecode), 'sqlite-sync 1.1.4': '-', 'offsync vs raw': '-', 'offsync vs sqlite-sync': '-' });

// 3. Apply everything into an empty database (rows with updated cells, deletions).
const target = openTracked('apply.db');
const rawApply = openRaw('raw-apply.db');
const live = raw.prepare('SELECT id, title, done, note FROM todos').all() as Record<string, unknown>[];
const tRawApply = time(() => {
  const st = rawApply.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  rawApply.transaction(() => {
    for (const r of live) st.run(r['id'], r['title'], r['done'], r['note']);
  })();
});
const tApply = time(() => void target.applyPayload(payload));
const nativeTarget = native === undefined ? undefined : openNative('native-apply.db');
const APPLY_SQL = 'SELECT cloudsync_payload_apply(?)';
const tNatApply = nativeTarget === undefined ? NaN : time(() => void nativeTarget.prepare(APPLY_SQL).get(nativePayload));
rows.push({
  operation: 'apply into an empty database (changes/s)',
  raw: `${rate(live.length, tRawApply)} rows`,
  offsync: rate(changes.length, tApply),
  'sqlite-sync 1.1.4': nativeTarget === undefined ? NA : rate(nativeCount, tNatApply),
  'offsync vs raw': `${x(tApply, tRawApply)} time`,
  'offsync vs sqlite-sync': x(tApply / changes.length, tNatApply / nativeCount) + ' time/change',
});

// 3b. The same changes in slow-start pages, as a fresh device's initial sync receives them (the
// server's pages grow ×2; here 4,096 changes, then ×2, cut between rows), one merge per page.
const paged = openTracked('apply-paged.db');
const pages = slowStartPages(changes);
const tPaged = time(() => {
  for (const p of pages) paged.applyChanges(p);
});
paged.close();
rows.push({
  operation: `apply into an empty database in ${pages.length} pages (changes/s)`,
  raw: '-',
  offsync: rate(changes.length, tPaged),
  'sqlite-sync 1.1.4': '-',
  'offsync vs raw': `${x(tPaged, tRawApply)} time`,
  'offsync vs sqlite-sync': '-',
});

// 4. Conflicting merge both ways: both replicas edit every surviving row, then exchange.
const a = target;
const b = openTracked('b.db');
b.applyPayload(payload);
const dbA = openFile('apply.db');
const dbB = openFile('b.db');
dbA.prepare("UPDATE todos SET title = 'A' || title, done = 1 - done").run();
dbB.prepare("UPDATE todos SET title = 'B' || title").run();
const fromA = a.encodeChanges([...a.changes({ localOnly: true })]) ?? new Uint8Array();
const fromB = b.encodeChanges([...b.changes({ localOnly: true })]) ?? new Uint8Array();
let merged = 0;
const tConflict = time(() => {
  merged += b.applyPayload(fromA).received;
  merged += a.applyPayload(fromB).received;
});
let natMerged = 0;
let tNatConflict = NaN;
if (nativeTarget !== undefined) {
  const nb = openNative('native-b.db');
  nb.prepare(APPLY_SQL).get(nativePayload);
  const since = (d: Database.Database): number => Number(d.prepare('SELECT cloudsync_db_version()').pluck().get());
  const va = since(nativeTarget);
  const vb = since(nb);
  nativeTarget.prepare("UPDATE todos SET title = 'A' || title, done = 1 - done").run();
  nb.prepare("UPDATE todos SET title = 'B' || title").run();
  const count = (d: Database.Database, v: number): number => Number(d.prepare('SELECT count(*) FROM cloudsync_changes WHERE db_version > ?').pluck().get(v));
  natMerged = count(nativeTarget, va) + count(nb, vb);
  const pa = nativeTarget.prepare(ENCODE_SQL).pluck().get(va) as Uint8Array;
  const pb = nb.prepare(ENCODE_SQL).pluck().get(vb) as Uint8Array;
  tNatConflict = time(() => {
    nb.prepare(APPLY_SQL).get(pa);
    nativeTarget.prepare(APPLY_SQL).get(pb);
  });
  nb.close();
}
rows.push({
  operation: 'conflicting merge both ways (changes/s)',
  raw: '-',
  offsync: `${rate(merged, tConflict)} (${merged})`,
  'sqlite-sync 1.1.4': nativeTarget === undefined ? NA : `${rate(natMerged, tNatConflict)} (${natMerged})`,
  'offsync vs raw': '-',
  'offsync vs sqlite-sync': x(tConflict / merged, tNatConflict / natMerged) + ' time/change',
});

// 5. Metadata: every page that is not the base table, its key index or SQLite's own schema.
function metaPerRow(d: Database.Database): { meta: number; base: number; live: number } {
  const liveRows = Number(d.prepare('SELECT count(*) FROM todos').pluck().get());
  const sum = (where: string): number => Number(d.prepare(`SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE ${where}`).pluck().get());
  // (The base table's own autoindexes only: `sqlite_autoindex_todos__crdt_rows_1`, the clock
  // records' UNIQUE(pk), is metadata.)
  const base = "(name = 'todos' OR name GLOB 'sqlite_autoindex_todos_[0-9]*')";
  try {
    return { meta: sum(`NOT ${base} AND name NOT IN ('sqlite_schema', 'sqlite_master', 'sqlite_stat1')`) / liveRows, base: sum(base) / liveRows, live: liveRows };
  } catch {
    return { meta: NaN, base: NaN, live: liveRows };
  }
}
const mOff = metaPerRow(trackedDb);
const mNat = native === undefined ? undefined : metaPerRow(native);
rows.push({
  operation: 'CRDT metadata per live row',
  raw: `0 B (table ${mOff.base.toFixed(0)} B)`,
  offsync: `${mOff.meta.toFixed(0)} B`,
  'sqlite-sync 1.1.4': mNat === undefined ? NA : `${mNat.meta.toFixed(0)} B`,
  'offsync vs raw': '-',
  'offsync vs sqlite-sync': mNat === undefined ? '-' : x(mOff.meta, mNat.meta),
});
rows.push({ operation: 'peak RSS', raw: '-', offsync: `${(peakRss / 2 ** 20).toFixed(0)} MiB (whole process)`, 'sqlite-sync 1.1.4': '-', 'offsync vs raw': '-', 'offsync vs sqlite-sync': '-' });

console.log(`\n@offsync/core bench — N = ${N.toLocaleString('en-US')} rows, file databases in WAL mode, node ${process.version}${extension === undefined ? ' (native SQLite Sync not installed)' : ''}\n`);
console.table(rows);
for (const d of [raw, trackedDb, rawApply, dbA, dbB, native, nativeTarget]) d?.close();
eng.close();
a.close();
b.close();
rmSync(dir, { recursive: true, force: true });
