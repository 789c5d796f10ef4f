/**
 * Block-level LWW text columns on a POSTGRES database, end to end with the REAL native client
 * 1.1.4 (docs/PROTOCOL.md "Block columns"): the control plane marks `notes.body` block at deploy
 * (options.blockColumns, validated like SQLite), two devices edit, insert and delete different
 * lines offline and every edit survives on both and in the PostgreSQL table's text; an UPDATE of
 * the text by another program (psql) reaches the devices as the right lines. On
 * `TEST_DATABASE_URL` (CI: the real server) or an embedded PGlite.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startApp } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { openSyncingDevice, receiveUntil as receiveBody, sendAll } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';
import { openTestPostgres } from './sync-fixtures/postgres.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';

const DDL = "CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";
const OTHER_DDL = "CREATE TABLE other(id TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL DEFAULT 0, t VARCHAR(20) NOT NULL DEFAULT '')";
const DEPLOY = `mutation ($d: ID!, $tables: [String!]!, $mode: DeployMode, $options: [TableDeployOptions!]) {
  deployTables(databaseId: $d, tables: $tables, mode: $mode, options: $options) { added removed tables { nodes { name selected blockColumns } } }
}`;

let pg: TestPostgres;
let t: RunningApp;
let databaseId: string;
let apiKey: string;
const devices: NativeDevice[] = [];

/** A GraphQL call that returns the first error's extensions (the deploy is expected to fail). */
async function gqlError(query: string, variables: Record<string, unknown>): Promise<unknown> {
  const res = await t.app.yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminKey}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { errors?: { extensions?: unknown }[] };
  return body.errors?.[0]?.extensions;
}

type Deployed = { deployTables: { added: string[]; tables: { nodes: { name: string; selected: boolean; blockColumns: string[] }[] } } };

beforeAll(async () => {
  pg = await openTestPostgres();
  await pg.sql(DDL);
  await pg.sql(OTHER_DDL);
  t = await startApp({ postgresPoolSize: pg.poolSize, postgresListen: pg.notifies, rateLimitPerSecond: 0 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "pg", kind: POSTGRES) { id } }');
  const c = pg.connection;
  const d = await t.gql<{ createDatabase: { id: string } }>(
    'mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id } }',
    { p: p.createProject.id, c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) } },
  );
  databaseId = d.createDatabase.id;
});

afterAll(async () => {
  for (const dev of devices) await dev.close();
  await t?.dispose();
  await pg?.close();
});

test('deployTables validates blockColumns on POSTGRES like SQLite (before touching the database) and lists them on Table.blockColumns', async () => {
  const refuse = async (options: unknown, reason: string): Promise<void> => {
    expect(await gqlError(DEPLOY, { d: databaseId, tables: ['notes', 'other'], options })).toMatchObject({ code: 'VALIDATION_FAILED', reason });
  };
  await refuse([{ table: 'notes', blockColumns: ['nope'] }], 'BLOCK_COLUMN_UNKNOWN');
  await refuse([{ table: 'notes', blockColumns: ['id'] }], 'BLOCK_COLUMN_PRIMARY_KEY');
  await refuse([{ table: 'other', blockColumns: ['n'] }], 'BLOCK_COLUMN_NOT_TEXT');
  // Nothing was installed by the refused deploys.
  expect(await pg.sql("SELECT count(*)::int FROM pg_namespace WHERE nspname = 'offsync'")).toEqual([[0]]);

  const ok = await t.gql<Deployed>(DEPLOY, { d: databaseId, tables: ['notes', 'other'], options: [{ table: 'notes', blockColumns: ['body'] }, { table: 'other', blockColumns: ['t'] }] });
  expect(ok.deployTables.added.sort()).toEqual(['notes', 'other']);
  expect(ok.deployTables.tables.nodes.map((n) => [n.name, n.selected, n.blockColumns])).toEqual([['notes', true, ['body']], ['other', true, ['t']]]);
  expect(await pg.sql('SELECT tbl, col FROM offsync.block_columns ORDER BY tbl')).toEqual([['notes', 'body'], ['other', 't']]);
  // An already-synced table keeps its block columns: the same list is accepted, another refused.
  await t.gql(DEPLOY, { d: databaseId, tables: ['notes'], mode: 'ADD', options: [{ table: 'notes', blockColumns: ['body'] }] });
  expect(await gqlError(DEPLOY, { d: databaseId, tables: ['notes'], mode: 'ADD', options: [{ table: 'notes', blockColumns: ['title'] }] })).toMatchObject({ code: 'VALIDATION_FAILED', reason: 'BLOCK_COLUMNS_CHANGE' });
  // Removing a table drops its marks; adding it again without blockColumns syncs it plainly.
  await t.gql(DEPLOY, { d: databaseId, tables: ['other'], mode: 'REMOVE' });
  const again = await t.gql<Deployed>(DEPLOY, { d: databaseId, tables: ['other'], mode: 'ADD' });
  expect(again.deployTables.tables.nodes.find((n) => n.name === 'other')?.blockColumns).toEqual([]);
  // The devices below sync notes only (the schema hash covers every synced table).
  await t.gql(DEPLOY, { d: databaseId, tables: ['other'], mode: 'REMOVE' });

  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret } }', { d: databaseId });
  apiKey = k.createApiKey.secret;
});

async function device(): Promise<NativeDevice> {
  const dev = await openSyncingDevice({ origin: t.origin, databaseId, ddl: DDL, table: 'notes', blockColumn: 'body', apiKey });
  devices.push(dev);
  return dev;
}

async function send(dev: NativeDevice): Promise<void> {
  expect(await sendAll(dev)).toBe(0n);
}

async function receiveUntil(dev: NativeDevice, want: string): Promise<void> {
  expect(await receiveBody(dev, "SELECT body FROM notes WHERE id = 'n1'", want)).toBe(want);
}

const centralBody = async (): Promise<unknown> => (await pg.sql("SELECT body FROM notes WHERE id = 'n1'"))[0]?.[0];
const BLOCKS = "SELECT group_concat(replace(col_name, char(31), '|') || '=' || col_value, ',') FROM (SELECT * FROM notes_cloudsync_blocks ORDER BY col_name)";

test('two 1.1.4 devices edit, insert and delete different lines offline through PostgreSQL: every edit survives on both and in the PostgreSQL text; a psql UPDATE reaches them as the right lines', async () => {
  const a = await device();
  const b = await device();
  await a.value("INSERT INTO notes(id, title, body) VALUES ('n1', 'shopping', ?)", 'milk\nbread\neggs\nbutter');
  await send(a);
  // The device sent block cells; the PostgreSQL text is built from them.
  expect(await centralBody()).toBe('milk\nbread\neggs\nbutter');
  expect(await pg.sql("SELECT count(*)::int FROM offsync.blocks WHERE tbl = 'notes' AND val IS NOT NULL")).toEqual([[4]]);
  await receiveUntil(b, 'milk\nbread\neggs\nbutter');
  expect(await b.value('SELECT count(*) FROM notes_cloudsync_blocks')).toBe(4n);

  // Offline, concurrently: a edits line 1 and appends a line; b edits line 3 and deletes line 2.
  await a.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\nbread\neggs\nbutter\njam');
  await b.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'milk\n6 eggs\nbutter');
  const merged = 'oat milk\n6 eggs\nbutter\njam';
  await send(a);
  await send(b);
  expect(await centralBody()).toBe(merged);
  await receiveUntil(a, merged);
  await receiveUntil(b, merged);
  expect(await a.value("SELECT title FROM notes WHERE id = 'n1'")).toBe('shopping');
  expect(await a.value(BLOCKS)).toBe(await b.value(BLOCKS));
  // A third device starting from nothing gets the text from the block cells alone.
  const c = await device();
  await receiveUntil(c, merged);
  expect(await c.value(BLOCKS)).toBe(await a.value(BLOCKS));

  // psql: an UPDATE of the text reaches the devices as the right lines (kept lines keep their
  // blocks), and a device edits between them again.
  const server = 'oat milk\ncoffee\n6 eggs\njam';
  await pg.sql("UPDATE notes SET body = $1 WHERE id = 'n1'", [server]);
  await receiveUntil(a, server);
  await receiveUntil(b, server);
  expect(await a.value(BLOCKS)).toBe(await b.value(BLOCKS));
  expect(await a.value('SELECT group_concat(col_value, char(10)) FROM (SELECT col_value FROM notes_cloudsync_blocks ORDER BY col_name)')).toBe(server);
  await b.value("UPDATE notes SET body = ? WHERE id = 'n1'", 'oat milk\ncoffee\nsugar\n6 eggs\njam');
  await send(b);
  expect(await centralBody()).toBe('oat milk\ncoffee\nsugar\n6 eggs\njam');
  await receiveUntil(a, 'oat milk\ncoffee\nsugar\n6 eggs\njam');
  expect(await a.value(BLOCKS)).toBe(await b.value(BLOCKS));
}, 120_000);
