/**
 * The real clients through a POSTGRES database (issue 10, "How we will know"): the wasm build
 * 0.9.99 (protocol G2a, URL uploads, `@sqliteai/sqlite-wasm`) and the native 1.1.4 build (G3) —
 * both test-only devDependencies — sync with an API key through the app, whose central database is
 * PostgreSQL (TEST_DATABASE_URL, else PGlite), served from a worker thread (the wasm client blocks
 * this thread in synchronous XHR). A row written with psql reaches both; the mixed fleet converges
 * to exactly what PostgreSQL holds.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { closeExtension, openExtension, startServerInWorker } from '@offsync/core/testing';
import type { ExtensionDb, ExtensionModule, WorkerServer } from '@offsync/core/testing';
import { openSyncingDevice, sendAll } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';
import { PG_TODOS_DDL } from './sync-fixtures/pg-app-server.ts';

const ROWS = 'SELECT id, title, done FROM todos ORDER BY id';

let ext: ExtensionModule;
let server: WorkerServer;
let databaseId: string;
let apiKey: string;
const natives: NativeDevice[] = [];
const wasms: ExtensionDb[] = [];

beforeAll(async () => {
  ext = await openExtension({ timeoutMs: 30_000 });
  server = await startServerInWorker(fileURLToPath(new URL('./sync-fixtures/pg-app-server.ts', import.meta.url)), 'startPgAppServer');
  ({ databaseId, apiKey } = (await server.call({ type: 'info' })) as { databaseId: string; apiKey: string });
});

afterAll(async () => {
  for (const d of wasms) d.close();
  for (const n of natives) await n.close();
  await server?.call({ type: 'dispose' });
  await server?.close();
  await closeExtension();
});

const pgRows = async (): Promise<Array<{ id: string; title: string; done: bigint }>> =>
  ((await server.call({ type: 'sql', sql: ROWS })) as unknown[][]).map((r) => ({ id: String(r[0]), title: String(r[1]), done: BigInt(String(r[2])) }));

function wasmDevice(): ExtensionDb {
  const db = ext.openDb();
  wasms.push(db);
  db.exec(PG_TODOS_DDL);
  db.exec(`SELECT cloudsync_init('todos')`);
  db.value('SELECT cloudsync_network_init(?)', [`${server.origin}/${databaseId}.sqlite?apikey=${apiKey}`]);
  return db;
}

async function nativeDevice(): Promise<NativeDevice> {
  const dev = await openSyncingDevice({ origin: server.origin, databaseId, ddl: PG_TODOS_DDL, table: 'todos', apiKey });
  natives.push(dev);
  return dev;
}

test('0.9.99 (G2a) and 1.1.4 (G3) devices and psql converge on PostgreSQL', async () => {
  expect(ext.cloudsyncVersion).toBe('0.9.99');
  const w = wasmDevice();
  const n = await nativeDevice();

  w.exec("INSERT INTO todos (id, title, done) VALUES ('w1', 'from wasm', 0), ('w2', 'also wasm', 1)");
  expect(w.value('SELECT cloudsync_network_send_changes()')).toBeNull();
  expect(w.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
  await n.value("INSERT INTO todos (id, title, done) VALUES ('n1', 'from native', 0)");
  expect(await sendAll(n)).toBe(0n);
  await server.call({ type: 'sql', sql: "INSERT INTO todos (id, title, done) VALUES ('p1', 'from psql', 1)" });
  expect((await pgRows()).map((r) => r.id)).toEqual(['n1', 'p1', 'w1', 'w2']);

  // Concurrent edits of one cell on both devices: one value wins everywhere.
  w.exec("UPDATE todos SET title = 'wasm edit' WHERE id = 'w1'");
  await n.value('SELECT cloudsync_network_receive_changes()');
  await n.value("UPDATE todos SET title = 'native edit' WHERE id = 'w1'");
  w.value('SELECT cloudsync_network_send_changes()');
  expect(await sendAll(n)).toBe(0n);

  const expected = await pgRows();
  for (let i = 0; i < 5; i++) {
    w.value('SELECT cloudsync_network_sync()');
    await n.value('SELECT cloudsync_network_receive_changes()');
  }
  expect(w.all(ROWS)).toEqual(expected);
  expect(await n.all(ROWS)).toEqual(expected);
  expect(expected.map((r) => r.id)).toEqual(['n1', 'p1', 'w1', 'w2']);
  expect(['wasm edit', 'native edit']).toContain(expected.find((r) => r.id === 'w1')?.title);
});
