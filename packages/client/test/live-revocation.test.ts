/**
 * Live mode over graphql-ws when the server ends the `changes` subscription (docs/PROTOCOL.md
 * "Live subscriptions end with their credential"), against the real server: a revoked API key
 * is a terminal failure — one `error` event (`credential_revoked`, not retryable), state `error`,
 * no resubscription and no backoff wait; an RLS mode change is not — the device resubscribes
 * under the new mode and is live again.
 */
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import type { ClientOptions } from 'ws';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sqliteDatabasePath } from '@offsync/api';
import { TODOS_DDL } from '@offsync/core/testing';
import { openDatabase, SyncError } from '../src/sync/index.ts';
import type { OffSyncDatabase, OpenDatabaseOptions } from '../src/sync/index.ts';
import { startTestServer } from './api-client.server.ts';
import type { TestServer } from './api-client.server.ts';
import { removeTempDirs, tempPath, until } from './helpers.ts';

let server: TestServer;
let base: string;

beforeAll(async () => {
  server = await startTestServer();
  base = server.url.replace(/\/graphql$/, '');
});
afterAll(async () => {
  await server.close();
  removeTempDirs();
});

async function newDatabase(): Promise<string> {
  const s = server.app.services;
  const project = await s.projects.createProject({ name: 'revocation', kind: 'SQLITE' });
  const databaseId = (await s.databases.createDatabase({ projectId: project.id, name: 'todos' })).id;
  const file = new Database(sqliteDatabasePath(server.dataDir, databaseId));
  file.exec(TODOS_DDL);
  file.close();
  await s.tables.deployTables(databaseId, ['todos']);
  await s.databases.setOffSync(databaseId, true);
  return databaseId;
}

/** Records the cursor of every `subscribe` message and counts open sockets. */
class Wire {
  readonly subscribes: unknown[] = [];
  open = 0;
  impl(): unknown {
    return socketClass(this);
  }
}

function socketClass(wire: Wire): unknown {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[], options?: ClientOptions) {
      super(url, protocols, options);
      wire.open++;
      const send = this.send.bind(this) as (data: string) => void;
      Object.defineProperty(this, 'send', {
        value: (data: string) => {
          const m = JSON.parse(data) as { type: string; payload?: { variables?: { cursor?: unknown } } };
          if (m.type === 'subscribe') wire.subscribes.push(m.payload?.variables?.cursor);
          send(data);
        },
      });
      this.on('close', () => {
        wire.open--;
      });
    }
  };
}

interface Recorded {
  errors: Array<{ error: Error; retryable: boolean }>;
  waits: number[];
}

function device(databaseId: string, credential: string, wire: Wire, opts: OpenDatabaseOptions = {}): { d: OffSyncDatabase; rec: Recorded } {
  const rec: Recorded = { errors: [], waits: [] };
  const d = openDatabase(tempPath(), {
    serverUrl: base, databaseId, apiKey: credential, live: 'graphql', webSocketImpl: wire.impl(), baseMs: 20, maxMs: 100,
    retryWait: async (ms) => {
      rec.waits.push(ms);
      await new Promise((r) => setTimeout(r, ms));
    },
    ...opts,
  });
  d.db.exec(TODOS_DDL);
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  d.on('error', (e) => rec.errors.push({ error: e.error, retryable: e.retryable }));
  return { d, rec };
}

test('a revoked API key ends live mode: one non-retryable credential_revoked error, state error, no resubscription', async () => {
  const databaseId = await newDatabase();
  const { apiKey, secret } = await server.app.services.auth.createApiKey(databaseId, 'device');
  const wire = new Wire();
  const { d, rec } = device(databaseId, secret, wire);
  d.start();
  await until(() => d.state === 'live');
  expect(wire.subscribes).toHaveLength(1);

  await server.app.services.auth.revokeApiKey(apiKey.id);
  await until(() => d.state === 'error');
  // The server closed the socket (4401) after the error, or the client did on its own: either way none is left.
  await until(() => wire.open === 0);
  expect(rec.errors).toHaveLength(1);
  const first = rec.errors[0];
  expect(first?.retryable).toBe(false);
  expect(first?.error).toBeInstanceOf(SyncError);
  expect((first?.error as SyncError).code).toBe('credential_revoked');
  expect(rec.waits).toEqual([]); // the loop stopped instead of waiting to reconnect
  expect(wire.subscribes).toHaveLength(1);
  expect(d.state).toBe('error');
  await d.close();
}, 20_000);

test('an RLS mode change is retryable: the device resubscribes from its cursor and is live again', async () => {
  const databaseId = await newDatabase();
  const { secret } = await server.app.services.auth.createAccessToken(databaseId, { userId: 'u1', name: 'device' });
  const wire = new Wire();
  const { d, rec } = device(databaseId, secret, wire);
  const states: string[] = [];
  d.on('state', (e) => states.push(e.state));
  d.start();
  await until(() => d.state === 'live');

  await server.app.services.tables.setRlsMode(databaseId, 'ENFORCE');
  await until(() => wire.subscribes.length === 2 && d.state === 'live');
  expect(rec.errors).toHaveLength(1);
  expect(rec.errors[0]?.retryable).toBe(true);
  expect((rec.errors[0]?.error as SyncError).code).toBe('rls_mode_changed');
  expect(rec.waits).toHaveLength(1);
  expect(states.slice(-3)).toEqual(['connecting', 'syncing', 'live']);
  await d.close();
}, 20_000);
