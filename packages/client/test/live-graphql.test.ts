/**
 * Live mode over graphql-ws against the real server (createApp, SQLite control plane, loopback
 * port): a write on A reaches B through the `changes` subscription while B makes no `check`
 * request; B's socket is cut, A writes meanwhile, the network comes back and B has missed
 * nothing (A, B and the central database equal), with the states live → offline → connecting →
 * syncing → live. Plus: refused credentials stop in `error`; the cursor conventions.
 */
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import type { ClientOptions } from 'ws';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sqliteDatabasePath } from '@offsync/api';
import { TODOS_DDL } from '@offsync/core/testing';
import { createFetchHttp, openDatabase, SEQ_ALL, toDurableCursor, toFeedCursor } from '../src/sync/index.ts';
import type { ConnectionState, HttpFetch, OffSyncDatabase, OpenDatabaseOptions } from '../src/sync/index.ts';
import { startTestServer } from './api-client.server.ts';
import type { TestServer } from './api-client.server.ts';
import { removeTempDirs, tempPath, until } from './helpers.ts';

const ROWS = 'SELECT id, title, done, note FROM todos ORDER BY id';

let server: TestServer;
let base: string;
let databaseId: string;
let apiKey: string;

beforeAll(async () => {
  server = await startTestServer();
  base = server.url.replace(/\/graphql$/, '');
  const s = server.app.services;
  const project = await s.projects.createProject({ name: 'live', kind: 'SQLITE' });
  databaseId = (await s.databases.createDatabase({ projectId: project.id, name: 'todos' })).id;
  const file = new Database(sqliteDatabasePath(server.dataDir, databaseId));
  file.exec(TODOS_DDL);
  file.close();
  await s.tables.deployTables(databaseId, ['todos']);
  await s.databases.setOffSync(databaseId, true);
  apiKey = (await s.auth.createApiKey(databaseId, 'devices')).secret;
});
afterAll(async () => {
  await server.close();
  removeTempDirs();
});

/** A device's network: a WebSocket class whose sockets can be cut and refused; records the wire. */
class Network {
  down = false;
  readonly sockets = new Set<WebSocket>();
  /** `next` messages received (subscription batches). */
  batches = 0;
  /** The cursor variable of every `subscribe` message sent. */
  readonly subscribedFrom: unknown[] = [];
  cut(): void {
    for (const s of this.sockets) s.terminate();
  }
  impl(): unknown {
    return socketClass(this);
  }
}

function socketClass(net: Network): unknown {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[], options?: ClientOptions) {
      super(url, protocols, options);
      if (net.down) {
        this.terminate();
        return;
      }
      net.sockets.add(this);
      const send = this.send.bind(this) as (data: string) => void;
      Object.defineProperty(this, 'send', {
        value: (data: string) => {
          const m = JSON.parse(data) as { type: string; payload?: { variables?: { cursor?: unknown } } };
          if (m.type === 'subscribe') net.subscribedFrom.push(m.payload?.variables?.cursor);
          send(data);
        },
      });
      this.on('close', () => net.sockets.delete(this));
      this.on('message', (m: Buffer) => {
        if (m.toString().includes('"type":"next"')) net.batches++;
      });
    }
  };
}

/** Counts HTTP requests by their last path segment (`check`, `apply`, `status`, …). */
function countingFetch(): { fetch: HttpFetch; calls: Map<string, number> } {
  const inner = createFetchHttp();
  const calls = new Map<string, number>();
  return {
    calls,
    fetch: (req) => {
      const action = new URL(req.url).pathname.split('/').pop() ?? '';
      calls.set(action, (calls.get(action) ?? 0) + 1);
      return inner(req);
    },
  };
}

function device(opts: OpenDatabaseOptions): OffSyncDatabase {
  const d = openDatabase(tempPath(), { serverUrl: base, databaseId, apiKey, live: 'graphql', baseMs: 20, maxMs: 200, ...opts });
  d.db.exec(TODOS_DDL);
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  return d;
}

const rows = (d: OffSyncDatabase): unknown[] => d.db.prepare(ROWS).all();

function central(): unknown[] {
  const c = new Database(sqliteDatabasePath(server.dataDir, databaseId), { readonly: true });
  try {
    return c.prepare(ROWS).all();
  } finally {
    c.close();
  }
}

const has = (d: OffSyncDatabase, id: string): boolean => d.db.prepare('SELECT 1 FROM todos WHERE id = ?').get(id) !== undefined;

test('a write on A reaches B through the subscription; after B’s socket is cut and restored it has missed nothing', async () => {
  const netA = new Network();
  const netB = new Network();
  const httpB = countingFetch();
  const a = device({ webSocketImpl: netA.impl() });
  const b = device({ webSocketImpl: netB.impl(), fetch: httpB.fetch });
  const statesB: ConnectionState[] = [b.state];
  b.on('state', (e) => statesB.push(e.state));
  a.db.exec(`INSERT INTO todos (id, title) VALUES ('a0', 'before start')`);
  a.start();
  b.start();
  await until(() => a.state === 'live' && b.state === 'live' && has(b, 'a0'));
  expect(statesB).toEqual(['offline', 'connecting', 'syncing', 'live']);

  // Live: A's write is pushed by A's watcher and arrives at B as a subscription batch.
  const batchesBefore = netB.batches;
  a.db.exec(`INSERT INTO todos (id, title) VALUES ('a1', 'live')`);
  await until(() => has(b, 'a1'));
  expect(netB.batches).toBeGreaterThan(batchesBefore);
  expect(httpB.calls.get('check') ?? 0).toBe(0);

  // Cut B's socket and keep the network down while A writes in several transactions.
  const mark = statesB.length;
  netB.down = true;
  netB.cut();
  await until(() => b.state === 'offline' || b.state === 'connecting');
  const cursorAtCut = (await b.status()).cursor;
  expect(cursorAtCut.dbVersion).toBeGreaterThan(0);
  for (let i = 2; i < 8; i++) a.db.prepare('INSERT INTO todos (id, title) VALUES (?, ?)').run(`a${i}`, `while B is down ${i}`);
  a.db.exec(`UPDATE todos SET done = 1, note = 'edited' WHERE id = 'a1'`);
  a.db.exec(`DELETE FROM todos WHERE id = 'a0'`);
  await until(() => JSON.stringify(central()) === JSON.stringify(rows(a)));
  await until(() => statesB.slice(mark).filter((st) => st === 'connecting').length >= 2); // several refused reconnection attempts
  expect(has(b, 'a7')).toBe(false);
  expect(b.state).not.toBe('live');

  // Restore: B resubscribes from its durable cursor and catches up; its own write goes out too.
  netB.down = false;
  await until(() => b.state === 'live' && has(b, 'a7') && !has(b, 'a0'));
  b.db.exec(`INSERT INTO todos (id, title) VALUES ('b1', 'from B after reconnect')`);
  await until(() => has(a, 'b1'));
  const want = rows(a);
  expect(want).toHaveLength(8);
  expect(rows(b)).toEqual(want);
  expect(central()).toEqual(want);
  expect(httpB.calls.get('check') ?? 0).toBe(0);
  // The resubscription started from the durable cursor B had when its socket was cut.
  expect(netB.subscribedFrom).toHaveLength(2);
  expect(netB.subscribedFrom[0]).toBeNull();
  expect(netB.subscribedFrom[1]).toEqual(toFeedCursor(cursorAtCut));
  expect((await b.status()).cursor.dbVersion).toBeGreaterThan(cursorAtCut.dbVersion);

  // live → offline (socket lost) → connecting → syncing → live, with refused attempts in between.
  const after = statesB.slice(mark - 1);
  expect(after[0]).toBe('live');
  expect(after[1]).toBe('offline');
  expect(after.slice(-3)).toEqual(['connecting', 'syncing', 'live']);
  expect(after.slice(1, -3).every((s) => s === 'offline' || s === 'connecting')).toBe(true);
  expect(after.filter((s) => s === 'connecting').length).toBeGreaterThan(1);

  await a.close();
  await b.close();
  expect(b.state).toBe('offline');
  await until(() => netA.sockets.size + netB.sockets.size === 0); // stop() closed the sockets
}, 20_000);

test('refused credentials stop live mode in error (no reconnect loop)', async () => {
  const net = new Network();
  const d = device({ webSocketImpl: net.impl(), apiKey: 'not-a-key' });
  const errors: Array<{ retryable: boolean; message: string }> = [];
  d.on('error', (e) => errors.push({ retryable: e.retryable, message: e.error.message }));
  d.start();
  await until(() => d.state === 'error');
  await new Promise((r) => setTimeout(r, 200));
  expect(d.state).toBe('error');
  expect(errors).toHaveLength(1);
  expect(errors[0]?.retryable).toBe(false);
  await d.close();
});

test('cursor conventions: a durable watermark is "after all of the version"; a row key with seq 0 never skips', () => {
  expect(toFeedCursor({ dbVersion: 0, seq: 0 })).toBeNull();
  expect(toFeedCursor({ dbVersion: 7, seq: 0 })).toEqual({ dbVersion: 7, seq: SEQ_ALL });
  expect(toFeedCursor({ dbVersion: 7, seq: 3 })).toEqual({ dbVersion: 7, seq: 3 });
  expect(toDurableCursor({ dbVersion: 7, seq: 3 })).toEqual({ dbVersion: 7, seq: 3 });
  expect(toDurableCursor({ dbVersion: 7, seq: 0 })).toEqual({ dbVersion: 6, seq: SEQ_ALL });
  expect(toDurableCursor({ dbVersion: 0, seq: 0 })).toEqual({ dbVersion: 0, seq: 0 });
});
