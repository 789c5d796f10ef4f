/**
 * Block columns marked by the control plane (deployTables options.blockColumns) with the REAL
 * native client 1.1.4 (test-only devDependency; docs/PROTOCOL.md "Block columns"): text that was
 * in the central table before the deploy reaches a device as line blocks, and devices' edits of
 * different lines both survive, in the central text too.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createAccessToken, startApp } from '../../../test/data-plane-fixtures.ts';
import type { RunningApp } from '../../../test/data-plane-fixtures.ts';
import { openSyncingDevice, receiveUntil as receiveBody, sendAll } from '../../../test/sync-fixtures/native-device.ts';
import type { NativeDevice } from '../../../test/sync-fixtures/native-device.ts';
import { sqliteDatabasePath } from '../databases/databases.service.ts';

const DDL = "CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";

let t: RunningApp;
let databaseId: string;
const devices: NativeDevice[] = [];

beforeAll(async () => {
  t = await startApp({ rateLimitPerSecond: 0 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "p", kind: SQLITE) { id } }');
  databaseId = (await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!) { createDatabase(projectId: $p, name: "app") { id } }', { p: p.createProject.id })).createDatabase.id;
  const file = new Database(sqliteDatabasePath(t.dataDir, databaseId));
  file.exec(DDL);
  file.prepare("INSERT INTO notes (id, title, body) VALUES ('n1', 'shopping', ?)").run('milk\nbread\neggs');
  file.close();
  const d = await t.gql<{ deployTables: { added: string[]; tables: { nodes: { name: string; blockColumns: string[] }[] } } }>(
    'mutation($d: ID!, $o: [TableDeployOptions!]) { deployTables(databaseId: $d, tables: ["notes"], options: $o) { added tables { nodes { name blockColumns } } } }',
    { d: databaseId, o: [{ table: 'notes', blockColumns: ['body'] }] },
  );
  expect(d.deployTables).toEqual({ added: ['notes'], tables: { nodes: [{ name: 'notes', blockColumns: ['body'] }] } });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
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

const centralBody = async (): Promise<unknown> => (await t.app.sync.databases.get(databaseId)).engine.driver.prepare("SELECT body FROM notes WHERE id = 'n1'").getRaw()?.[0];

test('text from before the deploy reaches 1.1.4 devices as line blocks; edits of different lines by two devices both survive', async () => {
  const a = await device('alice');
  const b = await device('bob');
  await receiveUntil(a, 'milk\nbread\neggs');
  await receiveUntil(b, 'milk\nbread\neggs');
  expect(await a.value('SELECT count(*) FROM notes_cloudsync_blocks')).toBe(3n);
  expect(await a.value("SELECT title FROM notes WHERE id = 'n1'")).toBe('shopping');

  await a.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\nbread\neggs');
  await b.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'milk\nbread\n6 eggs\njam');
  await send(a);
  await send(b);
  const merged = 'oat milk\nbread\n6 eggs\njam';
  expect(await centralBody()).toBe(merged);
  await receiveUntil(a, merged);
  await receiveUntil(b, merged);
}, 120_000);
