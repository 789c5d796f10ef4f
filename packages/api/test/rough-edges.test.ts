/**
 * Issue 13 point 7, through the real app: schema-mismatch refusals that name the table and
 * column, are not retryable, log one warn line and land on the device record; device backlog;
 * schema-hash history; metadata tables never listed; deployTables modes, algorithm and flags;
 * deleteProject; revoked credentials listed; the GraphiQL page compressed and cacheable.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createApp } from '../src/index.ts';
import type { Logger } from '../src/index.ts';
import { createAccessToken, http, setupDatabase, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { createTestDeps } from './helpers.ts';

interface Line { level: string; message: string; fields: Record<string, unknown> }

async function startWithLog(): Promise<RunningApp & { lines: Line[] }> {
  const { deps, dataDir, cleanup } = await createTestDeps('sqlite');
  const lines: Line[] = [];
  const log = (level: string) => (message: string, fields: Record<string, unknown> = {}) => { lines.push({ level, message, fields }); };
  const accessLog: Logger = { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') };
  const app = createApp({ ...deps, sync: { cacheTtlMs: 0 }, observability: { accessLog } });
  const adminKey = await app.services.auth.ensureAdminKey();
  if (adminKey === null) throw new Error('expected a fresh admin key');
  await new Promise<void>((ok) => app.server.listen(0, '127.0.0.1', ok));
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    app, origin, adminKey, dataDir, lines,
    async gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
      const res = await fetch(`${origin}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` }, body: JSON.stringify({ query, variables }) });
      const body = (await res.json()) as { data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
      if (body.errors?.length) throw Object.assign(new Error(`GraphQL: ${body.errors.map((e) => e.message).join('; ')}`), { errors: body.errors });
      return body.data as T;
    },
    async dispose() {
      await app.dispose();
      await cleanup();
    },
  };
}

let t: Awaited<ReturnType<typeof startWithLog>>;
beforeAll(async () => { t = await startWithLog(); });
afterAll(async () => t.dispose());

const DEVICE_FIELDS = 'siteId lastError { code message at } refusedSchemaHash downloadCursor backlog { serverDbVersion cursorDbVersion versionsBehind changes bytes exact resyncRequired }';
interface DeviceView {
  siteId: string;
  lastError: { code: string; message: string } | null;
  refusedSchemaHash: string | null;
  downloadCursor: number | null;
  backlog: { serverDbVersion: number; cursorDbVersion: number; versionsBehind: number; changes: number; bytes: number; exact: boolean; resyncRequired: boolean } | null;
}
async function devices(databaseId: string): Promise<DeviceView[]> {
  const r = await t.gql<{ database: { devices: { nodes: DeviceView[] } } }>(`query($d: ID!) { database(id: $d) { devices { nodes { ${DEVICE_FIELDS} } } } }`, { d: databaseId });
  return r.database.devices.nodes;
}
async function deviceOf(databaseId: string, site: string): Promise<DeviceView> {
  return vi.waitFor(async () => {
    const d = (await devices(databaseId)).find((x) => x.siteId === site);
    if (d === undefined) throw new Error('device not recorded yet');
    return d;
  });
}

describe('schema-mismatch refusals', () => {
  test('name the table and the missing column, are not retryable, log one warn line, land on the device record; an accepted upload clears them', async () => {
    const db = await setupDatabase(t);
    // The server's todos has (id, user_id, title); this device's lacks `title`.
    const d = new TestDevice(t, db.databaseId, db.apiKey, "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '')");
    d.exec("INSERT INTO todos (id) VALUES ('a')");
    const hash = d.engine.schemaHash().toString();
    const before = t.lines.length;
    const r = await d.upload();
    expect(r.status).toBe(200);
    const failure = (r.body['failures'] as { apply: { code: string; message: string; retryable: boolean } }).apply;
    expect(failure.code).toBe('schema_hash_unknown');
    expect(failure.retryable).toBe(false);
    expect(failure.message).toContain(`Cannot apply the received payload because the schema hash is unknown ${hash}.`);
    expect(failure.message).toContain("the device's table todos lacks column title");
    const central = (await t.app.sync.databases.get(db.databaseId)).engine;
    expect(failure.message).toContain(`expected schema hash ${central.schemaHash()}`);

    const warns = t.lines.slice(before).filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]?.fields).toMatchObject({ code: 'schema_hash_unknown', schemaHash: hash, expectedSchemaHash: central.schemaHash().toString(), tables: 'todos' });
    expect(JSON.stringify(warns[0])).not.toContain(db.apiKey);

    const dev = await deviceOf(db.databaseId, d.site);
    expect(dev.lastError?.code).toBe('schema_hash_unknown');
    expect(dev.lastError?.message).toContain('lacks column title');
    expect(dev.refusedSchemaHash).toBe(hash);

    // The device migrates to the server's schema: its next upload is accepted and the error is over.
    d.engine.beginAlter('todos');
    d.exec("ALTER TABLE todos ADD COLUMN title TEXT NOT NULL DEFAULT ''");
    d.engine.commitAlter('todos');
    expect(d.engine.schemaHash()).toBe(central.schemaHash());
    d.exec("INSERT INTO todos (id, title) VALUES ('b', 'ok')");
    expect((await d.upload()).body['failures']).toBeUndefined();
    const after = await deviceOf(db.databaseId, d.site);
    expect(after.lastError).toBeNull();
    expect(after.refusedSchemaHash).toBeNull();
  });

  test('a device that syncs only some tables is told which ones it lacks; other differences name the server tables', async () => {
    const ddl = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT ''); CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)";
    const db = await setupDatabase(t, ddl, ['todos', 'notes']);
    // (Deploying todos then notes remembered the hash of {todos} alone: a device syncing only notes is unknown.)
    const partial = new TestDevice(t, db.databaseId, db.apiKey, ddl, ['notes']);
    partial.exec("INSERT INTO notes (id) VALUES ('p')");
    const m1 = ((await partial.upload()).body['failures'] as { apply: { message: string } }).apply.message;
    expect(m1).toContain('the device does not sync table todos');
    const other = new TestDevice(t, db.databaseId, db.apiKey, "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '', extra TEXT); CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)", ['todos', 'notes']);
    other.exec("INSERT INTO todos (id) VALUES ('o')");
    const m2 = ((await other.upload()).body['failures'] as { apply: { message: string } }).apply.message;
    expect(m2).toContain('the server cannot tell which');
    expect(m2).toContain('Server tables: notes(id, body), todos(id, user_id, title)');
  });
});

test('device backlog: changes and bytes after its last check cursor, from other sites', async () => {
  const db = await setupDatabase(t);
  const writer = new TestDevice(t, db.databaseId, db.apiKey);
  const reader = new TestDevice(t, db.databaseId, db.apiKey);
  reader.exec("INSERT INTO todos (id, title) VALUES ('r1', 'mine')");
  await reader.upload(); // registers the reader; its own change is never in its backlog
  writer.exec("INSERT INTO todos (id, title) VALUES ('w1', 'one')");
  writer.exec("INSERT INTO todos (id, title) VALUES ('w2', 'two')");
  await writer.upload();
  const central = (await t.app.sync.databases.get(db.databaseId)).engine;
  const server = central.dbVersion();

  let r = await deviceOf(db.databaseId, reader.site);
  expect(r.downloadCursor).toBeNull();
  // Two rows of the writer × (sentinel-free insert: one cell per value column) as the feed expands them.
  const writerChanges = [...central.changes({ excludeSiteId: reader.engine.siteId })].length;
  expect(writerChanges).toBeGreaterThan(0);
  expect(r.backlog).toMatchObject({ serverDbVersion: server, cursorDbVersion: 0, versionsBehind: server, changes: writerChanges, exact: true, resyncRequired: false });
  expect(r.backlog?.bytes).toBeGreaterThan(0);

  await reader.download(); // asks from 0: the server knows cursor 0
  await reader.download(); // asks from the watermark it received
  expect(reader.rows()).toHaveLength(3);
  r = await deviceOf(db.databaseId, reader.site);
  expect(r.downloadCursor).toBe(server);
  expect(r.backlog).toMatchObject({ cursorDbVersion: server, versionsBehind: 0, changes: 0, bytes: 0 });
  const w = await deviceOf(db.databaseId, writer.site);
  expect(w.backlog?.changes).toBe([...central.changes({ excludeSiteId: writer.engine.siteId })].length);
});

test('schema-hash history: both variants of the deployed schema, marked current; an older schema stays known', async () => {
  const db = await setupDatabase(t);
  const q = 'query($d: ID!) { database(id: $d) { schemaHistory { hash seq kind current } } }';
  const central = (await t.app.sync.databases.get(db.databaseId)).engine;
  const first = (await t.gql<{ database: { schemaHistory: { hash: string; kind: string; current: boolean }[] } }>(q, { d: db.databaseId })).database.schemaHistory;
  expect(first).toEqual(expect.arrayContaining([
    expect.objectContaining({ hash: central.schemaHash().toString(), kind: 'column-list', current: true }),
    expect.objectContaining({ hash: central.ddlSchemaHash().toString(), kind: 'ddl-text', current: true }),
  ]));
  // A second synced table: a new schema; the first one's hashes stay in the history, not current.
  const file = new Database(sqliteDatabasePath(t.dataDir, db.databaseId));
  file.exec('CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)');
  file.close();
  await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["notes"], mode: ADD) { added } }', { d: db.databaseId });
  const second = (await t.gql<{ database: { schemaHistory: { hash: string; current: boolean }[] } }>(q, { d: db.databaseId })).database.schemaHistory;
  expect(second.find((h) => h.hash === first[0]?.hash)?.current).toBe(false);
  expect(second.filter((h) => h.current)).toHaveLength(2);
  expect(second.length).toBe(first.length + 2);
});

test('table listing never offers metadata tables (offsync_*, <t>__crdt_rows/_cells) of a central file that served syncs', async () => {
  const db = await setupDatabase(t);
  const d = new TestDevice(t, db.databaseId, db.apiKey);
  d.exec("INSERT INTO todos (id) VALUES ('x')");
  await d.upload();
  await d.download();
  const file = new Database(sqliteDatabasePath(t.dataDir, db.databaseId), { readonly: true });
  const all = file.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  file.close();
  expect(all).toEqual(expect.arrayContaining(['todos__crdt_rows', 'todos__crdt_cells', 'offsync_peers', 'offsync_device_state']));
  const listed = await t.gql<{ database: { tables: { nodes: { name: string }[] } } }>('query($d: ID!) { database(id: $d) { tables { nodes { name } } } }', { d: db.databaseId });
  expect(listed.database.tables.nodes.map((n) => n.name)).toEqual(['todos']);
});

describe('deployTables modes, algorithm and flags', () => {
  const DDL = "CREATE TABLE a(id TEXT PRIMARY KEY NOT NULL); CREATE TABLE b(id TEXT PRIMARY KEY NOT NULL); CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL); CREATE TABLE n(id INTEGER PRIMARY KEY NOT NULL, v TEXT)";
  let databaseId: string;
  const deploy = (tables: string[], extra = '', vars: Record<string, unknown> = {}) =>
    t.gql<{ deployTables: { added: string[]; removed: string[]; tables: { nodes: { name: string; selected: boolean; algorithm: string | null; initFlags: number; schemaIssues: { rule: string }[] }[] } } }>(
      `mutation($d: ID!, $t: [String!]!${Object.keys(vars).map((k) => `, $${k}: [TableDeployOptions!]`).join('')}) { deployTables(databaseId: $d, tables: $t${extra}) { added removed tables { nodes { name selected algorithm initFlags schemaIssues { rule } } } } }`,
      { d: databaseId, t: tables, ...vars },
    );
  beforeAll(async () => {
    databaseId = (await setupDatabase(t, DDL, ['a'])).databaseId;
  });

  test('ADD keeps the others, REMOVE takes out only the given ones, REPLACE (default) sets the whole set', async () => {
    expect(await deploy(['b'], ', mode: ADD')).toMatchObject({ deployTables: { added: ['b'], removed: [] } });
    expect(await deploy(['c'], ', mode: ADD')).toMatchObject({ deployTables: { added: ['c'], removed: [] } });
    expect(await deploy(['a', 'zzz'], ', mode: REMOVE')).toMatchObject({ deployTables: { added: [], removed: ['a'] } });
    const r = await deploy(['a']);
    expect(r.deployTables).toMatchObject({ added: ['a'], removed: ['b', 'c'] });
    expect(r.deployTables.tables.nodes.filter((n) => n.selected).map((n) => n.name)).toEqual(['a']);
  });

  test('per-table algorithm and init flags; flags waive their D.1 rule, stay recorded, and an algorithm change is refused', async () => {
    await expect(deploy(['n'], ', mode: ADD')).rejects.toMatchObject({ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'SCHEMA_ISSUES' }) })] });
    const r = await deploy(['n', 'b'], ', mode: ADD, options: $o', { o: [{ table: 'n', allowIntegerPk: true }, { table: 'b', algorithm: 'GOS' }] });
    expect(r.deployTables.added).toEqual(['n', 'b']);
    const byName = new Map(r.deployTables.tables.nodes.map((n) => [n.name, n]));
    expect(byName.get('n')).toMatchObject({ selected: true, algorithm: 'CLS', initFlags: 1, schemaIssues: [] });
    expect(byName.get('b')).toMatchObject({ selected: true, algorithm: 'GOS', initFlags: 0 });
    // A later REPLACE that keeps n does not re-check the rule its flag waived.
    expect((await deploy(['a', 'n', 'b'])).deployTables).toMatchObject({ added: [], removed: [] });
    await expect(deploy(['b'], ', mode: ADD, options: $o', { o: [{ table: 'b', algorithm: 'CLS' }] })).rejects.toThrow(/syncs with gos/);
    await expect(deploy(['a'], ', mode: REMOVE, options: $o', { o: [{ table: 'a', algorithm: 'CLS' }] })).rejects.toThrow(/not among the tables being deployed/);
    // Devices can merge into the gos table: the central engine uses what was deployed.
    const central = (await t.app.sync.databases.get(databaseId)).engine;
    expect(central.syncedTables().find((s) => s.name === 'b')?.algorithm).toBe('gos');
  });
});

test('deleteProject deletes its databases (records and central files)', async () => {
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "gone", kind: SQLITE) { id } }');
  const ids: string[] = [];
  for (const name of ['x', 'y']) ids.push((await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!, $n: String!) { createDatabase(projectId: $p, name: $n) { id } }', { p: p.createProject.id, n: name })).createDatabase.id);
  for (const id of ids) expect(existsSync(sqliteDatabasePath(t.dataDir, id))).toBe(true);
  const r = await t.gql<{ deleteProject: { id: string; deletedDatabaseIds: string[] } }>('mutation($p: ID!) { deleteProject(id: $p) { id deletedDatabaseIds } }', { p: p.createProject.id });
  expect(r.deleteProject.deletedDatabaseIds.sort()).toEqual([...ids].sort());
  for (const id of ids) expect(existsSync(sqliteDatabasePath(t.dataDir, id))).toBe(false);
  const left = await t.gql<{ projects: { id: string }[] }>('{ projects { id } }');
  expect(left.projects.map((x) => x.id)).not.toContain(p.createProject.id);
  await expect(t.gql('mutation($p: ID!) { deleteProject(id: $p) { id } }', { p: p.createProject.id })).rejects.toThrow(/not found/);
});

test('revoked credentials are listed with revokedAt on request', async () => {
  const db = await setupDatabase(t);
  await createAccessToken(t, db.databaseId, 'u1');
  const tokens = await t.gql<{ database: { auth: { accessTokens: { id: string }[] } } }>('query($d: ID!) { database(id: $d) { auth { accessTokens { id } } } }', { d: db.databaseId });
  const tokenId = tokens.database.auth.accessTokens[0]?.id;
  await t.gql('mutation($id: ID!) { revokeAccessToken(id: $id) { id } }', { id: tokenId });
  await t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: db.apiKeyId });
  const q = 'query($d: ID!, $r: Boolean) { database(id: $d) { auth { accessTokens(includeRevoked: $r) { id revokedAt } apiKeys(includeRevoked: $r) { id revokedAt } } } }';
  type A = { database: { auth: { accessTokens: { id: string; revokedAt: string | null }[]; apiKeys: { id: string; revokedAt: string | null }[] } } };
  const active = await t.gql<A>(q, { d: db.databaseId, r: false });
  expect(active.database.auth.accessTokens).toEqual([]);
  expect(active.database.auth.apiKeys).toEqual([]);
  const all = await t.gql<A>(q, { d: db.databaseId, r: true });
  expect(all.database.auth.accessTokens).toEqual([{ id: tokenId, revokedAt: expect.any(String) }]);
  expect(all.database.auth.apiKeys).toEqual([{ id: db.apiKeyId, revokedAt: expect.any(String) }]);
});

test('the GraphiQL page is gzipped, carries an ETag and is revalidated with a 304', async () => {
  const plain = await fetch(`${t.origin}/graphql`, { headers: { accept: 'text/html', 'accept-encoding': 'identity' } });
  const html = await plain.text();
  expect(plain.status).toBe(200);
  expect(html).toContain('OffSync control plane');
  const etag = plain.headers.get('etag');
  expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
  expect(plain.headers.get('cache-control')).toBe('no-cache');
  // Raw bytes over node:http (fetch would decode): gzip is what goes over the wire.
  const { request } = await import('node:http');
  const raw = await new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((ok, fail) => {
    const req = request(`${t.origin}/graphql`, { headers: { accept: 'text/html', 'accept-encoding': 'gzip, br' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    req.end();
  });
  expect(raw.headers['content-encoding']).toBe('gzip');
  expect(raw.body.length).toBeLessThan(Buffer.byteLength(html) / 3);
  expect(gunzipSync(raw.body).toString('utf8')).toBe(html);
  const again = await fetch(`${t.origin}/graphql`, { headers: { accept: 'text/html', 'if-none-match': etag ?? '' } });
  expect(again.status).toBe(304);
  // Queries are still Yoga's.
  const q = await http('POST', `${t.origin}/graphql`, t.adminKey, { query: '{ projects { id } }' });
  expect(q.status).toBe(200);
});
