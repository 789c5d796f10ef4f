/**
 * Golden tests against the REAL native client 1.1.4 (`@sqliteai/sqlite-sync-linux-x86_64`, a
 * test-only devDependency, in a worker thread) and OffSync's client side by side, through an
 * in-process OffSync sync server: block-level LWW text columns (docs/PROTOCOL.md "Block columns").
 * One native device and one OffSync client, both with `cloudsync_set_column('notes', 'body',
 * 'algo', 'block')`, edit, insert and delete different lines of one text offline; after syncing,
 * every edit survives on both devices and in the central table's text, and both hold the same
 * blocks (position ids and values).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openNativeDevice } from '../../api/test/sync-fixtures/native-device.ts';
import type { NativeDevice } from '../../api/test/sync-fixtures/native-device.ts';
import { openDatabase } from '../src/sync/index.ts';
import type { OffSyncDatabase } from '../src/sync/index.ts';
import { API_KEY, createSyncServer, listen } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { removeTempDirs, tempPath } from './helpers.ts';

const DDL = "CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";
const DB = 'db_blocks';

let server: SyncServer;
let origin: string;
const natives: NativeDevice[] = [];
const ours: OffSyncDatabase[] = [];

beforeAll(async () => {
  server = createSyncServer({ databaseId: DB, schema: { ddl: [DDL], tables: ['notes'], blockColumns: [['notes', 'body']] } });
  origin = `http://127.0.0.1:${await listen(server.server)}`;
});

afterAll(async () => {
  for (const n of natives) await n.close();
  for (const d of ours) await d.close();
  await server?.close();
  removeTempDirs();
});

async function nativeDevice(): Promise<NativeDevice> {
  const n = await openNativeDevice();
  natives.push(n);
  expect(await n.value('SELECT cloudsync_version()')).toBe('1.1.4');
  await n.exec(DDL);
  await n.value("SELECT cloudsync_init('notes')");
  expect(await n.value("SELECT cloudsync_set_column('notes', 'body', 'algo', 'block')")).toBeNull();
  await n.value('SELECT cloudsync_network_init_custom(?, ?)', origin, DB);
  await n.value('SELECT cloudsync_network_set_apikey(?)', API_KEY);
  return n;
}

function offsyncDevice(path = tempPath()): OffSyncDatabase {
  const d = openDatabase(path, { apiKey: API_KEY, serverUrl: origin, databaseId: DB });
  ours.push(d);
  d.db.exec(DDL);
  d.db.prepare("SELECT cloudsync_init('notes')").get();
  expect(d.db.prepare("SELECT cloudsync_set_column('notes', 'body', 'algo', 'block')").pluck().get()).toBeNull();
  return d;
}

async function nativeSync(n: NativeDevice): Promise<void> {
  for (let i = 0; i < 5 && (await n.value('SELECT cloudsync_network_has_unsent_changes()')) !== 0n; i++) await n.value('SELECT cloudsync_network_send_changes()');
  expect(await n.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
  await n.value('SELECT cloudsync_network_receive_changes()');
}

const BODY = "SELECT body FROM notes WHERE id = 'n1'";
const nativeBody = async (n: NativeDevice): Promise<unknown> => n.value(BODY);
const ourBody = (d: OffSyncDatabase): unknown => d.db.prepare(BODY).pluck().get();
const centralBody = (): unknown => server.central(BODY)[0]?.['body'];

/** Live blocks as `pos=value`, in position order. */
async function nativeBlocks(n: NativeDevice): Promise<string[]> {
  const rows = await n.all("SELECT substr(col_name, instr(col_name, char(31)) + 1) AS pos, col_value AS val FROM notes_cloudsync_blocks WHERE col_value IS NOT NULL ORDER BY pos");
  return rows.map((r) => `${String(r['pos'])}=${String(r['val'])}`);
}
function ourBlocks(d: OffSyncDatabase): string[] {
  const rows = d.engine.driver.prepare("SELECT pos, val FROM offsync_blocks WHERE tbl = 'notes' AND val IS NOT NULL ORDER BY pos").all();
  return rows.map((r) => `${String(r['pos'])}=${String(r['val'])}`);
}

/** Syncs both until both show `want` (each pass: native sends/receives, ours syncs). */
async function converge(n: NativeDevice, d: OffSyncDatabase, want: string): Promise<void> {
  for (let i = 0; i < 4 && ((await nativeBody(n)) !== want || ourBody(d) !== want); i++) {
    await nativeSync(n);
    await d.sync();
  }
  expect(centralBody()).toBe(want);
  expect(await nativeBody(n)).toBe(want);
  expect(ourBody(d)).toBe(want);
  expect(ourBlocks(d)).toEqual(await nativeBlocks(n));
}

test('a 1.1.4 device and an OffSync client edit, insert and delete different lines of one block column offline: every edit survives on both and in the central text', async () => {
  const n = await nativeDevice();
  const path = tempPath();
  let d = offsyncDevice(path);

  // The native device writes the text; OffSync's client gets it as blocks.
  await n.value("INSERT INTO notes(id, title, body) VALUES ('n1', 'shopping', ?)", 'milk\nbread\neggs\nbutter');
  await nativeSync(n);
  expect(centralBody()).toBe('milk\nbread\neggs\nbutter');
  await d.sync();
  expect(ourBody(d)).toBe('milk\nbread\neggs\nbutter');
  expect(ourBlocks(d)).toEqual(['a0=milk', 'a1=bread', 'a2=eggs', 'a3=butter']);
  expect(ourBlocks(d)).toEqual(await nativeBlocks(n));

  // Offline, concurrently: the native device edits line 1 and appends a line; OffSync's client
  // edits line 3 and deletes line 2 — with plain SQL on the app connection.
  await n.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\nbread\neggs\nbutter\njam');
  d.db.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('milk\n6 eggs\nbutter');
  // What OffSync's client sends for it: block cells only, never the whole text.
  const pending = [...d.session.ownChanges({ dbVersion: d.settings.get('send_dbversion'), seq: Number.MAX_SAFE_INTEGER })];
  expect(pending.map((c) => c.col.replace('\u001f', '|')).sort()).toEqual(['body|a1', 'body|a2', 'body|a2V']);
  await converge(n, d, 'oat milk\n6 eggs\nbutter\njam');
  expect(d.db.prepare("SELECT title FROM notes WHERE id = 'n1'").pluck().get()).toBe('shopping');

  // Line inserts and deletes on both sides: OffSync's client inserts a line at the top and one
  // after "6 eggs"; the native device deletes "jam" and inserts a line after "oat milk".
  d.db.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('LIST\noat milk\n6 eggs\nflour\nbutter\njam');
  await n.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\ncoffee\n6 eggs\nbutter');
  await converge(n, d, 'LIST\noat milk\ncoffee\n6 eggs\nflour\nbutter');

  // Reopened, OffSync's client still treats the column as block (kept in its database).
  await d.close();
  d = openDatabase(path, { apiKey: API_KEY, serverUrl: origin, databaseId: DB });
  ours.push(d);
  expect(d.engine.blockColumns('notes')).toEqual(['body']);
  d.db.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('LIST\noat milk\ncoffee\n6 eggs\nflour\nsalted butter');
  await n.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'list\noat milk\ncoffee\n6 eggs\nflour\nbutter');
  await converge(n, d, 'list\noat milk\ncoffee\n6 eggs\nflour\nsalted butter');

  // A new OffSync client starting from nothing gets the text from the block cells alone.
  const e = offsyncDevice();
  await e.sync();
  expect(ourBody(e)).toBe('list\noat milk\ncoffee\n6 eggs\nflour\nsalted butter');
  expect(ourBlocks(e)).toEqual(ourBlocks(d));
}, 120_000);

test('cloudsync_text_materialize answers like 1.1.4: 1, the text from the blocks, and the same errors', async () => {
  const n = await nativeDevice();
  const d = offsyncDevice();
  const text = 'one\ntwo';
  await n.value("INSERT INTO notes(id, body) VALUES ('m1', ?)", text);
  d.db.prepare("INSERT INTO notes(id, body) VALUES ('m1', ?)").run(text);
  const cases = [
    "SELECT cloudsync_text_materialize('notes', 'body', 'm1')",
    "SELECT cloudsync_text_materialize('notes', 'title', 'm1')",
    "SELECT cloudsync_text_materialize('nope', 'body', 'm1')",
    "SELECT cloudsync_text_materialize('notes', 'body')",
    "SELECT cloudsync_text_materialize('notes', 'body', 'm1', 'x')",
    "SELECT cloudsync_text_materialize('notes', 'body', NULL)",
    "SELECT cloudsync_text_materialize('notes', 'body', 'missing')",
    "SELECT cloudsync_set_column('notes', 'nope', 'algo', 'block')",
    "SELECT cloudsync_set_column('nope', 'body', 'algo', 'block')",
    "SELECT cloudsync_set_column('notes', 'id', 'algo', 'block')",
    "SELECT cloudsync_set_column('notes', 'title', 'algo', 'lww')",
    "SELECT cloudsync_set_column('notes', 'body')",
  ];
  for (const sql of cases) {
    const theirs = await n.value(sql).then(
      (v) => ({ ok: typeof v === 'bigint' ? Number(v) : v }),
      (e: Error) => ({ err: e.message }),
    );
    let mine: { ok: unknown } | { err: string };
    try {
      const v: unknown = d.db.prepare(sql).pluck().get();
      mine = { ok: typeof v === 'bigint' ? Number(v) : v };
    } catch (e) {
      mine = { err: (e as Error).message };
    }
    expect(mine, sql).toEqual(theirs);
  }
  expect(d.db.prepare("SELECT body FROM notes WHERE id = 'm1'").pluck().get()).toBe(text);
  // 1.1.4 cuts blocks at a configured delimiter; OffSync's blocks are lines: refused, not ignored.
  expect(await n.value("SELECT cloudsync_set_column('notes', 'body', 'delimiter', '|')")).toBeNull();
  expect(() => d.db.prepare("SELECT cloudsync_set_column('notes', 'body', 'delimiter', '|')").get()).toThrow(/split at \\n only/);
  expect(d.db.prepare("SELECT cloudsync_set_column('notes', 'body', 'delimiter', char(10))").pluck().get()).toBeNull();
  // The app's own unsynced edit is kept: it becomes blocks first.
  d.db.prepare("UPDATE notes SET body = ? WHERE id = 'm1'").run('one\n2\ntwo');
  expect(d.db.prepare("SELECT cloudsync_text_materialize('notes', 'body', 'm1')").pluck().get()).toBe(1);
  expect(d.db.prepare("SELECT body FROM notes WHERE id = 'm1'").pluck().get()).toBe('one\n2\ntwo');
  // Blocks changed behind the text (as a merge would leave them) are written into the column.
  d.engine.driver.prepare("UPDATE offsync_blocks SET val = 'ONE' WHERE tbl = 'notes' AND val = 'one'").run();
  expect(d.db.prepare("SELECT cloudsync_text_materialize('notes', 'body', 'm1')").pluck().get()).toBe(1);
  expect(d.db.prepare("SELECT body FROM notes WHERE id = 'm1'").pluck().get()).toBe('ONE\n2\ntwo');
}, 60_000);
