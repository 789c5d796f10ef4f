/**
 * The database is resolved once per sync request (issue 10 item 2): authentication and the open
 * of the central database share one control-plane look-up. With `cacheTtlMs: 0` every look-up
 * reaches the control plane, so counting the resolver's calls counts control-plane resolutions. Upload, check, status and an
 * artifact download over HTTP, and `pushChanges` / `pullChanges` over GraphQL with a device
 * credential and with the admin key — on a SQLite database and on a POSTGRES one (PGlite, or the
 * server of `TEST_DATABASE_URL`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { G3, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { PULL, PUSH } from './graphql-sync-fixture.ts';
import { openTestPostgres } from './sync-fixtures/postgres.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';

const DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";

interface Counted {
  t: RunningApp & { ws: string };
  databaseId: string;
  apiKey: string;
  /** Resolutions of the database (control-plane look-ups, the cache being off) since the last `take()`. */
  take(): number;
}

/**
 * Counts, in place, the data plane's resolver calls for the database: `SyncDeps.resolveDatabase`
 * and the authenticator reach it dynamically. (The RLS policies are a cache of their own,
 * data-plane/rls.ts, not a resolution of the database.)
 */
function counting(t: RunningApp & { ws: string }, databaseId: string, apiKey: string): Counted {
  let resolutions = 0;
  const resolver = t.app.dataPlane.resolver;
  const resolve = resolver.resolve.bind(resolver);
  resolver.resolve = (id) => {
    if (id === databaseId) resolutions++;
    return resolve(id);
  };
  return {
    t,
    databaseId,
    apiKey,
    take() {
      const r = resolutions;
      resolutions = 0;
      return r;
    },
  };
}

async function gql<T>(c: Counted, query: string, variables: Record<string, unknown>, credential: string): Promise<{ data?: T; errors?: unknown[] }> {
  const res = await fetch(`${c.t.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: T; errors?: unknown[] };
}

/** Every kind of sync request, each answered after exactly one control-plane resolution. */
async function checkEveryRequest(c: Counted): Promise<void> {
  const a = new TestDevice(c.t, c.databaseId, c.apiKey, DDL);
  const b = new TestDevice(c.t, c.databaseId, c.apiKey, DDL);
  c.take();

  // Upload (G3 inline apply).
  a.exec("INSERT INTO todos (id, user_id, title) VALUES ('t1', 'u1', 'milk'), ('t2', 'u2', 'eggs')");
  expect((await a.upload()).status).toBe(200);
  expect(c.take()).toBe(1);

  // Check (G3 inline): b receives a's rows.
  expect((await b.download()).status).toBe(200);
  expect(c.take()).toBe(1);
  expect(b.rows()).toEqual(a.rows());

  // Status.
  expect((await http('GET', a.url('status'), c.apiKey)).status).toBe(200);
  expect(c.take()).toBe(1);

  // Download through an artifact URL: a G2b check (no X-CloudSync-Version) answers a URL, one look-up; the GET of it, one more.
  const { 'x-cloudsync-version': _version, ...g2b } = G3;
  const fresh = new TestDevice(c.t, c.databaseId, c.apiKey, DDL);
  c.take();
  const check = await fetch(fresh.url('check'), { method: 'POST', headers: { ...g2b, authorization: `Bearer ${c.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ dbVersion: 0, seq: 0 }) });
  const { url } = (await check.json()) as { url: string };
  expect([check.status, typeof url]).toEqual([200, 'string']);
  expect(c.take()).toBe(1);
  const artifact = await fetch(url);
  const bytes = new Uint8Array(await artifact.arrayBuffer());
  expect(artifact.status).toBe(200);
  expect(c.take()).toBe(1);
  fresh.engine.applyPayload(bytes);
  expect(fresh.rows()).toEqual(a.rows());

  // A refused credential: still one look-up (404 first for unknown databases, then 401).
  expect((await http('GET', a.url('status'), 'not-a-key')).status).toBe(401);
  expect(c.take()).toBe(1);

  // GraphQL sync fields with the device credential, then with the admin key.
  a.exec("UPDATE todos SET title = 'oat milk' WHERE id = 't1'");
  const payload = Buffer.from(a.engine.encodeChanges(a.engine.changes({ localOnly: true, after: { dbVersion: a.sent, seq: Number.MAX_SAFE_INTEGER } })) ?? new Uint8Array()).toString('base64');
  const pushed = await gql<{ pushChanges: { applied: number } }>(c, PUSH, { db: c.databaseId, site: a.site, payload, min: a.sent + 1, max: a.engine.dbVersion() }, c.apiKey);
  expect(pushed).toEqual({ data: { pushChanges: expect.objectContaining({ applied: 1 }) } });
  expect(c.take()).toBe(1);
  const pulled = await gql<{ pullChanges: { changes: number } }>(c, PULL, { db: c.databaseId, site: b.site, cursor: b.cursor }, c.apiKey);
  expect(pulled.data?.pullChanges.changes).toBeGreaterThan(0);
  expect(c.take()).toBe(1);
  const admin = await gql<{ pullChanges: { changes: number } }>(c, PULL, { db: c.databaseId, site: b.site, cursor: b.cursor }, c.t.adminKey);
  expect(admin.data?.pullChanges.changes).toBe(pulled.data?.pullChanges.changes);
  expect(c.take()).toBe(1);
}

describe('SQLite database', () => {
  let c: Counted;
  beforeAll(async () => {
    const t = await startApp({ cacheTtlMs: 0, rateLimitPerSecond: 0 });
    const db = await setupDatabase(t, DDL);
    c = counting(t, db.databaseId, db.apiKey);
  }, 120_000);
  afterAll(async () => {
    await c?.t.dispose();
  });

  test('upload, check, status, artifact download, pushChanges and pullChanges: one control-plane resolution each', async () => {
    await checkEveryRequest(c);
  }, 120_000);
});

describe('POSTGRES database', () => {
  let pg: TestPostgres;
  let c: Counted;
  beforeAll(async () => {
    pg = await openTestPostgres();
    await pg.sql(DDL);
    const t = await startApp({ cacheTtlMs: 0, rateLimitPerSecond: 0, postgresPoolSize: pg.poolSize, postgresListen: pg.notifies });
    const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "pg", kind: POSTGRES) { id } }');
    const conn = pg.connection;
    const d = await t.gql<{ createDatabase: { id: string } }>(
      'mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id } }',
      { p: p.createProject.id, c: { host: conn.host, port: conn.port, database: conn.database, user: conn.user, ...(conn.password === '' ? {} : { password: conn.password }) } },
    );
    const databaseId = d.createDatabase.id;
    await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["todos"]) { added } }', { d: databaseId });
    await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
    const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret } }', { d: databaseId });
    c = counting(t, databaseId, k.createApiKey.secret);
  }, 120_000);
  afterAll(async () => {
    await c?.t.dispose();
    await pg?.close();
  });

  test('upload, check, status, artifact download, pushChanges and pullChanges: one control-plane resolution each', async () => {
    await checkEveryRequest(c);
  }, 120_000);
});
