/**
 * Row-level security through the real app: policies `user_id = auth_userid()` on todos, two
 * users with access tokens and a JWT user (HS256); each downloads only their rows, a forged write
 * to another user's row is rejected on its own (G3 `failures.rejected`, rejection log), the rest of
 * the batch lands, the window is acknowledged and the device converges; API keys bypass.
 */
import { decodePayload, decodePk } from '@offsync/core';
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

type Rejected = { count: number; changes: { table: string; operation: string; code: string; reason: string }[] };
const rejectedOf = (r: { body: Record<string, unknown> }): Rejected | undefined => (r.body['failures'] as { rejected?: Rejected } | undefined)?.rejected;
const applyFailureOf = (r: { body: Record<string, unknown> }): unknown => (r.body['failures'] as { apply?: unknown } | undefined)?.apply;

test("own writes land; a forged write to another user's row is rejected alone, logged, and undone on the device", async () => {
  const b = new TestDevice(t, db.databaseId, bob);
  await b.download();
  b.exec("INSERT INTO todos (id, user_id, title) VALUES ('b2', 'bob', 'bob 2')");
  b.exec("UPDATE todos SET title = 'bob 1 edited' WHERE id = 'b1'");
  const ok = await b.upload();
  expect([ok.status, ok.body['failures']]).toEqual([200, undefined]);

  // Forge: a row of alice's (bob cannot see it; he guesses the key) next to a legit change.
  b.exec("INSERT INTO todos (id, user_id, title) VALUES ('b3', 'bob', 'legit')");
  b.exec("INSERT INTO todos (id, user_id, title) VALUES ('a1', 'alice', 'hacked by bob')");
  const forged = await b.upload();
  expect(forged.status).toBe(200);
  expect(applyFailureOf(forged)).toBeUndefined();
  expect(rejectedOf(forged)).toMatchObject({ count: 1, changes: [{ table: 'todos', operation: 'UPDATE', code: 'rls_denied' }] });
  // The window is acknowledged: the device moves on.
  expect(forged.body['lastOptimisticVersion']).toBe(b.engine.dbVersion());
  const central = centralRows(t, db.databaseId) as Array<{ id: string; title: string }>;
  expect(central.find((r) => r.id === 'a1')?.title).toBe('alice 1');
  expect(central.find((r) => r.id === 'b3')?.title).toBe('legit');

  // The rejection log holds it, with the rejected values.
  const log = (await t.app.sync.rejections(db.databaseId)).list({ first: 10, filter: { userId: 'bob' } });
  expect(log.nodes.map((n) => [n.table, n.pkValues, n.operation, n.code, n.credentialKind, n.values['title'], n.siteId])).toEqual([
    ['todos', ['a1'], 'UPDATE', 'rls_denied', 'accessToken', 'hacked by bob', b.site],
  ]);

  // Bob's device converges to what he may hold: alice's row leaves it, nothing of hers arrives.
  const down = await b.download();
  expect(JSON.stringify(down.body)).not.toContain(Buffer.from('alice 1').toString('base64'));
  expect(ids(b)).toEqual(['b1', 'b2', 'b3']);
  // …and he is not stuck: his next change lands.
  b.exec("UPDATE todos SET title = 'legit 2' WHERE id = 'b3'");
  expect((await b.upload()).body['failures']).toBeUndefined();
  expect((centralRows(t, db.databaseId) as Array<{ id: string; title: string }>).find((r) => r.id === 'b3')?.title).toBe('legit 2');

  // An insert as another user is rejected and removed from the device; alice never hears of it.
  const c = new TestDevice(t, db.databaseId, bob);
  c.exec("INSERT INTO todos (id, user_id, title) VALUES ('x1', 'alice', 'spoof')");
  expect(rejectedOf(await c.upload())?.changes.map((x) => x.operation)).toEqual(['INSERT']);
  await c.download();
  expect(ids(c)).not.toContain('x1');
  const a = new TestDevice(t, db.databaseId, alice);
  await a.download();
  expect(ids(a)).toEqual(['a1', 'a2']);
  a.exec("DELETE FROM todos WHERE id = 'a2'");
  expect((await a.upload()).body['failures']).toBeUndefined();
  expect(centralRows(t, db.databaseId)).not.toContainEqual(expect.objectContaining({ id: 'a2' }));
  // Bob, who never could see a2, receives no trace of its deletion (only x1's removal, addressed to him).
  const after = await b.download();
  const payload = (after.body['data'] as { payload?: string } | undefined)?.payload;
  const keys = payload === undefined ? [] : decodePayload(new Uint8Array(Buffer.from(payload, 'base64'))).changes.map((ch) => decodePk(ch.pk)[0]);
  expect(keys).toEqual(['x1']);
});

test('a table without a policy for an operation denies it (deny by default); the row comes back', async () => {
  await t.gql('mutation($d: ID!) { removeRlsPolicy(databaseId: $d, table: "todos", operation: DELETE) }', { d: db.databaseId });
  const b = new TestDevice(t, db.databaseId, bob);
  await b.download();
  b.exec("DELETE FROM todos WHERE id = 'b1'");
  const r = await b.upload();
  expect(rejectedOf(r)?.changes).toEqual([expect.objectContaining({ operation: 'DELETE', reason: expect.stringMatching(/No DELETE policy/) })]);
  expect(centralRows(t, db.databaseId)).toContainEqual(expect.objectContaining({ id: 'b1' }));
  await b.download();
  expect(ids(b)).toContain('b1');
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
  expect(ids(auditor)).toEqual(['a1', 'b1', 'b2', 'b3', 'c1']);
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: SELECT, expression: "user_id = auth_userid()") { table } }', { d: db.databaseId });
});

test('a row given away leaves the giver\'s devices and reaches the receiver whole, though it is older than their cursor', async () => {
  const d = db.databaseId;
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: UPDATE, expression: "OLD.user_id = auth_userid()") { table } }', { d });
  const a = new TestDevice(t, d, alice);
  const b = new TestDevice(t, d, bob);
  await a.download();
  await b.download();
  expect(ids(a)).toContain('a1');
  expect(ids(b)).not.toContain('a1');
  a.exec("UPDATE todos SET user_id = 'bob' WHERE id = 'a1'");
  const up = await a.upload();
  expect(up.body['failures']).toBeUndefined();
  await b.download();
  expect((b.rows() as Array<{ id: string; title: string; user_id: string }>).find((r) => r.id === 'a1')).toEqual({ id: 'a1', user_id: 'bob', title: 'alice 1' });
  await a.download();
  expect(ids(a)).not.toContain('a1');
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: UPDATE, expression: "OLD.user_id = auth_userid() AND NEW.user_id = auth_userid()") { table } }', { d });
});

test('a SELECT policy change: devices drop rows the new policy hides and receive rows it newly shows, whole; a mode change likewise', async () => {
  const d = db.databaseId;
  const b = new TestDevice(t, d, bob);
  await b.download();
  expect(b.rows()).toEqual((centralRows(t, d) as Array<{ user_id: string }>).filter((r) => r.user_id === 'bob'));
  // New policy: rows whose title starts with 'alice' are public to everybody; bob's own are hidden.
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: SELECT, expression: "title LIKE \'alice%\'") { table } }', { d });
  await b.download();
  const central = centralRows(t, d) as Array<{ id: string; title: string }>;
  expect(b.rows()).toEqual(central.filter((r) => r.title.startsWith('alice')));
  expect(ids(b).length).toBeGreaterThan(0);
  // Back to own rows.
  await t.gql('mutation($d: ID!) { setRlsPolicy(databaseId: $d, table: "todos", operation: SELECT, expression: "user_id = auth_userid()") { table } }', { d });
  await b.download();
  expect(b.rows()).toEqual((centralRows(t, d) as Array<{ user_id: string }>).filter((r) => r.user_id === 'bob'));
  // BYPASS shows everything, ENFORCE again hides it.
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: BYPASS) { id } }', { d });
  await b.download();
  expect(b.rows()).toEqual(centralRows(t, d));
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d });
  await b.download();
  expect(b.rows()).toEqual((centralRows(t, d) as Array<{ user_id: string }>).filter((r) => r.user_id === 'bob'));
});

test('a far-behind download (bulk RLS filter in SQL) sends exactly the rows the per-row filter would', async () => {
  const d = db.databaseId;
  const admin = new TestDevice(t, d, db.apiKey);
  for (let i = 0; i < 1200; i++) admin.exec('INSERT INTO todos (id, user_id, title) VALUES (?, ?, ?)', `bulk${String(i).padStart(4, '0')}`, i % 3 === 0 ? 'bob' : 'carol', `t${i}`);
  expect((await admin.upload()).status).toBe(200);
  const b = new TestDevice(t, d, bob);
  await b.download();
  for (let i = 0; i < 20 && (await b.download()).body['data'] !== undefined; i++);
  expect(b.rows()).toEqual((centralRows(t, d) as Array<{ user_id: string }>).filter((r) => r.user_id === 'bob'));
  expect(ids(b).filter((id) => id.startsWith('bulk'))).toHaveLength(400);
});
