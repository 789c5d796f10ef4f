/** Offline: local writes accumulate while the server is down, retries back off, and everything goes out on reconnect. */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncNetworkError } from '../src/sync/index.ts';
import type { ConnectionState, ErrorEvent } from '../src/sync/index.ts';
import { createSyncServer, listen, unlisten } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { device, removeTempDirs, rows } from './helpers.ts';

let srv: SyncServer;
let port: number;
let url: string;

beforeAll(async () => {
  srv = createSyncServer();
  port = await listen(srv.server);
  url = `http://127.0.0.1:${port}`;
  await unlisten(srv.server); // down from the start
});
afterAll(async () => {
  await srv.close();
  removeTempDirs();
});

test('sync() retries with randomised exponential backoff until the server is back, then sends what accumulated', async () => {
  const waits: number[] = [];
  const a = device({
    serverUrl: url,
    databaseId: srv.databaseId,
    baseMs: 100,
    maxMs: 1000,
    random: () => 0.5,
    maxAttempts: 6,
    retryWait: async (ms) => {
      waits.push(ms);
      if (waits.length === 4) await listen(srv.server, port); // the server comes back
    },
  });
  const states: ConnectionState[] = [];
  const errors: ErrorEvent[] = [];
  a.on('state', (e) => states.push(e.state));
  a.on('error', (e) => errors.push(e));
  for (let i = 0; i < 50; i++) a.db.prepare('INSERT INTO todos (id, title) VALUES (?, ?)').run(`off${i}`, `offline ${i}`);
  a.db.exec(`UPDATE todos SET done = 1 WHERE id = 'off7'`);
  a.db.exec(`DELETE FROM todos WHERE id = 'off9'`);
  expect((await a.status()).pendingLocal).toBe(true);

  const r = await a.sync();
  // 100·2^n, half fixed + half random(0.5): 75, 150, 300, 600
  expect(waits).toEqual([75, 150, 300, 600]);
  expect(errors.map((e) => [e.retryable, e.attempt, e.error instanceof SyncNetworkError])).toEqual([
    [true, 0, true],
    [true, 1, true],
    [true, 2, true],
    [true, 3, true],
  ]);
  expect(states).toEqual(['connecting', 'offline', 'connecting', 'offline', 'connecting', 'offline', 'connecting', 'offline', 'connecting', 'syncing', 'offline']);
  expect(r.send.status).toBe('synced');
  expect(srv.central()).toEqual(rows(a));
  expect(srv.central()).toHaveLength(49);
  expect((await a.status()).pendingLocal).toBe(false);

  // A second device that was offline too receives it all.
  const b = device({ serverUrl: url, databaseId: srv.databaseId });
  await b.sync();
  expect(rows(b)).toEqual(rows(a));
  await a.close();
  await b.close();
});

test('after maxAttempts the error surfaces; the writes stay pending for the next sync', async () => {
  await unlisten(srv.server);
  const a = device({ serverUrl: url, databaseId: srv.databaseId, maxAttempts: 3, retryWait: async () => undefined });
  a.db.exec(`INSERT INTO todos (id, title) VALUES ('later', 'x')`);
  await expect(a.sync()).rejects.toBeInstanceOf(SyncNetworkError);
  expect(a.state).toBe('offline');
  expect((await a.status()).pendingLocal).toBe(true);
  await listen(srv.server, port);
  await a.sync();
  expect(srv.central().some((r) => r['id'] === 'later')).toBe(true);
  await a.close();
});

test('a wrong credential is not retried and puts the connection in the error state', async () => {
  const a = device({ serverUrl: url, databaseId: srv.databaseId, apiKey: 'WRONG', retryWait: async () => undefined });
  a.db.exec(`INSERT INTO todos (id, title) VALUES ('denied', 'x')`);
  await expect(a.sync()).rejects.toThrow(/Unauthorized|unauthorized/);
  expect(a.state).toBe('error');
  await a.close();
});
