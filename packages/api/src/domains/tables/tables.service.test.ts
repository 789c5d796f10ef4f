import Database from 'better-sqlite3';
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

  test('POSTGRES databases: tables via information_schema, deploy NOT_SUPPORTED_YET', async () => {
    const url = new URL(await testPgUrl());
    const p = await ctx.services.projects.createProject({ name: 'pgp', kind: 'POSTGRES' });
    const db = await ctx.services.databases.createDatabase({
      projectId: p.id, name: 'pg',
      connection: { host: url.hostname, port: Number(url.port || 5432), database: url.pathname.slice(1), user: decodeURIComponent(url.username), password: url.password || 'x' },
    });
    const list = await ctx.services.tables.listTables(db.id);
    expect(list.selectedCount).toBe(0);
    await expect(ctx.services.tables.deployTables(db.id, ['x'])).rejects.toMatchObject({ code: 'NOT_SUPPORTED_YET' });
  });
});
