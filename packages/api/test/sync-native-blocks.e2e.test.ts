/**
 * End-to-end with the REAL native client 1.1.4 (test-only devDependency): block-level LWW text
 * columns (`cloudsync_set_column('notes', 'body', 'algo', 'block')`, docs/PROTOCOL.md "Block
 * columns"). The device sends one cell per line (`body` U+001F position id); OffSync, with the
 * column marked block centrally, merges them per block, keeps the text in the central table and
 * sends the block cells on. Two devices edit, insert and delete different lines offline; after
 * syncing, every edit survives on both devices and in the central text; a server-side UPDATE of
 * the text reaches the devices as the right lines.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createAccessToken, setupDatabase, startApp } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { openSyncingDevice, receiveUntil as receiveBody, sendAll } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';

const DDL = "CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";

let t: RunningApp;
let databaseId: string;
const devices: NativeDevice[] = [];

beforeAll(async () => {
  t = await startApp({ rateLimitPerSecond: 0 });
  ({ databaseId } = await setupDatabase(t, DDL, ['notes']));
  (await t.app.sync.databases.get(databaseId)).engine.setBlockColumn('notes', 'body');
});

afterAll(async () => {
  for (const d of devices) await d.close();
  await t?.dispose();
});

async function device(user: string): Promise<NativeDevice> {
  const dev = await openSyncingDevice({ origin: t.origin, databaseId, ddl: DDL, table: 'notes', blockColumn: 'body', token: await createAccessToken(t, databaseId, user) });
  devices.push(dev);
  return dev;
}

async function send(dev: NativeDevice): Promise<void> {
  expect(await sendAll(dev)).toBe(0n);
}

async function receiveUntil(dev: NativeDevice, want: string): Promise<void> {
  expect(await receiveBody(dev, "SELECT body FROM notes WHERE id = 'n1'", want)).toBe(want);
}

const central = async (sql: string): Promise<unknown> => (await t.app.sync.databases.get(databaseId)).engine.driver.prepare(sql).getRaw()?.[0];

test('two 1.1.4 devices edit, insert and delete different lines of one block column offline: every edit survives on both and in the central text; a server-side UPDATE reaches them as the right lines', async () => {
  const a = await device('alice');
  const b = await device('bob');
  await a.value("INSERT INTO notes(id, title, body) VALUES ('n1', 'shopping', ?)", 'milk\nbread\neggs\nbutter');
  await send(a);
  // The device sent block cells, never the whole column: the central text is built from them.
  expect(await central("SELECT body FROM notes WHERE id = 'n1'")).toBe('milk\nbread\neggs\nbutter');
  expect(await central("SELECT count(*) FROM offsync_blocks WHERE tbl = 'notes' AND val IS NOT NULL")).toBe(4n);
  await receiveUntil(b, 'milk\nbread\neggs\nbutter');
  expect(await b.value("SELECT count(*) FROM notes_cloudsync_blocks")).toBe(4n);

  // Offline, concurrently: a edits line 1 and appends a line; b edits line 3 and deletes line 2.
  await a.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\nbread\neggs\nbutter\njam');
  await b.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'milk\n6 eggs\nbutter');
  const merged = 'oat milk\n6 eggs\nbutter\njam';
  await send(a);
  await send(b);
  expect(await central("SELECT body FROM notes WHERE id = 'n1'")).toBe(merged);
  await receiveUntil(a, merged);
  await receiveUntil(b, merged);
  expect(await a.value("SELECT title FROM notes WHERE id = 'n1'")).toBe('shopping');
  // The devices' own block tables agree line for line (position ids and values).
  const blocks = "SELECT group_concat(replace(col_name, char(31), '|') || '=' || col_value, ',') FROM (SELECT * FROM notes_cloudsync_blocks ORDER BY col_name)";
  expect(await a.value(blocks)).toBe(await b.value(blocks));
  // A third device starting from nothing gets the text from the block cells alone.
  const c = await device('carol');
  await receiveUntil(c, merged);
  expect(await c.value(blocks)).toBe(await a.value(blocks));

  // A server-side UPDATE of the text (another program on the central database) reaches the
  // devices as the right lines: kept lines keep their blocks, a device edits between them again.
  const engine = (await t.app.sync.databases.get(databaseId)).engine;
  engine.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('oat milk\ncoffee\n6 eggs\njam');
  const server = 'oat milk\ncoffee\n6 eggs\njam';
  await receiveUntil(a, server);
  await receiveUntil(b, server);
  expect(await a.value(blocks)).toBe(await b.value(blocks));
  expect(await a.value("SELECT group_concat(col_value, char(10)) FROM (SELECT col_value FROM notes_cloudsync_blocks ORDER BY col_name)")).toBe(server);
  await b.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\ncoffee\nsugar\n6 eggs\njam');
  await send(b);
  expect(await central("SELECT body FROM notes WHERE id = 'n1'")).toBe('oat milk\ncoffee\nsugar\n6 eggs\njam');
  await receiveUntil(a, 'oat milk\ncoffee\nsugar\n6 eggs\njam');
}, 120_000);
