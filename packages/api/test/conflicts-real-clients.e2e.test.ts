/**
 * The conflict log with real clients (issue 13, "How we will know"): alice on the REAL SQLite
 * Sync extension 0.9.99 (`@sqliteai/sqlite-wasm`, G2a, access token) and bob on OffSync's own
 * client (`@offsync/client`, async API, access token) edit the same cell offline from the same
 * base; the losing write is in `Database.conflicts` with both values, sites and users;
 * `restoreConflictValue` writes it back and both devices hold it after they sync. The app runs
 * in a worker (test/sync-fixtures/conflict-app-server.ts): the wasm client blocks this thread.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '@offsync/client/sync';
import type { OffSyncDatabase } from '@offsync/client/sync';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { closeExtension, openExtension, startServerInWorker } from '@offsync/core/testing';
import type { ExtensionDb, ExtensionModule, WorkerServer } from '@offsync/core/testing';

const DDL = "CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";

let ext: ExtensionModule;
let server: WorkerServer;
let dir: string;
const closers: Array<() => void | Promise<void>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'offsync-conflicts-'));
  ext = await openExtension({ timeoutMs: 30_000 });
  server = await startServerInWorker(fileURLToPath(new URL('./sync-fixtures/conflict-app-server.ts', import.meta.url)), 'startConflictAppServer');
});

afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  await server?.call({ type: 'dispose' });
  await server?.close();
  await closeExtension();
  rmSync(dir, { recursive: true, force: true });
});

interface Side { value: unknown; colVersion: number; siteId: string; userId: string | null }
interface Node { id: string; kind: string; table: string; pkValues: unknown[]; column: string; winner: Side; loser: Side }

const gql = <T>(query: string, variables: Record<string, unknown>): Promise<T> => server.call({ type: 'gql', query, variables }) as Promise<T>;

test('0.9.99 and OffSync’s client edit one cell offline: the loser is logged with both sides; restoring it reaches both devices', async () => {
  expect(ext.cloudsyncVersion).toBe('0.9.99');
  const { databaseId, tokens } = (await server.call({ type: 'setup', ddl: DDL, table: 'notes', users: ['alice', 'bob'] })) as { databaseId: string; tokens: Record<string, string> };

  const alice: ExtensionDb = ext.openDb();
  closers.push(() => alice.close());
  alice.exec(DDL);
  alice.exec("SELECT cloudsync_init('notes')");
  alice.value('SELECT cloudsync_network_init(?)', [`${server.origin}/${databaseId}.sqlite?token=${encodeURIComponent(tokens['alice'] ?? '')}`]);
  const aliceSync = (): void => {
    alice.value('SELECT cloudsync_network_send_changes()');
    while (Number(alice.value('SELECT cloudsync_network_check_changes()')) > 0);
  };

  const bob: OffSyncDatabase = openDatabase(join(dir, 'bob.db'), { serverUrl: server.origin, databaseId, token: tokens['bob'] ?? '' });
  closers.push(() => bob.close());
  bob.db.exec(DDL);
  bob.db.prepare("SELECT cloudsync_init('notes')").get();
  const titleOf = (): { a: unknown; b: unknown } => ({
    a: alice.value("SELECT title FROM notes WHERE id = 'n1'"),
    b: bob.db.prepare("SELECT title FROM notes WHERE id = 'n1'").pluck().get(),
  });

  alice.exec("INSERT INTO notes (id, title, body) VALUES ('n1', 'base', 'text')");
  aliceSync();
  await bob.sync();
  expect(titleOf()).toEqual({ a: 'base', b: 'base' });

  // Offline, both edit the title from the same base; alice reaches the server first.
  alice.exec("UPDATE notes SET title = 'alice wrote this' WHERE id = 'n1'");
  bob.db.prepare("UPDATE notes SET title = 'bob wrote this' WHERE id = 'n1'").run();
  aliceSync();
  await bob.sync();
  aliceSync();
  // 'bob wrote this' > 'alice wrote this' in the value order: bob's write wins the tiebreak.
  expect(titleOf()).toEqual({ a: 'bob wrote this', b: 'bob wrote this' });

  const q = `query($d: ID!) { database(id: $d) { conflicts { totalCount nodes { id kind table pkValues column
    winner { value colVersion siteId userId } loser { value colVersion siteId userId } } } } }`;
  const log = (await gql<{ database: { conflicts: { totalCount: number; nodes: Node[] } } }>(q, { d: databaseId })).database.conflicts;
  expect(log.totalCount).toBe(1);
  expect(log.nodes[0]).toMatchObject({
    kind: 'TIEBREAK', table: 'notes', pkValues: ['n1'], column: 'title',
    winner: { value: 'bob wrote this', colVersion: 2, siteId: bob.siteId, userId: 'bob' },
    loser: { value: 'alice wrote this', colVersion: 2, siteId: alice.siteIdHex(), userId: 'alice' },
  });
  const byUser = await gql<{ database: { conflicts: { totalCount: number } } }>('query($d: ID!) { database(id: $d) { conflicts(filter: { userId: "alice", key: "n1" }) { totalCount } } }', { d: databaseId });
  expect(byUser.database.conflicts.totalCount).toBe(1);

  const restored = await gql<{ restoreConflictValue: { action: string } }>(
    'mutation($d: ID!, $c: ID!) { restoreConflictValue(databaseId: $d, conflictId: $c) { action } }',
    { d: databaseId, c: log.nodes[0]?.id },
  );
  expect(restored.restoreConflictValue.action).toBe('UPDATE');
  expect(await server.call({ type: 'rows', databaseId, sql: 'SELECT id, title, body FROM notes' })).toEqual([{ id: 'n1', title: 'alice wrote this', body: 'text' }]);
  aliceSync();
  await bob.sync();
  expect(titleOf()).toEqual({ a: 'alice wrote this', b: 'alice wrote this' });
  expect(alice.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
  // Receiving the restore was no new conflict.
  expect((await gql<{ database: { conflicts: { totalCount: number } } }>('query($d: ID!) { database(id: $d) { conflicts { totalCount } } }', { d: databaseId })).database.conflicts.totalCount).toBe(1);
}, 120_000);
