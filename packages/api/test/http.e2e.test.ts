import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import type { App } from '../src/index.ts';
import { createTestApp, providers, stopEmbeddedPg } from './helpers.ts';

afterAll(stopEmbeddedPg);

type GqlResult = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };

describe.each(providers)('GraphQL over HTTP (control plane on %s)', (provider) => {
  let app: App;
  let adminKey: string;
  let dispose: () => Promise<void>;
  beforeAll(async () => { ({ app, adminKey, dispose } = await createTestApp(provider)); });
  afterAll(async () => { await dispose(); });

  async function gql(query: string, variables: Record<string, unknown> = {}, key: string | null = adminKey): Promise<GqlResult> {
    const res = await app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as GqlResult;
  }
  async function ok<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const r = await gql(query, variables);
    expect(r.errors).toBeUndefined();
    return r.data as T;
  }

  test('unauthenticated requests get UNAUTHENTICATED', async () => {
    for (const key of [null, 'osa_wrong']) {
      const r = await gql('{ projects { id } }', {}, key);
      expect(r.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    }
    const m = await gql('mutation { createProject(name: "x", kind: SQLITE) { id } }', {}, null);
    expect(m.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  });

  test('full flow: project → SQLite database → table → deploy → OffSync → API key', async () => {
    const { createProject } = await ok<{ createProject: { id: string } }>('mutation { createProject(name: "Demo", kind: SQLITE) { id name kind } }');
    const { createDatabase } = await ok<{ createDatabase: { id: string } }>('mutation($p: ID!) { createDatabase(projectId: $p, name: "todos") { id kind offSync { enabled } connection { status error { code } } } }', { p: createProject.id });
    expect(createDatabase).toMatchObject({ kind: 'SQLITE', offSync: { enabled: false }, connection: { status: 'OK', error: null } });
    const databaseId = createDatabase.id as string;

    const file = sqliteDatabasePath(app.services.deps.dataDir, databaseId);
    const sqlite = new Database(file);
    sqlite.exec("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0); CREATE TABLE legacy (id INTEGER PRIMARY KEY, x TEXT)");
    sqlite.close();

    type Tables = { totalCount: number; selectedCount: number; nodes: { name: string; schemaIssues: { rule: string }[] }[] };
    const { database } = await ok<{ database: { tables: Tables } }>(`query($id: ID!) { database(id: $id) { tables { totalCount selectedCount nodes { name selected schemaIssues { rule message } columns { name primaryKeyPosition } } } } }`, { id: databaseId });
    expect(database.tables).toMatchObject({ totalCount: 2, selectedCount: 0 });
    const legacy = database.tables.nodes.find((t) => t.name === 'legacy');
    expect(legacy?.schemaIssues.map((i) => i.rule)).toContain('D1.4-integer-pk');

    const refused = await gql('mutation($id: ID!) { deployTables(databaseId: $id, tables: ["todos", "legacy"]) { added } }', { id: databaseId });
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'SCHEMA_ISSUES', refused: [expect.objectContaining({ table: 'legacy' })] });

    const { deployTables } = await ok<{ deployTables: unknown }>('mutation($id: ID!) { deployTables(databaseId: $id, tables: ["todos"]) { added removed tables { selectedCount } } }', { id: databaseId });
    expect(deployTables).toEqual({ added: ['todos'], removed: [], tables: { selectedCount: 1 } });
    const { enableOffSync } = await ok<{ enableOffSync: { offSync: { enabled: boolean } } }>('mutation($id: ID!) { enableOffSync(databaseId: $id) { offSync { enabled enabledAt } } }', { id: databaseId });
    expect(enableOffSync.offSync.enabled).toBe(true);

    const { createApiKey } = await ok<{ createApiKey: { secret: string; apiKey: { id: string } } }>('mutation($id: ID!) { createApiKey(databaseId: $id, name: "backend") { secret apiKey { id name prefix } } }', { id: databaseId });
    expect(createApiKey.secret).toMatch(/^osk_/);
    expect(await app.services.auth.verifyApiKey(databaseId, createApiKey.secret)).not.toBeNull();

    const after = await gql(`query($id: ID!) { databases(projectId: "${createProject.id}") { id offSync { enabled } }
      database(id: $id) { auth { apiKeys { id name prefix } jwtProvider { configured } } clientIntegration { databaseId rlsMode snippet } pushNotifications { enabled } devices(first: 10) { totalCount } metrics { activeDevices } } }`, { id: databaseId });
    expect(after.errors).toBeUndefined();
    const text = JSON.stringify(after);
    expect(text).not.toContain(createApiKey.secret);
    expect(after.data?.['database']).toMatchObject({ auth: { apiKeys: [{ id: createApiKey.apiKey.id }], jwtProvider: { configured: false } } });
    expect(text).toContain(`cloudsync_init('todos')`);
  });

  test('secrets are write-only and domain errors carry codes', async () => {
    const { createProject } = await ok<{ createProject: { id: string } }>('mutation { createProject(name: "PG", kind: POSTGRES) { id } }');
    const r = await gql('mutation($p: ID!) { createDatabase(projectId: $p, name: "x", connection: { host: "127.0.0.1", port: 1, database: "d", user: "u", password: "pg-password-123" }) { id connection { status error { code retryable } } } }', { p: createProject.id });
    expect(r.errors).toBeUndefined();
    expect(JSON.stringify(r)).not.toContain('pg-password-123');
    expect(r.data?.['createDatabase']).toMatchObject({ connection: { status: 'ERROR', error: { code: 'CONNECTION_REFUSED', retryable: true } } });
    const dbId = (r.data?.['createDatabase'] as { id: string }).id;
    expect((await gql('mutation($id: ID!) { deployTables(databaseId: $id, tables: []) { added } }', { id: dbId })).errors?.[0]?.extensions?.['code']).toBe('CONNECTION_FAILED');
    expect((await gql('{ database(id: "db_nope") { id } }')).errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
    expect((await gql('mutation { createProject(name: "", kind: SQLITE) { id } }')).errors?.[0]?.extensions?.['code']).toBe('VALIDATION_FAILED');
    const schema = await gql('{ __type(name: "PostgresConnectionInput") { inputFields { name } } d: __type(name: "Database") { fields { name } } }');
    const dbFields = (schema.data?.['d'] as { fields: { name: string }[] }).fields.map((f) => f.name);
    expect(dbFields).not.toEqual(expect.arrayContaining(['pgPasswordEnc']));
    expect(dbFields.some((f) => /password|secret|hash|Enc$/i.test(f))).toBe(false);
  });

  test('query depth limit and router 404', async () => {
    const levels = 'databases { project { '.repeat(7);
    const deep = await gql(`{ projects { ${levels} id ${'} '.repeat(14)} } }`);
    expect(deep.errors?.[0]?.message).toMatch(/depth/i);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      app.server.listen(0, '127.0.0.1', () => {
        const addr = app.server.address();
        const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
        fetch(`http://127.0.0.1:${port}/nope`).then(async (r) => resolve({ status: r.status, body: await r.text() }), reject);
      });
    });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ errors: [{ status: '404', code: 'not_found', title: 'Not found' }] });
  });
});
