/**
 * The control plane's alter call (`alterTable`, docs/PROTOCOL.md §P6 "Alteration") and the device
 * DDL (`Database.deviceDdl`), through the real app, on a SQLITE database and on a POSTGRES one
 * (TEST_DATABASE_URL when set, else an embedded PGlite): a column added while a device syncs (its
 * next upload with the old schema hash accepted, a device created from the new DDL receiving the
 * back-filled values), refused statements changing nothing, non-admin credentials refused, and
 * G1/G2a devices without an upload stamped with the DDL-text hash of a device created from
 * `deviceDdl`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import Database from 'better-sqlite3';
import { decodePayload } from '@offsync/core';
import { openReplica } from '@offsync/core/testing';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createAccessToken, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { call } from './sync-fixtures/devices.ts';
import { openTestPostgres } from './sync-fixtures/postgres.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';
import { siteId } from './helpers.ts';

const TODOS = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '')";
const NOTES = 'CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)';

interface GqlReply<T> { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] }

interface Kind {
  kind: 'SQLITE' | 'POSTGRES';
  t: RunningApp;
  databaseId: string;
  apiKey: string;
  /** Rows of todos in the central database (id, title, prio when present), ordered by id. */
  rows(): Promise<unknown[][]>;
  /** False on PGlite (one session shared by every connection: an alter's transaction would take in a merge). */
  concurrent: boolean;
  close(): Promise<void>;
}

async function gqlAs<T>(t: RunningApp, credential: string | null, query: string, variables: Record<string, unknown> = {}): Promise<GqlReply<T>> {
  const res = await t.app.yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(credential === null ? {} : { authorization: `Bearer ${credential}` }) },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as GqlReply<T>;
}

const ALTER = `mutation($d: ID!, $t: String!, $s: [String!]!) {
  alterTable(databaseId: $d, table: $t, statements: $s) { statements schemaHash ddlSchemaHash table { name columns { name type notNull defaultValue } } }
}`;

interface AlterReply { alterTable: { statements: string[]; schemaHash: string; ddlSchemaHash: string; table: { name: string; columns: { name: string }[] } } }

async function alter(k: Kind, statements: string[], credential: string | null = k.t.adminKey): Promise<GqlReply<AlterReply>> {
  return gqlAs<AlterReply>(k.t, credential, ALTER, { d: k.databaseId, t: 'todos', s: statements });
}

async function deviceDdlOf(k: Kind): Promise<{ table: string; sql: string }[]> {
  const r = await k.t.gql<{ database: { deviceDdl: { table: string; sql: string }[] } }>('query($d: ID!) { database(id: $d) { deviceDdl { table sql } } }', { d: k.databaseId });
  return r.database.deviceDdl;
}

async function columnsOf(k: Kind): Promise<string[]> {
  const r = await k.t.gql<{ database: { tables: { nodes: { name: string; columns: { name: string }[] }[] } } }>(
    'query($d: ID!) { database(id: $d) { tables { nodes { name columns { name } } } } }',
    { d: k.databaseId },
  );
  return r.database.tables.nodes.find((n) => n.name === 'todos')?.columns.map((c) => c.name) ?? [];
}

async function openSqliteKind(): Promise<Kind> {
  const t = await startApp({ rateLimitPerSecond: 0 });
  const { databaseId, apiKey } = await setupDatabase(t, `${TODOS}; ${NOTES}`, ['todos']);
  const rows = async (): Promise<unknown[][]> => {
    const open = t.app.sync.databases.peek(databaseId);
    if (open !== undefined) return open.driver.prepare('SELECT * FROM todos ORDER BY id').all().map((r) => Object.values(r));
    const db = new Database(sqliteDatabasePath(t.dataDir, databaseId), { readonly: true });
    try {
      return db.prepare('SELECT * FROM todos ORDER BY id').raw().all() as unknown[][];
    } finally {
      db.close();
    }
  };
  return { kind: 'SQLITE', t, databaseId, apiKey, rows, concurrent: true, close: () => t.dispose() };
}

async function openPostgresKind(): Promise<Kind> {
  const pg: TestPostgres = await openTestPostgres();
  await pg.sql(TODOS);
  await pg.sql(NOTES);
  const t = await startApp({ postgresPoolSize: pg.poolSize, postgresListen: pg.notifies, rateLimitPerSecond: 0 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "pg", kind: POSTGRES) { id } }');
  const c = pg.connection;
  const d = await t.gql<{ createDatabase: { id: string } }>(
    'mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id } }',
    { p: p.createProject.id, c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) } },
  );
  const databaseId = d.createDatabase.id;
  await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["todos"]) { added } }', { d: databaseId });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret } }', { d: databaseId });
  return {
    kind: 'POSTGRES',
    t,
    databaseId,
    apiKey: k.createApiKey.secret,
    rows: () => pg.sql('SELECT * FROM todos ORDER BY id'),
    concurrent: pg.notifies,
    close: async () => {
      await t.dispose();
      await pg.close();
    },
  };
}

const deviceRows = (d: TestDevice): unknown[][] => d.engine.driver.prepare('SELECT * FROM todos ORDER BY id').all().map((r) => Object.values(r));

/** Normalises integer cells (bigint on SQLite devices, number / string elsewhere) for comparisons. */
const norm = (rows: unknown[][]): string[][] => rows.map((r) => r.map((v) => String(v)));

for (const open of [openSqliteKind, openPostgresKind]) {
  describe(open === openSqliteKind ? 'SQLITE database' : 'POSTGRES database', () => {
    let k: Kind;
    beforeAll(async () => {
      k = await open();
    }, 120_000);
    afterAll(async () => k?.close(), 120_000);

    test('a non-admin credential (API key, access token, none) cannot alter: UNAUTHENTICATED, nothing changed', async () => {
      const before = await deviceDdlOf(k);
      const token = await createAccessToken(k.t, k.databaseId, 'u1');
      for (const credential of [k.apiKey, token, null]) {
        const r = await alter(k, ['ALTER TABLE todos ADD COLUMN stolen TEXT'], credential);
        expect(r.data?.alterTable).toBeUndefined();
        expect(r.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
      }
      expect(await deviceDdlOf(k)).toEqual(before);
      expect(await columnsOf(k)).toEqual(['id', 'title']);
    }, 120_000);

    test('refused statements (DROP TABLE, another table, a key change, a function default) and a failing one change nothing', async () => {
      const device = new TestDevice(k.t, k.databaseId, k.apiKey, TODOS);
      device.exec("INSERT INTO todos (id, title) VALUES ('r1', 'before')");
      expect((await device.upload()).status).toBe(200);
      const ddl = await deviceDdlOf(k);
      const cases: [string[], string, string | undefined][] = [
        [['DROP TABLE todos'], 'ALTER_REFUSED', 'NOT_ALTER_TABLE'],
        [['ALTER TABLE notes ADD COLUMN x TEXT'], 'ALTER_REFUSED', 'OTHER_TABLE'],
        [['ALTER TABLE todos ADD COLUMN x TEXT; DROP TABLE notes'], 'ALTER_REFUSED', 'MULTIPLE_STATEMENTS'],
        [['ALTER TABLE todos DROP COLUMN id'], 'ALTER_REFUSED', 'PRIMARY_KEY_CHANGE'],
        [['ALTER TABLE todos RENAME COLUMN id TO key'], 'ALTER_REFUSED', 'PRIMARY_KEY_CHANGE'],
        [['ALTER TABLE todos RENAME TO todos2'], 'ALTER_REFUSED', 'TABLE_RENAME'],
        [["ALTER TABLE todos ADD COLUMN x TEXT DEFAULT lower('A')"], 'ALTER_REFUSED', 'UNSUPPORTED'],
        // The first statement ran, the second fails in the database: the first is undone too.
        [['ALTER TABLE todos ADD COLUMN x TEXT', 'ALTER TABLE todos ADD COLUMN title TEXT'], 'ALTER_FAILED', undefined],
      ];
      if (k.kind === 'POSTGRES') cases.push([['ALTER TABLE todos DROP CONSTRAINT todos_pkey'], 'ALTER_REFUSED', 'PRIMARY_KEY_CHANGE']);
      for (const [statements, code, reason] of cases) {
        const r = await alter(k, statements);
        expect(r.data?.alterTable, statements.join(' | ')).toBeUndefined();
        expect(r.errors?.[0]?.extensions, statements.join(' | ')).toMatchObject({ code, ...(reason === undefined ? {} : { reason }) });
      }
      expect(await deviceDdlOf(k)).toEqual(ddl);
      expect(await columnsOf(k)).toEqual(['id', 'title']);
      expect(norm(await k.rows())).toContainEqual(['r1', 'before']);
      // Tracking still works: the next upload lands, and another device receives it.
      device.exec("UPDATE todos SET title = 'after' WHERE id = 'r1'");
      expect((await device.upload()).status).toBe(200);
      const other = new TestDevice(k.t, k.databaseId, k.apiKey, TODOS);
      expect((await other.download()).status).toBe(200);
      expect(norm(deviceRows(other))).toContainEqual(['r1', 'after']);
    }, 120_000);

    test('a column added while a device syncs: its next upload with the old schema hash is accepted, a device created from the new DDL receives the back-filled values', async () => {
      const old = new TestDevice(k.t, k.databaseId, k.apiKey, TODOS);
      old.exec("INSERT INTO todos (id, title) VALUES ('a1', 'milk'), ('a2', 'eggs')");
      expect((await old.upload()).status).toBe(200);
      const oldHash = old.engine.schemaHash().toString();

      const r = await alter(k, ['ALTER TABLE todos ADD COLUMN prio INTEGER NOT NULL DEFAULT 3']);
      expect(r.errors).toBeUndefined();
      const res = r.data?.alterTable;
      expect(res?.table.columns.map((c) => c.name)).toEqual(['id', 'title', 'prio']);
      expect(res?.schemaHash).not.toBe(oldHash);
      expect(res?.statements).toEqual([k.kind === 'POSTGRES' ? 'ALTER TABLE "public"."todos" ADD COLUMN "prio" INTEGER NOT NULL DEFAULT 3' : 'ALTER TABLE "todos" ADD COLUMN "prio" INTEGER NOT NULL DEFAULT 3']);

      // The device still on the old schema: its upload (old hash in the header) is accepted.
      old.exec("INSERT INTO todos (id, title) VALUES ('a3', 'after the alter')");
      const up = await old.upload();
      expect(up.status).toBe(200);
      expect(up.body['failures']).toBeUndefined();
      expect(norm(await k.rows()).filter((row) => row[0]?.startsWith('a'))).toEqual([['a1', 'milk', '3'], ['a2', 'eggs', '3'], ['a3', 'after the alter', '3']]);

      // A device created from the device DDL the control plane now shows downloads everything, prio included.
      const ddl = await deviceDdlOf(k);
      expect(ddl.map((d) => d.table)).toEqual(['todos']);
      expect(ddl[0]?.sql).toMatch(/prio/);
      const fresh = new TestDevice(k.t, k.databaseId, k.apiKey, ddl.map((d) => d.sql).join(';\n'));
      expect(fresh.engine.schemaHash().toString()).toBe(res?.schemaHash);
      expect((await fresh.download()).status).toBe(200);
      expect(norm(deviceRows(fresh))).toEqual(norm(await k.rows()));
      // The back-fill is in the feed as changes of prio (not only the device's own DEFAULT).
      const check = await http('POST', fresh.url('check'), k.apiKey, { dbVersion: 0, seq: 0, cursor: 0 });
      const payload = (check.body['data'] as { payload?: string } | undefined)?.payload;
      const changes = decodePayload(new Uint8Array(Buffer.from(String(payload), 'base64'))).changes;
      expect(changes.filter((c) => c.col === 'prio' && (c.pk.length > 0)).length).toBeGreaterThanOrEqual(2);

      // The client-integration snippet shows the same statements.
      const ci = await k.t.gql<{ database: { clientIntegration: { snippet: string } } }>('query($d: ID!) { database(id: $d) { clientIntegration { snippet } } }', { d: k.databaseId });
      expect(ci.database.clientIntegration.snippet).toContain(`${ddl[0]?.sql};`);
    }, 120_000);

    test('G1 and G2a devices with no upload yet are stamped with the DDL-text hash of a SQLite database created from deviceDdl', async () => {
      const ddl = await deviceDdlOf(k);
      const device = openReplica(ddl.map((d) => d.sql).join(';\n'), ddl.map((d) => d.table));
      const expected = device.ddlSchemaHash();
      device.close();
      expect(expected).not.toBe(0n);
      const g2a = await call('POST', `${k.t.origin}/v2/cloudsync/${k.databaseId}/${siteId()}/check`, { key: k.apiKey, json: { dbVersion: 0, seq: 0 } });
      const g1 = await call('POST', `${k.t.origin}/v1/cloudsync/${k.databaseId}/${siteId()}/0/0/check`, { key: k.apiKey, headers: { accept: 'sqlc/plain' } });
      for (const check of [g2a, g1]) {
        expect(check.status).toBe(200);
        const pkg = await call('GET', check.text, { key: null });
        expect(pkg.status).toBe(200);
        expect(decodePayload(pkg.bytes).header.schemaHash).toBe(expected);
      }
    }, 120_000);

    test('an alter while devices upload: the merges wait for it or go first, every upload lands, nothing is lost', async () => {
      const devices = Array.from({ length: 3 }, () => new TestDevice(k.t, k.databaseId, k.apiKey, TODOS));
      devices.forEach((d, i) => d.exec(`INSERT INTO todos (id, title) VALUES ('c${i}', 'concurrent ${i}')`));
      const uploads = (): Promise<{ status: number; body: Record<string, unknown> }[]> => Promise.all(devices.map((d) => d.upload()));
      const altering = () => alter(k, ['ALTER TABLE todos ADD COLUMN note TEXT']);
      const [ups, r] = k.concurrent ? await Promise.all([uploads(), altering()]) : [await uploads(), await altering()];
      expect(r.errors).toBeUndefined();
      expect(r.data?.alterTable.table.columns.map((c) => c.name)).toEqual(['id', 'title', 'prio', 'note']);
      for (const up of ups) expect([up.status, up.body['failures']]).toEqual([200, undefined]);
      expect(norm(await k.rows()).filter((row) => row[0]?.startsWith('c'))).toEqual([0, 1, 2].map((i) => [`c${i}`, `concurrent ${i}`, '3', 'null']));
    }, 120_000);
  });
}
