/**
 * Test server: a temp data dir, central databases with a `todos` table initialised by the
 * engine, and an http.Server built from `createSyncHttpHandler` with a stub `authenticate`
 * accepting one API key. Used in-process by the shape tests and, through `startSyncE2eServer`,
 * inside a worker by the extension e2e test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { allowAllSyncDeps, createSyncHttpHandler } from '../../src/domains/sync/index.ts';
import type { DatabaseTarget, SchemaHashMode, SyncDeps, SyncHttpHandler, SyncHttpOptions } from '../../src/domains/sync/index.ts';

export const TODOS_DDL = `CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)`;

export interface TestServerOptions {
  apiKey?: string;
  databases?: Array<{ id: string; enabled?: boolean; schemaHashMode?: SchemaHashMode }>;
  http?: Partial<SyncHttpOptions>;
  deps?: Partial<SyncDeps>;
}

export interface TestServer {
  server: Server;
  handler: SyncHttpHandler;
  dir: string;
  pathOf(id: string): string;
  events: Array<{ hook: string; args: unknown[] }>;
  close(): Promise<void>;
}

export function createTestServer(opts: TestServerOptions = {}): TestServer {
  const apiKey = opts.apiKey ?? 'TESTKEY123';
  const dir = mkdtempSync(join(tmpdir(), 'offsync-sync-'));
  const targets = new Map<string, DatabaseTarget>();
  for (const d of opts.databases ?? [{ id: 'testdb' }]) {
    const path = join(dir, `${d.id}.sqlite`);
    const engine = openSyncDatabase(path);
    engine.driver.exec(TODOS_DDL);
    engine.init('todos');
    engine.close();
    targets.set(d.id, { path, enabled: d.enabled ?? true, schemaHashMode: d.schemaHashMode ?? 'strict' });
  }
  const events: TestServer['events'] = [];
  const deps = allowAllSyncDeps({
    resolveDatabase: (id) => targets.get(id),
    authenticate: async (_db, credential) => (credential === apiKey ? { kind: 'apiKey', userId: null, claims: {} } : null),
    recordDevice: (...args) => void events.push({ hook: 'recordDevice', args }),
    recordTraffic: (...args) => void events.push({ hook: 'recordTraffic', args }),
    onChangesMerged: (...args) => void events.push({ hook: 'onChangesMerged', args }),
    registerPushToken: (...args) => void events.push({ hook: 'registerPushToken', args }),
    ...opts.deps,
  });
  const handler = createSyncHttpHandler(deps, { artifactSecret: 'test-secret-0123456789abcdef', ...opts.http });
  const server = createServer((req, res) => {
    handler(req, res).then(
      (handled) => {
        if (!handled) res.writeHead(404).end();
      },
      (e: unknown) => {
        console.error(e);
        res.writeHead(500).end();
      },
    );
  });
  return {
    server,
    handler,
    dir,
    pathOf: (id) => targets.get(id)?.path ?? '',
    events,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      handler.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a test server on an ephemeral loopback port. */
export async function listenTestServer(opts: TestServerOptions = {}): Promise<TestServer & { origin: string }> {
  const t = createTestServer(opts);
  await new Promise<void>((ok) => t.server.listen(0, '127.0.0.1', ok));
  return { ...t, origin: `http://127.0.0.1:${(t.server.address() as AddressInfo).port}` };
}

/** Factory for `startServerInWorker` (e2e with the real extension). */
export function startSyncE2eServer(options: { apiKey: string; databaseId: string }): { server: Server; control: (m: unknown) => unknown } {
  const t = createTestServer({ apiKey: options.apiKey, databases: [{ id: options.databaseId }] });
  return {
    server: t.server,
    control(message: unknown) {
      const type = typeof message === 'object' && message !== null ? Reflect.get(message, 'type') : undefined;
      if (type === 'rows') {
        const open = t.handler.service.databases.peek(options.databaseId);
        const engine = open ?? openSyncDatabase(t.pathOf(options.databaseId));
        try {
          return engine.driver.prepare('SELECT id, title, done FROM todos ORDER BY id').all();
        } finally {
          if (open === undefined) engine.close();
        }
      }
      if (type === 'events') return t.events.map((e) => ({ hook: e.hook, args: JSON.parse(JSON.stringify(e.args, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as unknown }));
      throw new Error(`unknown control message ${JSON.stringify(message)}`);
    },
  };
}
