/** The async API against a real OffSync sync handler in-process: sync, events, :memory:, live mode. */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openDatabase } from '../src/sync/index.ts';
import type { ConnectionState , SyncError } from '../src/sync/index.ts';
import { API_KEY, createSyncServer, listen, TODOS_DDL } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { device, removeTempDirs, rows, tempPath, until } from './helpers.ts';

let srv: SyncServer;
let url: string;

beforeAll(async () => {
  srv = createSyncServer();
  url = `http://127.0.0.1:${await listen(srv.server)}`;
});
afterAll(async () => {
  await srv.close();
  removeTempDirs();
});

test('two devices sync through the server with await sync(); results follow the G3 shapes', async () => {
  const a = device({ serverUrl: url, databaseId: srv.databaseId });
  const b = device({ serverUrl: url, databaseId: srv.databaseId });
  const states: ConnectionState[] = [];
  a.on('state', (e) => states.push(e.state));
  a.db.exec(`INSERT INTO todos (id, title) VALUES ('a1', 'milk'), ('a2', 'eggs')`);
  const r = await a.sync();
  expect(r.send.status).toBe('synced');
  expect(r.send.serverVersion).toBe(r.send.localVersion);
  expect(states).toEqual(['connecting', 'syncing', 'offline']);
  const changes: string[][] = [];
  b.on('changes', (c) => changes.push(c.tables));
  const rb = await b.sync();
  expect(rb.receive.rows).toBeGreaterThan(0);
  expect(rb.receive.complete).toBe(true);
  expect(changes).toEqual([['todos']]);
  expect(rows(b)).toEqual(rows(a));
  expect(srv.central()).toEqual(rows(a));
  expect(await a.hasUnsentChanges()).toBe(false);
  const st = await b.status();
  expect(st.cursor.dbVersion).toBeGreaterThan(0);
  expect(st.pendingLocal).toBe(false);
  // Nothing new: an empty check, a status call for send.
  const again = await b.sync();
  expect(again.receive.rows).toBe(0);
  await a.close();
  await b.close();
});

test(':memory: databases work through the async API', async () => {
  const m = openDatabase(':memory:', { serverUrl: url, databaseId: srv.databaseId, apiKey: API_KEY });
  m.db.exec(TODOS_DDL);
  m.engine.init('todos');
  m.db.exec(`INSERT INTO todos (id, title) VALUES ('m1', 'from memory')`);
  await m.sync();
  expect(srv.central().some((r) => r['id'] === 'm1')).toBe(true);
  expect(rows(m).length).toBe(srv.central().length);
  expect(() => m.db.prepare(`SELECT cloudsync_db_version()`).get()).toThrow(/needs a file database/);
  expect(m.db.prepare(`SELECT cloudsync_version() AS v`).get()).toEqual({ v: '1.1.4' });
  await m.close();
});

test('live mode (polling): a write on A becomes visible on B without calling sync()', async () => {
  const a = device({ serverUrl: url, databaseId: srv.databaseId, pollMs: 20 });
  const b = device({ serverUrl: url, databaseId: srv.databaseId, pollMs: 20 });
  a.start();
  b.start();
  await until(() => a.state === 'live' && b.state === 'live');
  a.db.exec(`INSERT INTO todos (id, title) VALUES ('live1', 'hello')`);
  await until(() => rows(b).some((r) => r['id'] === 'live1'));
  b.db.exec(`UPDATE todos SET done = 1 WHERE id = 'live1'`);
  await until(() => rows(a).some((r) => r['id'] === 'live1' && r['done'] === 1));
  await a.close();
  await b.close();
  expect(a.state).toBe('offline');
});

test('a schema mismatch refused inside a 200 reaches the app as an error event with the server code', async () => {
  const d = openDatabase(tempPath(), { apiKey: API_KEY, serverUrl: url, databaseId: srv.databaseId });
  // The device's todos has another column list than the server's: its schema hash is unknown there.
  d.db.exec('CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT \'\', extra TEXT)');
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  d.db.exec("INSERT INTO todos (id, title) VALUES ('m1', 'mismatch')");
  const errors: { error: Error; retryable: boolean }[] = [];
  d.on('error', (e) => errors.push(e));
  const r = await d.sync();
  expect(r.send.lastFailure?.['code']).toBe('schema_hash_unknown');
  expect(errors).toHaveLength(1);
  expect(errors[0]?.retryable).toBe(false);
  expect((errors[0]?.error as SyncError).code).toBe('schema_hash_unknown');
  expect(errors[0]?.error.message).toMatch(/schema hash/);
  d.close();
});
