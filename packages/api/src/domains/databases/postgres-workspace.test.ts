/**
 * POSTGRES workspaces in the control plane: the client-integration snippet per RLS mode, the
 * PostgreSQL row-level security of each table (pg_class, pg_policies), enableOffSync refusing a
 * database that cannot serve, and deleteDatabase(uninstall) removing OffSync from the customer
 * database. On a fresh database of TEST_DATABASE_URL, else an embedded PGlite.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startApp } from '../../../test/data-plane-fixtures.ts';
import type { RunningApp } from '../../../test/data-plane-fixtures.ts';
import { openTestPostgres } from '../../../test/sync-fixtures/postgres.ts';
import type { TestPostgres } from '../../../test/sync-fixtures/postgres.ts';
import { sqliteDatabasePath } from './databases.service.ts';

let pg: TestPostgres;
let t: RunningApp;
let projectId: string;

const connection = () => {
  const c = pg.connection;
  return { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) };
};
const register = async (name: string) => (await t.app.services.databases.createDatabase({ projectId, name, connection: connection() })).id;
const one = async (sql: string) => (await pg.sql(sql))[0]?.[0];

beforeAll(async () => {
  pg = await openTestPostgres();
  await pg.sql("CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')");
  await pg.sql("CREATE TABLE plain (id TEXT PRIMARY KEY NOT NULL, v TEXT NOT NULL DEFAULT '')");
  await pg.sql("INSERT INTO items (id, owner, title) VALUES ('a', 'alice', 'kept')");
  t = await startApp({ postgresPoolSize: pg.poolSize, rateLimitPerSecond: 0 });
  projectId = (await t.app.services.projects.createProject({ name: 'pg', kind: 'POSTGRES' })).id;
});

afterAll(async () => {
  await t?.dispose();
  await pg?.close();
});

describe('enableOffSync refuses a database that cannot serve, nothing changed', () => {
  test('POSTGRES: no synced table (metadata not installed), then deployed → enabled', async () => {
    const id = await register('enable');
    const { databases, tables } = t.app.services;
    await expect(databases.setOffSync(id, true)).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining('deploy tables first'),
      details: { reason: 'NO_SYNCED_TABLES', metadataInstalled: false },
    });
    expect((await databases.getDatabase(id)).offSyncEnabled).toBe(false);
    await tables.deployTables(id, ['items']);
    expect((await databases.setOffSync(id, true)).offSyncEnabled).toBe(true);
    // Metadata installed but the synced set emptied: disabling works, enabling again is refused.
    await databases.setOffSync(id, false);
    await tables.deployTables(id, []);
    await expect(databases.setOffSync(id, true)).rejects.toMatchObject({ code: 'CONFLICT', details: { reason: 'NO_SYNCED_TABLES', metadataInstalled: true } });
    expect((await databases.getDatabase(id)).offSyncEnabled).toBe(false);
    await t.app.services.databases.deleteDatabase(id, { uninstall: true });
  });

  test('POSTGRES: the connection fails', async () => {
    const { databases } = t.app.services;
    const id = (await databases.createDatabase({ projectId, name: 'closed', connection: { host: '127.0.0.1', port: 1, database: 'x', user: 'u' } })).id;
    await expect(databases.setOffSync(id, true)).rejects.toMatchObject({
      code: 'CONNECTION_FAILED',
      message: expect.stringContaining('cannot connect to the PostgreSQL database'),
      details: { reason: 'CONNECTION_FAILED', code: 'CONNECTION_REFUSED' },
    });
    expect((await databases.getDatabase(id)).offSyncEnabled).toBe(false);
  });

  test('SQLITE: the file is missing (restoreConnection first)', async () => {
    const { databases, projects } = t.app.services;
    const p = await projects.createProject({ name: 'lite', kind: 'SQLITE' });
    const id = (await databases.createDatabase({ projectId: p.id, name: 'main' })).id;
    rmSync(sqliteDatabasePath(t.dataDir, id));
    await expect(databases.setOffSync(id, true)).rejects.toMatchObject({ code: 'CONFLICT', details: { reason: 'FILE_MISSING' }, message: expect.stringContaining('restoreConnection') });
    expect((await databases.getDatabase(id)).offSyncEnabled).toBe(false);
    await databases.restoreConnection(id);
    // An empty SQLite database may be enabled: tables are picked after (Database Setup).
    expect((await databases.setOffSync(id, true)).offSyncEnabled).toBe(true);
  });
});

test('Table.postgresRls: enabled / forced and the pg_policies rows; null on SQLITE', async () => {
  const id = await register('rls');
  await t.app.services.tables.deployTables(id, ['items']);
  await pg.sql('ALTER TABLE items ENABLE ROW LEVEL SECURITY');
  await pg.sql("CREATE POLICY own_read ON items FOR SELECT USING (owner = current_setting('request.jwt.claims', true)::jsonb ->> 'sub')");
  await pg.sql("CREATE POLICY own_write ON items AS RESTRICTIVE FOR INSERT TO postgres WITH CHECK (owner <> '')");
  try {
    const q = 'query($d: ID!) { database(id: $d) { tables { nodes { name postgresRls { enabled forced policies { name command permissive roles using withCheck } } } } } }';
    type R = { database: { tables: { nodes: { name: string; postgresRls: { enabled: boolean; forced: boolean; policies: Record<string, unknown>[] } | null }[] } } };
    const byName = async () => Object.fromEntries((await t.gql<R>(q, { d: id })).database.tables.nodes.map((n) => [n.name, n.postgresRls]));
    const first = await byName();
    expect(first['plain']).toEqual({ enabled: false, forced: false, policies: [] });
    expect(first['items']).toMatchObject({ enabled: true, forced: false });
    expect(first['items']?.policies).toEqual([
      { name: 'own_read', command: 'SELECT', permissive: 'PERMISSIVE', roles: ['public'], using: expect.stringContaining('request.jwt.claims'), withCheck: null },
      { name: 'own_write', command: 'INSERT', permissive: 'RESTRICTIVE', roles: ['postgres'], using: null, withCheck: expect.stringContaining('owner') },
    ]);
    await pg.sql('ALTER TABLE items FORCE ROW LEVEL SECURITY');
    expect((await byName())['items']).toMatchObject({ enabled: true, forced: true });

    const { projects, databases } = t.app.services;
    const lite = await databases.createDatabase({ projectId: (await projects.createProject({ name: 'lite2', kind: 'SQLITE' })).id, name: 'x' });
    const { default: Database } = await import('better-sqlite3');
    const file = new Database(sqliteDatabasePath(t.dataDir, lite.id));
    file.exec('CREATE TABLE n (id TEXT PRIMARY KEY NOT NULL)');
    file.close();
    const s = await t.gql<R>(q, { d: lite.id });
    expect(s.database.tables.nodes).toEqual([{ name: 'n', postgresRls: null }]);
  } finally {
    for (const sql of ['DROP POLICY IF EXISTS own_read ON items', 'DROP POLICY IF EXISTS own_write ON items', 'ALTER TABLE items NO FORCE ROW LEVEL SECURITY', 'ALTER TABLE items DISABLE ROW LEVEL SECURITY']) await pg.sql(sql);
    await t.app.services.databases.deleteDatabase(id, { uninstall: true });
  }
});

test('clientIntegration on POSTGRES: <db-user>:<password> in BYPASS (never the password), a token and PostgreSQL policies in ENFORCE', async () => {
  const id = await t.app.services.databases.createDatabase({ projectId, name: 'ci', connection: { ...connection(), password: 'do-not-show-me' } }).then((d) => d.id);
  const q = 'query($d: ID!) { database(id: $d) { clientIntegration { kind rlsMode authMethod postgresUser snippet } } }';
  type R = { database: { clientIntegration: { kind: string; rlsMode: string; authMethod: string; postgresUser: string | null; snippet: string } } };
  const bypass = (await t.gql<R>(q, { d: id })).database.clientIntegration;
  expect(bypass).toMatchObject({ kind: 'POSTGRES', rlsMode: 'BYPASS', authMethod: 'API_KEY', postgresUser: pg.connection.user });
  expect(bypass.snippet).toContain(`SELECT cloudsync_network_set_apikey('${pg.connection.user}:<password>');`);
  expect(bypass.snippet).not.toContain('do-not-show-me');
  await t.app.services.tables.setRlsMode(id, 'ENFORCE');
  const enforce = (await t.gql<R>(q, { d: id })).database.clientIntegration;
  expect(enforce).toMatchObject({ rlsMode: 'ENFORCE', authMethod: 'ACCESS_TOKEN' });
  expect(enforce.snippet).toContain('cloudsync_network_set_token(');
  expect(enforce.snippet).toContain('PostgreSQL row-level security policies apply');
  expect(enforce.snippet).not.toContain(':<password>');
  await t.app.services.databases.deleteDatabase(id);
});

describe('deleteDatabase(uninstall)', () => {
  const triggers = () => one("SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'public.items'::regclass AND NOT tgisinternal");
  const schema = () => one("SELECT count(*)::int FROM pg_namespace WHERE nspname = 'offsync'");

  test('default keeps OffSync in the customer database; uninstall: true removes triggers, functions and the offsync schema, rows stay', async () => {
    const kept = await register('kept');
    await t.app.services.tables.deployTables(kept, ['items', 'plain']);
    expect(await triggers()).toBeGreaterThan(0);
    const del = await t.gql<{ deleteDatabase: { id: string; uninstalled: boolean } }>('mutation($d: ID!) { deleteDatabase(id: $d) { id uninstalled } }', { d: kept });
    expect(del.deleteDatabase).toEqual({ id: kept, uninstalled: false });
    expect(await schema()).toBe(1);
    expect(await triggers()).toBeGreaterThan(0);

    // Registered again over the same database: the metadata is still there.
    const again = await register('again');
    expect((await t.app.services.tables.listTables(again, { selected: true })).nodes.map((n) => n.name)).toEqual(['items', 'plain']);
    const un = await t.gql<{ deleteDatabase: { id: string; uninstalled: boolean } }>('mutation($d: ID!) { deleteDatabase(id: $d, uninstall: true) { id uninstalled } }', { d: again });
    expect(un.deleteDatabase).toEqual({ id: again, uninstalled: true });
    expect(await schema()).toBe(0);
    expect(await triggers()).toBe(0);
    expect(await one("SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'public.plain'::regclass AND NOT tgisinternal")).toBe(0);
    expect(await one("SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'offsync'")).toBe(0);
    await expect(t.app.services.databases.getDatabase(again)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // The customer's rows stay, and plain writes work without OffSync.
    expect(await one("SELECT title FROM items WHERE id = 'a'")).toBe('kept');
    await pg.sql("INSERT INTO items (id, title) VALUES ('b', 'after uninstall')");
    expect(await one('SELECT count(*)::int FROM items')).toBe(2);
    await pg.sql("DELETE FROM items WHERE id = 'b'");

    // Nothing installed: uninstall is a no-op that still deletes the entry.
    const bare = await register('bare');
    expect(await t.app.services.databases.deleteDatabaseWith(bare, { uninstall: true })).toEqual({ id: bare, uninstalled: false });
  });

  test('a synced table dropped in PostgreSQL does not stop the uninstall', async () => {
    await pg.sql("CREATE TABLE gone (id TEXT PRIMARY KEY NOT NULL, v TEXT NOT NULL DEFAULT '')");
    const id = await register('gone');
    await t.app.services.tables.deployTables(id, ['gone', 'items']);
    await pg.sql('DROP TABLE gone');
    expect(await t.app.services.databases.deleteDatabaseWith(id, { uninstall: true })).toEqual({ id, uninstalled: true });
    expect(await schema()).toBe(0);
    expect(await triggers()).toBe(0);
  });

  test('connection failing: CONNECTION_FAILED and nothing deleted', async () => {
    const { databases } = t.app.services;
    const id = (await databases.createDatabase({ projectId, name: 'unreachable', connection: { host: '127.0.0.1', port: 1, database: 'x', user: 'u' } })).id;
    await expect(databases.deleteDatabase(id, { uninstall: true })).rejects.toMatchObject({ code: 'CONNECTION_FAILED' });
    expect((await databases.getDatabase(id)).id).toBe(id);
    expect(await databases.deleteDatabase(id)).toBe(id);
  });
});
