/**
 * End-to-end with the REAL client: the unmodified SQLite Sync extension 0.9.99 (protocol G2a,
 * `@sqliteai/sqlite-wasm`, test-only under its licence) syncs two devices through the OffSync
 * sync handler running in a worker thread (the extension's synchronous XHR blocks this thread).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { closeExtension, openExtension, startServerInWorker, xhrLog, clearXhrLog } from '@offsync/core/testing';
import type { ExtensionDb, ExtensionModule, WorkerServer } from '@offsync/core/testing';
import { TODOS_DDL } from './sync-fixtures/server.ts';

const KEY = 'TESTKEY123';
const DB = 'db_e2e';
const ROWS = 'SELECT id, title, done FROM todos ORDER BY id';

let ext: ExtensionModule;
let server: WorkerServer;

function device(key = KEY): ExtensionDb {
  const db = ext.openDb();
  db.exec(TODOS_DDL);
  db.exec(`SELECT cloudsync_init('todos')`);
  db.value('SELECT cloudsync_network_init(?)', [`${server.origin}/${DB}.sqlite?apikey=${key}`]);
  return db;
}

beforeAll(async () => {
  ext = await openExtension({ timeoutMs: 15_000 });
  server = await startServerInWorker(fileURLToPath(new URL('./sync-fixtures/server.ts', import.meta.url)), 'startSyncE2eServer', {
    options: { apiKey: KEY, databaseId: DB },
  });
});

afterAll(async () => {
  await server?.close();
  await closeExtension();
});

test('two real 0.9.99 devices converge through OffSync, equal to the central database', async () => {
  expect(ext.cloudsyncVersion).toBe('0.9.99');
  const a = device();
  const b = device();
  try {
    // Offline edits on both sides.
    a.exec(`INSERT INTO todos(id, title, done) VALUES ('a1', 'milk', 0), ('a2', 'eggs', 0), ('s1', 'shared', 0)`);
    b.exec(`INSERT INTO todos(id, title, done) VALUES ('b1', 'bread', 1)`);
    clearXhrLog();
    expect(a.value('SELECT cloudsync_network_send_changes()')).toBeNull();
    const log = xhrLog().map((e) => `${e.method} ${new URL(e.url).pathname.replace(/[0-9a-f]{32}/, '{site}').replace(/_artifacts\/.*/, '_artifacts/…')} ${e.status}`);
    expect(log).toEqual([`GET /v2/cloudsync/${DB}.sqlite/{site}/upload 200`, 'PUT /v2/cloudsync/_artifacts/… 200', `POST /v2/cloudsync/${DB}.sqlite/{site}/apply 200`]);
    expect(a.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
    b.value('SELECT cloudsync_network_sync()');
    a.value('SELECT cloudsync_network_sync()');
    expect(b.all(ROWS)).toEqual(a.all(ROWS));
    expect(b.all(ROWS)).toHaveLength(4);

    // Concurrent updates of the same cells, and a delete against an update.
    a.exec(`UPDATE todos SET title = 'milk (A)', done = 1 WHERE id = 'a1'`);
    b.exec(`UPDATE todos SET title = 'milk (B)' WHERE id = 'a1'`);
    a.exec(`UPDATE todos SET title = 'shared by A' WHERE id = 's1'`);
    b.exec(`DELETE FROM todos WHERE id = 's1'`);
    b.exec(`UPDATE todos SET title = 'eggs (B)' WHERE id = 'a2'`);
    a.exec(`DELETE FROM todos WHERE id = 'b1'`);
    // B syncs first, then A, then B again (both orders of send/check).
    b.value('SELECT cloudsync_network_sync()');
    a.value('SELECT cloudsync_network_send_changes()');
    a.value('SELECT cloudsync_network_check_changes()');
    b.value('SELECT cloudsync_network_check_changes()');
    b.value('SELECT cloudsync_network_send_changes()');
    a.value('SELECT cloudsync_network_sync()');

    const rowsA = a.all(ROWS);
    expect(b.all(ROWS)).toEqual(rowsA);
    const central = (await server.call({ type: 'rows' })) as Array<Record<string, unknown>>;
    expect(central).toEqual(rowsA);
    // The delete of s1 (cl 2) wins over A's concurrent update; b1 is gone; a1 took a deterministic value.
    expect(rowsA.map((r) => r['id'])).toEqual(['a1', 'a2']);
    expect(rowsA.find((r) => r['id'] === 'a2')?.['title']).toBe('eggs (B)');
    expect(['milk (A)', 'milk (B)']).toContain(rowsA.find((r) => r['id'] === 'a1')?.['title']);
    expect(rowsA.find((r) => r['id'] === 'a1')?.['done']).toBe(1n);

    // A third device starting from scratch receives the full state.
    const c = device();
    try {
      c.value('SELECT cloudsync_network_check_changes()');
      expect(c.all(ROWS)).toEqual(rowsA);
    } finally {
      c.close();
    }
  } finally {
    a.close();
    b.close();
  }
});

test('a wrong API key is refused: SQL error Unauthorized', () => {
  const d = device('WRONG');
  try {
    d.exec(`INSERT INTO todos(id, title) VALUES ('x1', 'nope')`);
    expect(() => d.value('SELECT cloudsync_network_send_changes()')).toThrow(/Unauthorized/);
    // check_changes reports failures as the bare message `0` in 0.9.99 (docs/PROTOCOL.md §P7); the server said 401.
    clearXhrLog();
    expect(() => d.value('SELECT cloudsync_network_check_changes()')).toThrow();
    expect(xhrLog().map((e) => e.status)).toEqual([401]);
  } finally {
    d.close();
  }
});
