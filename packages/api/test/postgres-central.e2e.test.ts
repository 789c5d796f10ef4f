/**
 * POSTGRES workspaces serve devices end to end (issue 10, item 3): the customer's PostgreSQL
 * database is the central database. Through the real app: control plane (createDatabase with a
 * connection, deployTables, enableOffSync, createApiKey) → devices of every generation sync
 * through it with an API key → rows land in PostgreSQL → a row written by another program (like
 * psql) reaches the devices. On `TEST_DATABASE_URL` (CI: the real server) or an embedded PGlite.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { http, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { CHANGES } from './graphql-sync-fixture.ts';
import { call } from './sync-fixtures/devices.ts';
import { openSyncingDevice, receiveUntil, sendAll } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';
import { openTestPostgres } from './sync-fixtures/postgres.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';

const PG_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";
const DEVICE_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";

let pg: TestPostgres;
let t: RunningApp & { ws: string };
let databaseId: string;
let apiKey: string;
const natives: NativeDevice[] = [];

beforeAll(async () => {
  pg = await openTestPostgres();
  await pg.sql(PG_DDL);
  t = await startApp({ postgresPoolSize: pg.poolSize, postgresListen: pg.notifies, rateLimitPerSecond: 0 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "pg", kind: POSTGRES) { id } }');
  const c = pg.connection;
  const d = await t.gql<{ createDatabase: { id: string; connection: { status: string } } }>(
    'mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id connection { status } } }',
    { p: p.createProject.id, c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) } },
  );
  expect(d.createDatabase.connection.status).toBe('OK');
  databaseId = d.createDatabase.id;
  await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["todos"]) { added } }', { d: databaseId });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret } }', { d: databaseId });
  apiKey = k.createApiKey.secret;
});

afterAll(async () => {
  for (const n of natives) await n.close();
  await t?.dispose();
  await pg?.close();
});

const pgRows = async (): Promise<unknown[][]> => pg.sql('SELECT id, user_id, title FROM todos ORDER BY id');
const deviceRows = (d: TestDevice): unknown[][] => (d.engine.driver.prepare('SELECT id, user_id, title FROM todos ORDER BY id').all() as Array<Record<string, unknown>>).map((r) => Object.values(r));

test('G3 devices with an API key: an upload lands in PostgreSQL, another device downloads it, its own changes do not come back', async () => {
  const a = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  const b = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  a.exec("INSERT INTO todos (id, user_id, title) VALUES ('t1', 'u1', 'milk'), ('t2', 'u2', 'eggs')");
  const up = await a.upload();
  expect(up.status).toBe(200);
  const v = a.engine.dbVersion();
  expect(up.body).toMatchObject({ lastOptimisticVersion: v, lastConfirmedVersion: v });
  expect(await pgRows()).toEqual([['t1', 'u1', 'milk'], ['t2', 'u2', 'eggs']]);
  // The status endpoint reads the bookkeeping the merge wrote in the same transaction.
  const st = await http('GET', a.url('status'), apiKey);
  expect(st.body).toMatchObject({ lastOptimisticVersion: v, lastConfirmedVersion: v, gaps: [] });

  expect((await b.download()).status).toBe(200);
  expect(deviceRows(b)).toEqual(await pgRows());
  const echo = await a.download();
  expect([echo.status, echo.text]).toEqual([200, '']);

  // An edit on b merges into the PostgreSQL row and reaches a.
  b.exec("UPDATE todos SET title = 'oat milk' WHERE id = 't1'");
  expect((await b.upload()).status).toBe(200);
  expect((await pg.sql("SELECT title FROM todos WHERE id = 't1'"))[0]).toEqual(['oat milk']);
  await a.download();
  expect(deviceRows(a)).toEqual(await pgRows());
});

test('a row written by another program (psql) is captured by the triggers and delivered; so is its deletion', async () => {
  const d = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  await d.download();
  await pg.sql("INSERT INTO todos (id, user_id, title) VALUES ('p1', 'u9', 'from psql')");
  await d.download();
  expect(deviceRows(d)).toContainEqual(['p1', 'u9', 'from psql']);
  await pg.sql("DELETE FROM todos WHERE id = 'p1'");
  await d.download();
  expect(deviceRows(d).map((r) => r[0])).not.toContain('p1');
  expect(deviceRows(d)).toEqual(await pgRows());
});

test('G2b URL upload (slot issued, PUT, apply by URL) and a G1 check answering a package URL', async () => {
  const a = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  a.exec("INSERT INTO todos (id, user_id, title) VALUES ('g2', 'u4', 'via url')");
  const up = await call('GET', a.url('upload'), { key: apiKey });
  expect(up.status).toBe(200);
  const url = String((up.json() as { url: string }).url);
  const payload = a.engine.encodeChanges(a.engine.changes({ localOnly: true })) ?? new Uint8Array();
  expect((await call('PUT', url, { key: null, body: payload })).status).toBe(200);
  const applied = await call('POST', a.url('apply'), { key: apiKey, json: { url, dbVersionMin: 1, dbVersionMax: a.engine.dbVersion() } });
  expect(applied.status).toBe(200);
  expect(applied.json()).toMatchObject({ lastOptimisticVersion: a.engine.dbVersion() });
  expect(await pgRows()).toContainEqual(['g2', 'u4', 'via url']);
  // The slot is single use.
  expect((await call('POST', a.url('apply'), { key: apiKey, json: { url, dbVersionMin: 1, dbVersionMax: a.engine.dbVersion() } })).status).toBe(410);

  // G1: the check answers a plain-text URL whose package holds every PostgreSQL row.
  const g1 = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  const check = await call('POST', `${t.origin}/v1/cloudsync/${databaseId}/${g1.site}/0/0/check`, { key: apiKey, headers: { accept: 'sqlc/plain' } });
  expect(check.status).toBe(200);
  const pkg = await call('GET', check.text, { key: null });
  expect(pkg.status).toBe(200);
  g1.engine.applyPayload(pkg.bytes, { strictSchemaHash: false });
  expect(deviceRows(g1)).toEqual(await pgRows());
});

test('the native 1.1.4 client syncs through PostgreSQL with an API key, both ways', async () => {
  const dev = await openSyncingDevice({ origin: t.origin, databaseId, ddl: DEVICE_DDL, table: 'todos', apiKey });
  natives.push(dev);
  await dev.value("INSERT INTO todos (id, user_id, title) VALUES ('n1', 'u3', 'native')");
  expect(await sendAll(dev)).toBe(0n);
  expect((await pg.sql("SELECT title FROM todos WHERE id = 'n1'"))[0]).toEqual(['native']);
  await pg.sql("UPDATE todos SET title = 'edited in psql' WHERE id = 'n1'");
  expect(await receiveUntil(dev, "SELECT title FROM todos WHERE id = 'n1'", 'edited in psql')).toBe('edited in psql');
  // Everything PostgreSQL holds reached the device.
  expect(await dev.value('SELECT count(*) FROM todos')).toBe(BigInt((await pgRows()).length));
});

test('RLS mode BYPASS: a per-user access token is served every row, as on SQLite databases (postgres-rls.e2e.test.ts covers ENFORCE)', async () => {
  const tok = await t.gql<{ createAccessToken: { token: string } }>('mutation($d: ID!) { createAccessToken(databaseId: $d, userId: "u1", name: "t") { token } }', { d: databaseId });
  const d = new TestDevice(t, databaseId, tok.createAccessToken.token, DEVICE_DDL);
  expect((await d.download()).status).toBe(200);
  expect(deviceRows(d)).toEqual(await pgRows());
});

test('a device may present `<db-user>:<password>` as its API key: PostgreSQL checks the login (RLS bypassed); an unknown user is 401', async () => {
  const user = `dev_${Date.now().toString(36)}`;
  await pg.sql(`CREATE ROLE ${user} LOGIN PASSWORD 'device-secret-1'`);
  try {
    const d = new TestDevice(t, databaseId, `${user}:device-secret-1`, DEVICE_DDL);
    const nobody = new TestDevice(t, databaseId, 'no_such_user_x:whatever', DEVICE_DDL);
    expect((await nobody.download()).status).toBe(401);
    if (pg.authenticatesUsers) {
      expect((await d.download()).status).toBe(200);
      expect(deviceRows(d)).toEqual(await pgRows());
      d.exec("INSERT INTO todos (id, user_id, title) VALUES ('du1', 'u5', 'as db user')");
      expect((await d.upload()).status).toBe(200);
      expect(await pgRows()).toContainEqual(['du1', 'u5', 'as db user']);
    } else {
      // PGlite has no logins (every session is its superuser): a database user cannot be checked, so it is refused.
      expect((await d.download()).status).toBe(401);
    }
  } finally {
    await pg.sql(`DROP ROLE IF EXISTS ${user}`);
  }
});

test("OffSync's GraphQL sync fields serve POSTGRES databases: pushChanges merges into PostgreSQL, pullChanges pages the feed", async () => {
  const a = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  a.exec("INSERT INTO todos (id, user_id, title) VALUES ('q1', 'u7', 'via graphql')");
  const payload = Buffer.from(a.engine.encodeChanges(a.engine.changes({ localOnly: true })) ?? new Uint8Array()).toString('base64');
  const push = await t.gql<{ pushChanges: { applied: number; lastOptimisticVersion: number; failures: unknown[] } }>(
    'mutation($d: ID!, $s: String!, $p: String!, $max: Int) { pushChanges(databaseId: $d, siteId: $s, payload: $p, dbVersionMin: 1, dbVersionMax: $max) { applied lastOptimisticVersion failures { code } } }',
    { d: databaseId, s: a.site, p: payload, max: a.engine.dbVersion() },
  );
  expect(push.pushChanges).toMatchObject({ applied: 2, lastOptimisticVersion: a.engine.dbVersion(), failures: [] });
  expect(await pgRows()).toContainEqual(['q1', 'u7', 'via graphql']);

  const b = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  let cursor = { dbVersion: 0, seq: 0 };
  for (let i = 0; i < 100; i++) {
    const r = await t.gql<{ pullChanges: { payload: string | null; cursor: { dbVersion: number; seq: number }; final: boolean } }>(
      'query($d: ID!, $s: String!, $c: SyncCursorInput, $m: Int) { pullChanges(databaseId: $d, siteId: $s, cursor: $c, maxBytes: $m) { payload cursor { dbVersion seq } final } }',
      { d: databaseId, s: b.site, c: cursor, m: 200 },
    );
    if (r.pullChanges.payload !== null) b.engine.applyPayload(new Uint8Array(Buffer.from(r.pullChanges.payload, 'base64')), { strictSchemaHash: false });
    cursor = r.pullChanges.cursor;
    if (r.pullChanges.final) break;
  }
  expect(deviceRows(b)).toEqual(await pgRows());
});

test('the live `changes` subscription replays a POSTGRES database, then streams a row written with psql and one uploaded by a device', async () => {
  const d = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
  const client = createClient({ url: t.ws, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${apiKey}`, databaseId }, retryAttempts: 0, lazy: true });
  let failure: unknown;
  let wake: (() => void) | undefined;
  const unsubscribe = client.subscribe<{ changes: { payload: string | null; final: boolean } }>(
    { query: CHANGES, variables: { db: databaseId, site: d.site, cursor: null, max: null } },
    {
      next: (r) => {
        const p = r.data?.changes.payload;
        if (typeof p === 'string') d.engine.applyPayload(new Uint8Array(Buffer.from(p, 'base64')), { strictSchemaHash: false });
        wake?.();
      },
      error: (e) => {
        failure = e;
        wake?.();
      },
      complete: () => undefined,
    },
  );
  const until = async (ok: () => boolean): Promise<void> => {
    // Each batch (or error) wakes the check; no fixed sleep.
    while (!ok() && failure === undefined) await new Promise<void>((r) => (wake = r));
  };
  try {
    const expected = (await pgRows()).length;
    await until(() => deviceRows(d).length === expected);
    // Another program's write: the triggers NOTIFY, the server announces it, the subscriber reads it.
    await pg.sql("INSERT INTO todos (id, user_id, title) VALUES ('live1', 'u8', 'streamed')");
    if (pg.notifies) await until(() => deviceRows(d).some((r) => r[0] === 'live1'));
    // A device's upload is announced by the node that merged it (and, without LISTEN, carries the psql row along).
    const w = new TestDevice(t, databaseId, apiKey, DEVICE_DDL);
    w.exec("INSERT INTO todos (id, user_id, title) VALUES ('live2', 'u8', 'from a device')");
    expect((await w.upload()).status).toBe(200);
    await until(() => deviceRows(d).some((r) => r[0] === 'live2'));
    expect(deviceRows(d).map((r) => r[0])).toContain('live1');
    expect(failure).toBeUndefined();
    expect(deviceRows(d)).toEqual(await pgRows());
  } finally {
    unsubscribe();
    await client.dispose();
  }
});

test('a burst of concurrent uploads from 40 devices all merge (queued per database on each node, not timed out waiting for a pooled connection)', async () => {
  const devices = Array.from({ length: 40 }, () => new TestDevice(t, databaseId, apiKey, DEVICE_DDL));
  devices.forEach((d, i) => {
    const ins = d.engine.driver.prepare('INSERT INTO todos (id, user_id, title) VALUES (?, ?, ?)');
    d.engine.driver.transaction(() => {
      for (let k = 0; k < 50; k++) ins.run(`burst-${i}-${k}`, `u${i}`, `row ${k}`);
    });
  });
  const replies = await Promise.all(devices.map((d) => d.upload()));
  expect(replies.filter((r) => r.status !== 200 || r.body['failures'] !== undefined).map((r) => [r.status, JSON.stringify(r.body).slice(0, 200)])).toEqual([]);
  expect(Number((await pg.sql("SELECT count(*) FROM todos WHERE id LIKE 'burst-%'"))[0]?.[0])).toBe(40 * 50);
});
