/**
 * Row-level security through the real app: policies `user_id = auth_userid()` on todos, two
 * users with access tokens and a JWT user (HS256); each downloads only their rows, a forged write
 * to another user's row is refused whole (G3 `failures.apply`, cursor unchanged), API keys bypass.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { centralRows, createAccessToken, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

const HS_SECRET = 'an-hs256-shared-secret-of-32-chars!!';
let t: RunningApp;
let db: { databaseId: string; apiKey: string };
let alice: string;
let bob: string;

beforeAll(async () => {
  t = await startApp();
  db = await setupDatabase(t);
  const d = db.databaseId;
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d });
  for (const op of ['SELECT', 'INSERT', 'UPDATE', 'DELETE']) {
    const expression = op === 'UPDATE' ? 'OLD.user_id = auth_userid() AND NEW.user_id = auth_userid()' : op === 'DELETE' ? 'OLD.user_id = auth_userid()' : op === 'INSERT' ? 'NEW.user_id = auth_userid()' : 'user_id = auth_userid()';
    await t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e) { table } }', { d, op, e: expression });
  }
  await t.gql('mutation($d: ID!, $s: String!) { configureJwtProvider(databaseId: $d, method: HS256, secret: $s, audience: "offsync-test") { method } }', { d, s: HS_SECRET });
  alice = await createAccessToken(t, d, 'alice', { team: 'red' });
  bob = await createAccessToken(t, d, 'bob');
  // Seed through an API key (bypasses RLS).
  const admin = new TestDevice(t, d, db.apiKey);
  admin.exec("INSERT INTO todos (id, user_id, title) VALUES ('a1', 'alice', 'alice 1'), ('a2', 'alice', 'alice 2'), ('b1', 'bob', 'bob 1'), ('c1', 'carol', 'carol 1')");
  expect((await admin.upload()).status).toBe(200);
});
afterAll(async () => t.dispose());

const ids = (d: TestDevice): string[] => (d.rows() as Array<{ id: string }>).map((r) => r.id);

test('each user downloads only the rows their SELECT policy allows; API keys see everything', async () => {
  const a = new TestDevice(t, db.databaseId, alice);
  const b = new TestDevice(t, db.databaseId, bob);
  const k = new TestDevice(t, db.databaseId, db.apiKey);
  for (const d of [a, b, k]) expect((await d.download()).status).toBe(200);
  expect(ids(a)).toEqual(['a1', 'a2']);
  expect(ids(b)).toEqual(['b1']);
  expect(ids(k)).toEqual(['a1', 'a2', 'b1', 'c1']);
});

test('own inserts and updates are accepted; a forged write to another user\'s row is refused whole', async () => {
  const b = new TestDevice(t, db.databaseId, bob);
  await b.download();
  b.exec("INSERT INTO todos (id, user_id, title) VALUES ('b2', 'bob', 'bob 2')");
  b.exec("UPDATE todos SET title = 'bob 1 edited' WHERE id = 'b1'");
  const ok = await b.upload();
  expect([ok.status, ok.body['failures']]).toEqual([200, undefined]);
  const before = centralRows(t, db.databaseId);

  // Forge: a row of alice's in bob's replica, edited, together with a legit change of his own.
  b.exec("INSERT INTO todos (id, user_id, title) VALUES ('b3', 'bob', 'legit')");
  b.exec("INSERT INTO todos (id, user_id, title) VALUES ('a1', 'alice', 'hacked by bob')");
  const forged = await b.upload();
  expect(forged.status).toBe(200);
  const failure = (forged.body['failures'] as { apply?: { code: string; message: string } } | undefined)?.apply;
  expect(failure?.code).toBe('forbidden');
  expect(failure?.message).toMatch(/UPDATE.*todos|todos.*UPDATE/);
  expect(forged.body['lastOptimisticVersion']).toBe(ok.body['lastOptimisticVersion']);
  expect(centralRows(t, db.databaseId)).toEqual(before);

  // Insert as another user and delete of another user's row are refused too.
  const c = new TestDevice(t, db.databaseId, bob);
  c.exec("INSERT INTO todos (id, user_id, title) VALUES ('x1', 'alice', 'spoof')");
  expect(((await c.upload()).body['failures'] as { apply?: { message: string } }).apply?.message).toMatch(/INSERT/);
  const a = new TestDevice(t, db.databaseId, alice);
  await a.download();
  a.exec("DELETE FROM todos WHERE id = 'a2'");
  expect((await a.upload()).body['failures']).toBeUndefined();
  expect(centralRows(t, db.databaseId)).not.toContainEqual(expect.objectContaining({ id: 'a2' }));
});

test('a table without a policy for an operation denies it (deny by default)', async () => {
  await t.gql('mutation($d: ID!) { removeRlsPolicy(databaseId: $d, table: "todos", operation: DELETE) }', { d: db.databaseId });
  const b = new TestDevice(t, db.databaseId, bob);
  await b.download();
  b.exec("DELETE FROM todos WHERE id = 'b1'");
  const r = await b.upload();
  expect((r.body['failures'] as { apply?: { message: string } }).apply?.message).toMatch(/DELETE/);
  expect(centralRows(t, db.databaseId)).toContainEqual(expect.objectContaining({ id: 'b1' }));
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: DELETE, expression: "OLD.user_id = auth_userid()") { table } }', { d: db.databaseId });
});

test('a JWT user is filtered the same way, through its claims (auth_json)', async () => {
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: SELECT, expression: "user_id = auth_userid() OR json_extract(auth_json(), \'$.role\') = \'auditor\'") { table } }', { d: db.databaseId });
  const sign = (claims: Record<string, unknown>): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(String(claims['sub'] ?? 'alice')).setAudience('offsync-test').setExpirationTime('5m').sign(new TextEncoder().encode(HS_SECRET));
  const j = new TestDevice(t, db.databaseId, await sign({ sub: 'alice' }));
  expect((await j.download()).status).toBe(200);
  expect(ids(j)).toEqual(['a1']);
  const auditor = new TestDevice(t, db.databaseId, await sign({ sub: 'zed', role: 'auditor' }));
  await auditor.download();
  expect(ids(auditor)).toEqual(['a1', 'b1', 'b2', 'c1']);
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: SELECT, expression: "user_id = auth_userid()") { table } }', { d: db.databaseId });
});
