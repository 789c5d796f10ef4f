/**
 * JWT + PostgreSQL row-level security (issue 10, item 4), the Supabase way: policies written in
 * plain PostgreSQL with an `auth.uid()` helper reading `request.jwt.claims`; every merge and feed
 * of a per-user credential runs under `SET LOCAL ROLE <role claim>`. Each device holds only its
 * user's rows; a forbidden write changes nothing in PostgreSQL and is rejected alone (the rest of
 * the batch lands); a refused edit of a row the user holds is compensated; a role claim that would
 * lift RLS is refused. On `TEST_DATABASE_URL` (CI) or an embedded PGlite.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { http, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { openRlsWorkspace, RLS_TODOS_DDL as DDL } from './sync-fixtures/postgres-rls.ts';
import type { RlsWorkspace } from './sync-fixtures/postgres-rls.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';

let w: RlsWorkspace;
let pg: TestPostgres;
let t: RunningApp;
let databaseId: string;

beforeAll(async () => {
  w = await openRlsWorkspace();
  ({ pg, t, databaseId } = w);
}, 120_000);

afterAll(async () => {
  await w?.close();
});

const jwt = (sub: string, role?: string): Promise<string> => w.jwt(sub, role);
const device = (sub: string): Promise<TestDevice> => w.device(sub);
const pgRows = async (where = ''): Promise<unknown[][]> => pg.sql(`SELECT id, user_id, title FROM todos ${where} ORDER BY id`);
const rows = (d: TestDevice): unknown[][] => (d.engine.driver.prepare('SELECT id, user_id, title FROM todos ORDER BY id').all() as Array<Record<string, unknown>>).map((r) => Object.values(r));

test('each user writes and receives only their own rows; a row written with psql reaches only its owner', async () => {
  const alice = await device('alice');
  const bob = await device('bob');
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('a1', 'alice', 'milk')");
  bob.exec("INSERT INTO todos (id, user_id, title) VALUES ('b1', 'bob', 'bread')");
  expect((await alice.upload()).body).not.toHaveProperty('failures');
  expect((await bob.upload()).body).not.toHaveProperty('failures');
  await pg.sql("INSERT INTO todos (id, user_id, title) VALUES ('a2', 'alice', 'from psql')");
  expect(await pgRows()).toEqual([['a1', 'alice', 'milk'], ['a2', 'alice', 'from psql'], ['b1', 'bob', 'bread']]);

  const alice2 = await device('alice');
  await alice2.download();
  expect(rows(alice2)).toEqual([['a1', 'alice', 'milk'], ['a2', 'alice', 'from psql']]);
  await bob.download();
  expect(rows(bob)).toEqual([['b1', 'bob', 'bread']]);
});

test('a forbidden insert is rejected alone: nothing of it reaches PostgreSQL, the rest of the batch lands, the window is acknowledged, the device drops it', async () => {
  const alice = await device('alice');
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('a3', 'alice', 'ok'), ('x1', 'bob', 'planted for bob')");
  const r = await alice.upload();
  expect(r.status).toBe(200);
  const v = alice.engine.dbVersion();
  expect(r.body).toMatchObject({ lastOptimisticVersion: v, failures: { rejected: { code: 'rls_denied', count: 1 } } });
  expect(await pgRows("WHERE id IN ('a3', 'x1')")).toEqual([['a3', 'alice', 'ok']]);
  // Compensated: a tombstone of the server's own makes alice's device drop the refused row.
  await alice.download();
  expect(rows(alice).map((x) => x[0])).not.toContain('x1');
  expect(rows(alice)).toContainEqual(['a3', 'alice', 'ok']);
  // bob does not receive the planted row.
  const bob = await device('bob');
  await bob.download();
  expect(rows(bob).map((x) => x[0])).toEqual(['b1']);
});

test("editing another user's row changes nothing; moving one's own row to another user is refused and compensated", async () => {
  const alice = await device('alice');
  await alice.download();
  // A forged change to bob's row (alice cannot see it): the upsert meets the policy and is refused.
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('b1', 'alice', 'hijacked')");
  const forged = await alice.upload();
  expect(forged.body).toMatchObject({ failures: { rejected: { count: 1 } } });
  expect(await pgRows("WHERE id = 'b1'")).toEqual([['b1', 'bob', 'bread']]);

  // Her own row, given away: WITH CHECK refuses; the central cells are re-stamped so the device takes them back.
  alice.exec("UPDATE todos SET user_id = 'bob', title = 'given away' WHERE id = 'a1'");
  const moved = await alice.upload();
  expect(moved.body).toMatchObject({ failures: { rejected: { code: 'rls_denied', count: 1 } } });
  expect(await pgRows("WHERE id = 'a1'")).toEqual([['a1', 'alice', 'milk']]);
  await alice.download();
  expect(rows(alice)).toContainEqual(['a1', 'alice', 'milk']);
});

test('a role claim that would lift RLS, or an unknown role, is refused with 403', async () => {
  const site = randomBytes(16).toString('hex');
  const url = `${t.origin}/v2/cloudsync/databases/${databaseId}/${site}/check`;
  const su = await http('POST', url, await jwt('mallory', 'postgres'), { dbVersion: 0, seq: 0 });
  expect(su.status).toBe(403);
  const unknown = await http('POST', url, await jwt('mallory', 'no_such_role'), { dbVersion: 0, seq: 0 });
  expect(unknown.status).toBe(403);
  expect(await pgRows("WHERE user_id = 'mallory'")).toEqual([]);
});

test('an API key is trusted: it bypasses RLS and sees every row', async () => {
  const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "ops") { secret } }', { d: databaseId });
  const ops = new TestDevice(t, databaseId, k.createApiKey.secret, DDL);
  await ops.download();
  expect(rows(ops)).toEqual(await pgRows());
});

test("OffSync's own RLS policies are refused on POSTGRES databases (PostgreSQL's policies decide there)", async () => {
  const r = await t.app.yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminKey}` },
    body: JSON.stringify({ query: 'mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: SELECT, expression: "1") { table } }', variables: { d: databaseId } }),
  });
  const body = (await r.json()) as { errors?: Array<{ extensions?: { code?: string; reason?: string } }> };
  expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', reason: 'POSTGRES_USES_DATABASE_POLICIES' });
});
