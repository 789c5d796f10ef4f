/**
 * The SQL functions side by side with the real SQLite Sync extension 0.9.99 (`@sqliteai/sqlite-wasm`,
 * tests only): the same SQL on both, results and error texts compared. Values that are random by
 * design (site ids, uuids) or deliberately different (version: we implement 1.1.4's G3 network API;
 * db_version numbering) are compared by type and shape.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadHarness } from './fixtures/extension.ts';
import type { ExtensionDb, ExtensionModule } from './fixtures/extension.ts';
import { openDatabase } from '../src/sync/index.ts';
import type { OffSyncDatabase } from '../src/sync/index.ts';
import { removeTempDirs, tempPath } from './helpers.ts';

type Outcome = { ok: unknown } | { err: string };

let ext: ExtensionModule;
let theirs: ExtensionDb;
let ours: OffSyncDatabase;

const SETUP = [
  `CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)`,
  `CREATE TABLE r(a TEXT)`,
  `CREATE TABLE ip(id INTEGER PRIMARY KEY NOT NULL, a TEXT)`,
  `CREATE TABLE ip2(id INTEGER PRIMARY KEY, a TEXT)`,
  `CREATE TABLE nn(id TEXT PRIMARY KEY NOT NULL, a TEXT NOT NULL)`,
];

function norm(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Uint8Array) return `blob:${Buffer.from(v).toString('hex')}`;
  return v;
}

function runTheirs(sql: string): Outcome {
  try {
    return { ok: norm(theirs.value(sql)) };
  } catch (e) {
    return { err: (e as Error).message.replace(/^SQLITE_\w+: sqlite3 result code \d+: /, '') };
  }
}

function runOurs(sql: string): Outcome {
  try {
    const st = ours.db.prepare(sql);
    return { ok: st.reader ? norm(st.pluck().get()) : (st.run(), undefined) };
  } catch (e) {
    return { err: (e as Error).message };
  }
}

/** Runs on both and returns [theirs, ours]. */
function both(sql: string): [Outcome, Outcome] {
  return [runTheirs(sql), runOurs(sql)];
}

function same(sql: string): Outcome {
  const [t, o] = both(sql);
  expect(o, sql).toEqual(t);
  return o;
}

let closeExtension: () => Promise<void>;

beforeAll(async () => {
  const h = await loadHarness();
  closeExtension = () => h.closeExtension();
  ext = await h.openExtension();
  theirs = ext.openDb();
  ours = openDatabase(tempPath());
  for (const s of SETUP) {
    theirs.exec(s);
    ours.db.exec(s);
  }
});
afterAll(async () => {
  theirs.close();
  await ours.close();
  await closeExtension();
  removeTempDirs();
});

test('before init: siteid is 16 zero bytes, db_version fails with the same text', () => {
  same('SELECT cloudsync_siteid()');
  same('SELECT cloudsync_db_version()');
  const [t, o] = both('SELECT cloudsync_version()');
  for (const r of [t, o]) expect('ok' in r && typeof r.ok === 'string' && /^\d+\.\d+\.\d+$/.test(r.ok)).toBe(true);
});

test('cloudsync_init refuses the same tables with the same error texts', () => {
  for (const sql of [
    `SELECT cloudsync_init('r')`,
    `SELECT cloudsync_init('ip')`,
    `SELECT cloudsync_init('ip2', 'cls', 1)`,
    `SELECT cloudsync_init('nn')`,
    `SELECT cloudsync_init('nope')`,
    `SELECT cloudsync_init('todos', 'dws')`,
    `SELECT cloudsync_init('todos', 'xyz')`,
    `SELECT cloudsync_init()`,
    `SELECT cloudsync_init('todos', 'cls', 0, 1)`,
    `SELECT cloudsync_version(1)`,
  ]) {
    const o = same(sql);
    expect('err' in o, sql).toBe(true);
  }
});

test('flags: the third argument is the 1.0.9+ bitmask (2 skips the NOT NULL/DEFAULT rule); 0.9.99 read it as a boolean', () => {
  const [t, o] = both(`SELECT cloudsync_init('nn', 'cls', 2)`);
  expect(t).toEqual({ err: 'All non-primary key columns declared as NOT NULL must have a DEFAULT value. (table nn)' });
  expect('ok' in o).toBe(true);
  expect(runOurs(`SELECT cloudsync_cleanup('nn')`)).toEqual({ ok: null });
});

test('cloudsync_init returns the site id as 32 lowercase hex digits, equal to hex(cloudsync_siteid())', () => {
  const [t, o] = both(`SELECT cloudsync_init('todos')`);
  for (const [r, db] of [[t, 'theirs'], [o, 'ours']] as const) {
    expect('ok' in r && typeof r.ok === 'string' && /^[0-9a-f]{32}$/.test(r.ok), db).toBe(true);
  }
  expect(runOurs('SELECT lower(hex(cloudsync_siteid()))')).toEqual(o);
  expect(runTheirs('SELECT lower(hex(cloudsync_siteid()))')).toEqual(t);
  same(`SELECT typeof(cloudsync_siteid())`);
  same(`SELECT length(cloudsync_siteid())`);
  // Idempotent for the same algorithm (aliases included), refused for another one.
  const again = runOurs(`SELECT cloudsync_init('todos', 'CausalLengthSet')`);
  expect(again).toEqual(o);
  same(`SELECT cloudsync_init('todos', 'gos')`);
  same(`SELECT cloudsync_init('ip', 'cls', 1) = lower(hex(cloudsync_siteid()))`);
});

test('db_version is an integer that grows with local writes', () => {
  const [t0, o0] = both('SELECT cloudsync_db_version()');
  same(`INSERT INTO todos (id, title) VALUES ('a', 'x')`);
  const [t1, o1] = both('SELECT cloudsync_db_version()');
  for (const [a, b] of [[t0, t1], [o0, o1]] as const) {
    expect('ok' in a && 'ok' in b && typeof a.ok === 'number' && typeof b.ok === 'number' && b.ok > a.ok).toBe(true);
  }
  same(`SELECT typeof(cloudsync_db_version())`);
});

test('cloudsync_uuid: UUIDv7 text, strictly increasing in our client', () => {
  same(`SELECT typeof(cloudsync_uuid())`);
  same(`SELECT length(cloudsync_uuid())`);
  same(`SELECT cloudsync_uuid() = cloudsync_uuid()`);
  const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const [r] of [both('SELECT cloudsync_uuid()')]) expect('ok' in r && v7.test(String(r.ok))).toBe(true);
  const ids = ours.db.prepare('SELECT cloudsync_uuid() AS u FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT x FROM c)').pluck().all() as string[];
  for (const id of ids) expect(id).toMatch(v7);
  expect([...ids].sort()).toEqual(ids);
  expect(new Set(ids).size).toBe(ids.length);
});

test('is_enabled / enable / disable / cleanup answer like the extension', () => {
  for (const sql of [
    `SELECT cloudsync_is_enabled('todos')`,
    `SELECT cloudsync_disable('todos')`,
    `SELECT cloudsync_is_enabled('todos')`,
    `INSERT INTO todos (id) VALUES ('while-disabled')`,
    `SELECT cloudsync_enable('todos')`,
    `SELECT cloudsync_is_enabled('todos')`,
    `SELECT cloudsync_is_enabled('nope')`,
    `SELECT cloudsync_is_enabled('r')`,
    `SELECT cloudsync_enable('nope')`,
    `SELECT cloudsync_disable('nope')`,
    `SELECT cloudsync_cleanup('nope')`,
    `SELECT cloudsync_begin_alter('nope')`,
    `SELECT cloudsync_commit_alter('todos')`,
    `SELECT cloudsync_is_enabled()`,
  ]) same(sql);
});

test('schema alteration: begin_alter, ALTER TABLE, commit_alter', () => {
  for (const sql of [
    `SELECT cloudsync_begin_alter('todos')`,
    `ALTER TABLE todos ADD COLUMN note TEXT`,
    `SELECT cloudsync_commit_alter('todos')`,
    `SELECT cloudsync_commit_alter('todos')`,
    `INSERT INTO todos (id, title, note) VALUES ('after-alter', 'y', 'n')`,
    `SELECT cloudsync_is_enabled('todos')`,
  ]) same(sql);
  // The new column is tracked: a local change to send.
  const pending = [...ours.engine.changes({ localOnly: true })].filter((c) => c.col === 'note');
  expect(pending.length).toBeGreaterThan(0);
});

test('network bookkeeping without a network; cleanup and terminate', () => {
  for (const sql of [
    `SELECT cloudsync_network_reset_sync_version()`,
    `SELECT cloudsync_network_send_changes()`,
    `SELECT cloudsync_network_set_token('t')`,
    `SELECT cloudsync_network_set_apikey('k')`,
    `SELECT cloudsync_cleanup('todos')`,
    `SELECT cloudsync_is_enabled('todos')`,
    `SELECT cloudsync_cleanup('todos')`,
    `SELECT cloudsync_terminate()`,
  ]) same(sql);
  expect(runOurs(`SELECT cloudsync_network_init_custom('not a url', 'db')`)).toEqual({ err: 'URL parse error' });
  expect(runOurs(`SELECT cloudsync_network_init('db_x')`)).toEqual({ ok: 0 });
});

test('the SQL API refuses to run inside an open write transaction of the app connection', () => {
  ours.db.exec('BEGIN');
  try {
    expect(runOurs(`SELECT cloudsync_init('ip', 'cls', 1)`)).toEqual({ err: expect.stringMatching(/inside an open transaction/) as unknown });
  } finally {
    ours.db.exec('ROLLBACK');
  }
});
