import { describe, expect, test } from 'vitest';
import { buildClientIntegration, clientIntegrationSnippet } from './client-integration.ts';
import type { ClientIntegrationDeps } from './client-integration.ts';

const base = { databaseId: 'db_1', publicUrl: 'https://sync.example.com', jwtConfigured: false };

describe('client integration snippet', () => {
  test('SQLITE + BYPASS: an API key; no PostgreSQL credential', () => {
    const s = clientIntegrationSnippet({ ...base, rlsMode: 'BYPASS', tables: ['todos'] });
    expect(s).toContain("SELECT cloudsync_init('todos');");
    expect(s).toContain("SELECT cloudsync_network_init_custom('https://sync.example.com', 'db_1');");
    expect(s).toContain("SELECT cloudsync_network_set_apikey('<API key>');");
    expect(s).not.toContain(':<password>');
    expect(s).not.toContain('set_token');
  });

  test('POSTGRES + BYPASS: <db-user>:<password> with the user filled in and the password a placeholder, or an API key', () => {
    const s = clientIntegrationSnippet({ ...base, rlsMode: 'BYPASS', tables: ['todos'], kind: 'POSTGRES', postgresUser: 'app_sync' });
    expect(s).toContain("SELECT cloudsync_network_set_apikey('app_sync:<password>');");
    expect(s).toMatch(/RLS\) is bypassed|security is bypassed/);
    expect(s).toContain("cloudsync_network_set_apikey('<API key>')");
    expect(s).not.toContain('set_token');
  });

  test('POSTGRES + ENFORCE: a token, and a note that the database\'s own policies apply', () => {
    const jwt = clientIntegrationSnippet({ ...base, jwtConfigured: true, rlsMode: 'ENFORCE', tables: ['todos'], kind: 'POSTGRES', postgresUser: 'app_sync' });
    expect(jwt).toContain("SELECT cloudsync_network_set_token('<JWT signed by your identity provider>');");
    expect(jwt).toContain('PostgreSQL row-level security policies apply');
    expect(jwt).toContain('SET LOCAL ROLE');
    expect(jwt).not.toContain('app_sync:');
    expect(jwt).not.toContain('set_apikey');
    const tok = clientIntegrationSnippet({ ...base, rlsMode: 'ENFORCE', tables: ['todos'], kind: 'POSTGRES', postgresUser: 'app_sync' });
    expect(tok).toContain("cloudsync_network_set_token('<access token from createAccessToken>')");
    expect(tok).toContain('PostgreSQL row-level security policies apply');
  });

  test('SQLITE + ENFORCE: no PostgreSQL note', () => {
    const s = clientIntegrationSnippet({ ...base, rlsMode: 'ENFORCE', tables: ['todos'] });
    expect(s).toContain('cloudsync_network_set_token');
    expect(s).not.toContain('PostgreSQL');
  });

  test('a cloudsync_set_column line per block column, right after its table\'s cloudsync_init', () => {
    const s = clientIntegrationSnippet({ ...base, rlsMode: 'BYPASS', tables: [{ name: 'notes', blockColumns: ['body', "it's"] }, { name: 'todos' }] });
    const lines = s.split('\n');
    const i = lines.indexOf("SELECT cloudsync_init('notes');");
    expect(lines.slice(i, i + 4)).toEqual([
      "SELECT cloudsync_init('notes');",
      "SELECT cloudsync_set_column('notes', 'body', 'algo', 'block');",
      "SELECT cloudsync_set_column('notes', 'it''s', 'algo', 'block');",
      "SELECT cloudsync_init('todos');",
    ]);
    expect(s.match(/cloudsync_set_column/g)).toHaveLength(2);
  });

  test('the device DDL comes first, in the order given, each statement ended once, before the cloudsync_init lines', () => {
    const s = clientIntegrationSnippet({
      ...base,
      rlsMode: 'BYPASS',
      tables: ['notes', 'todos'],
      deviceDdl: ['CREATE TABLE "todos" ("id" TEXT NOT NULL, PRIMARY KEY ("id"))', 'CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL);'],
    });
    const lines = s.split('\n');
    const first = lines.indexOf('CREATE TABLE "todos" ("id" TEXT NOT NULL, PRIMARY KEY ("id"));');
    expect(first).toBeGreaterThan(0);
    expect(lines[first + 1]).toBe('CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL);');
    expect(lines[first - 1]).toMatch(/^-- Create the synced tables exactly as the server has them/);
    expect(first).toBeLessThan(lines.indexOf("SELECT cloudsync_init('notes');"));
    expect(clientIntegrationSnippet({ ...base, rlsMode: 'BYPASS', tables: ['todos'] })).not.toContain('CREATE TABLE');
  });

  test('no synced table yet: a placeholder table', () => {
    expect(clientIntegrationSnippet({ ...base, rlsMode: 'BYPASS', tables: [] })).toContain("SELECT cloudsync_init('<table>');");
  });
});

describe('buildClientIntegration', () => {
  const deps = (row: Record<string, unknown>, jwt = false): ClientIntegrationDeps => ({
    databases: { getDatabase: async () => ({ id: 'db_1', rlsMode: 'BYPASS', kind: 'SQLITE', pgUser: null, ...row }) as never },
    publicUrl: 'http://localhost:4000',
    jwtConfigured: async () => jwt,
    syncedTables: async () => [{ name: 'notes', blockColumns: ['body'] }],
  });

  test('POSTGRES: kind, postgresUser from the connection, never a password', async () => {
    const ci = await buildClientIntegration(deps({ kind: 'POSTGRES', pgUser: 'app_sync', pgPasswordEnc: 'enc:secret-password' }), 'db_1');
    expect(ci).toMatchObject({ kind: 'POSTGRES', rlsMode: 'BYPASS', authMethod: 'API_KEY', postgresUser: 'app_sync' });
    expect(ci.snippet).toContain("'app_sync:<password>'");
    expect(ci.snippet).not.toContain('secret-password');
    expect(ci.snippet).toContain("SELECT cloudsync_set_column('notes', 'body', 'algo', 'block');");
  });

  test('the device DDL of the tables service is shown; when it cannot be read the rest of the snippet still is', async () => {
    const ddl = 'CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)';
    const ok = await buildClientIntegration({ ...deps({}), deviceDdl: async () => [{ sql: ddl }] }, 'db_1');
    expect(ok.snippet).toContain(`${ddl};`);
    const down = await buildClientIntegration({ ...deps({}), deviceDdl: async () => { throw new Error('unreachable'); } }, 'db_1');
    expect(down.snippet).not.toContain('CREATE TABLE');
    expect(down.snippet).toContain("SELECT cloudsync_init('notes');");
  });

  test('the auth method follows the mode and the JWT provider', async () => {
    expect(await buildClientIntegration(deps({}), 'db_1')).toMatchObject({ kind: 'SQLITE', authMethod: 'API_KEY', postgresUser: null });
    expect(await buildClientIntegration(deps({ rlsMode: 'ENFORCE' }), 'db_1')).toMatchObject({ authMethod: 'ACCESS_TOKEN' });
    expect(await buildClientIntegration(deps({ rlsMode: 'ENFORCE', kind: 'POSTGRES', pgUser: 'u' }, true), 'db_1')).toMatchObject({ authMethod: 'JWT', rlsMode: 'ENFORCE' });
  });
});
