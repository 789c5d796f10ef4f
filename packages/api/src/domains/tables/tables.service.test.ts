import { randomBytes } from 'node:crypto';
import type { Change } from '@offsync/core';
import { createPgSyncEngine } from '@offsync/core/postgres';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestContext, providers, stopEmbeddedPg, testPgUrl } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';
import { sqliteDatabasePath } from '../databases/databases.service.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('tables on %s', (provider) => {
  let ctx: TestContext;
  let databaseId: string;
  beforeAll(async () => {
    ctx = await createTestContext(provider);
    const p = await ctx.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
    const db = new Database(sqliteDatabasePath(ctx.dataDir, databaseId));
    db.exec(`
      CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, user_id TEXT, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT);
      CREATE TABLE bad_int (id INTEGER PRIMARY KEY, name TEXT);
      CREATE TABLE bad_nodefault (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);
    `);
    db.close();
  });
  afterAll(async () => { await ctx.dispose(); });

  test('lists real tables with D.1 schema issues', async () => {
    const list = await ctx.services.tables.listTables(databaseId);
    expect(list.totalCount).toBe(4);
    expect(list.selectedCount).toBe(0);
    const byName = Object.fromEntries(list.nodes.map((t) => [t.name, t]));
    expect(byName['todos']?.issues).toEqual([]);
    expect(byName['bad_int']?.issues.map((i) => i.rule)).toEqual(expect.arrayContaining(['D1.4-integer-pk', 'D1.5-pk-not-null']));
    expect(byName['bad_nodefault']?.issues.map((i) => i.rule)).toEqual(['D1.6-not-null-default']);
    expect((await ctx.services.tables.listTables(databaseId, { nameContains: 'BAD' })).nodes).toHaveLength(2);
  });

  test('deployTables is declarative and refuses tables with issues, per table', async () => {
    const { tables, databases } = ctx.services;
    await expect(tables.deployTables(databaseId, ['todos', 'bad_int', 'missing'])).rejects.toMatchObject({
      code: 'SCHEMA_ISSUES',
      details: { refused: [expect.objectContaining({ table: 'bad_int' }), expect.objectContaining({ table: 'missing' })] },
    });
    expect((await tables.listTables(databaseId)).selectedCount).toBe(0);
    expect(await tables.deployTables(databaseId, ['todos', 'notes'])).toEqual({ added: ['todos', 'notes'], removed: [] });
    expect(await tables.deployTables(databaseId, ['todos'])).toEqual({ added: [], removed: ['notes'] });
    await databases.setOffSync(databaseId, true);
    const list = await tables.listTables(databaseId, { selected: true });
    expect(list.nodes).toEqual([expect.objectContaining({ name: 'todos', selected: true, enabled: true, algorithm: 'cls' })]);
    expect((await ctx.services.clientIntegration(databaseId)).snippet).toContain("cloudsync_init('todos')");
  });

  test('RLS mode and validated policies', async () => {
    const { tables } = ctx.services;
    await tables.setRlsMode(databaseId, 'ENFORCE');
    await tables.setRlsPolicy(databaseId, 'todos', 'SELECT', 'user_id = auth_userid()');
    await tables.setRlsPolicy(databaseId, 'todos', 'INSERT', 'NEW.user_id = auth_userid()');
    await tables.setRlsPolicy(databaseId, 'todos', 'SELECT', "user_id = auth_userid() OR json_extract(auth_json(),'$.attributes.role') = 'admin'");
    await expect(tables.setRlsPolicy(databaseId, 'todos', 'SELECT', 'owner = auth_userid()')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(tables.setRlsPolicy(databaseId, 'todos', 'SELECT', '1; DROP TABLE todos')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(tables.setRlsPolicy(databaseId, 'todos', 'SELECT', 'id IN (SELECT id FROM notes)')).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(tables.setRlsPolicy(databaseId, 'nope', 'SELECT', '1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const cfg = await tables.getRlsConfig(databaseId);
    expect(cfg.mode).toBe('ENFORCE');
    expect(cfg.policies.map((p) => [p.table, p.operation])).toEqual([['todos', 'INSERT'], ['todos', 'SELECT']]);
    expect(cfg.policies[1]?.expression).toContain("'admin'");
    expect(await tables.removeRlsPolicy(databaseId, 'todos', 'INSERT')).toBe(true);
    expect((await tables.getRlsConfig(databaseId)).policies).toHaveLength(1);
    expect((await ctx.services.clientIntegration(databaseId)).snippet).toContain('cloudsync_network_set_token');
  });

  test('POSTGRES databases: tables via information_schema, deploy through the PostgreSQL engine', async () => {
    const base = new URL(await testPgUrl());
    // A real server (TEST_DATABASE_URL) is shared with other test files: deploy into a fresh
    // database there, so its `offsync` schema is seen by nobody else. Embedded PGlite is per file.
    const own = process.env['TEST_DATABASE_URL'] ? `offsync_tables_${randomBytes(5).toString('hex')}` : null;
    const admin = new pg.Client({ connectionString: base.toString() });
    await admin.connect();
    if (own !== null) await admin.query(`CREATE DATABASE ${own}`);
    const url = new URL(base.toString());
    if (own !== null) url.pathname = `/${own}`;
    // Schema-qualified SQL: embedded PGlite serves every connection from one session, whose
    // search_path the control-plane client may have changed.
    const user = new pg.Client({ connectionString: url.toString() });
    await user.connect();
    try {
      await user.query(`
        CREATE TABLE public.items (id text PRIMARY KEY NOT NULL, title text NOT NULL DEFAULT '', qty int);
        CREATE TABLE public.nokey (name text);
        CREATE TABLE public.tspk (at timestamptz PRIMARY KEY NOT NULL, note text);
        INSERT INTO public.items (id, title) VALUES ('a', 'before deploy');`);
      const p = await ctx.services.projects.createProject({ name: 'pgp', kind: 'POSTGRES' });
      const db = await ctx.services.databases.createDatabase({
        projectId: p.id, name: 'pg',
        connection: { host: url.hostname, port: Number(url.port || 5432), database: url.pathname.slice(1), user: decodeURIComponent(url.username), password: url.password || 'x' },
      });
      const { tables, databases } = ctx.services;
      expect((await tables.listTables(db.id)).nodes.map((t) => t.name).sort()).toEqual(['items', 'nokey', 'tspk']);
      expect((await databases.checkConnection(db.id)).extensionInstalled).toBe(false);

      // All or nothing: a table without a primary key (and a missing one) refuses the whole deploy.
      await expect(tables.deployTables(db.id, ['items', 'nokey', 'missing'])).rejects.toMatchObject({
        code: 'SCHEMA_ISSUES',
        details: { refused: [
          { table: 'nokey', issues: [expect.objectContaining({ rule: 'D1.2-rowid-only' })] },
          { table: 'missing', issues: [expect.objectContaining({ rule: 'D1.1-missing' })] },
        ] },
      });
      expect((await tables.listTables(db.id)).selectedCount).toBe(0);
      expect((await databases.checkConnection(db.id)).extensionInstalled).toBe(false);

      // Passes §P6 but the engine refuses the key type on init (after `items` was initialised):
      // per-table transactions, so the deploy cleans `items` up again and reports the engine's reason.
      await expect(tables.deployTables(db.id, ['items', 'tspk'])).rejects.toMatchObject({
        code: 'SCHEMA_ISSUES',
        details: { refused: [{ table: 'tspk', issues: [expect.objectContaining({ rule: 'PG-pk-type' })] }] },
      });
      expect((await tables.listTables(db.id)).selectedCount).toBe(0);

      expect(await tables.deployTables(db.id, ['items', 'items'])).toEqual({ added: ['items'], removed: [] });
      expect((await databases.checkConnection(db.id)).extensionInstalled).toBe(true);
      await databases.setOffSync(db.id, true);
      const listed = await tables.listTables(db.id, { selected: true });
      expect(listed.nodes).toEqual([expect.objectContaining({ name: 'items', selected: true, enabled: true, algorithm: 'cls' })]);
      expect((await ctx.services.clientIntegration(db.id)).snippet).toContain("cloudsync_init('items')");
      expect(await tables.deployTables(db.id, ['items'])).toEqual({ added: [], removed: [] });

      // The engine tracks writes made through plain pg (and back-filled the existing row).
      await user.query(`INSERT INTO public.items (id, title, qty) VALUES ('b', 'after deploy', 2)`);
      const engine = await createPgSyncEngine({ client: user });
      const changes: Change[] = [];
      for await (const ch of engine.changes()) changes.push(ch);
      expect(changes).toEqual(expect.arrayContaining([
        expect.objectContaining({ tbl: 'items', col: 'title', val: 'before deploy' }),
        expect.objectContaining({ tbl: 'items', col: 'title', val: 'after deploy' }),
        expect.objectContaining({ tbl: 'items', col: 'qty', val: 2n }),
      ]));

      expect(await tables.deployTables(db.id, [])).toEqual({ added: [], removed: ['items'] });
      expect((await tables.listTables(db.id)).selectedCount).toBe(0);
      expect(await engine.syncedTables()).toEqual([]);
      expect((await ctx.services.clientIntegration(db.id)).snippet).not.toContain("cloudsync_init('items')");
    } finally {
      await user.query(`DROP SCHEMA IF EXISTS offsync CASCADE; DROP TABLE IF EXISTS public.items, public.nokey, public.tspk`).catch(() => {});
      await user.end();
      if (own !== null) await admin.query(`DROP DATABASE IF EXISTS ${own}`);
      await admin.end();
    }
  });
});
