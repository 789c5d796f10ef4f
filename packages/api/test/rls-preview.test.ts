/**
 * previewRlsPolicy (issue 13 point 6): the preview of a SELECT policy change matches exactly what
 * the users' devices hold once the policy is applied (the change renews the table: devices get
 * the newly visible rows and removals of the hidden ones).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createAccessToken, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

let t: RunningApp;
beforeAll(async () => { t = await startApp(); });
afterAll(async () => t.dispose());

interface PreviewUser { userId: string; source: string; rowsBefore: number; rowsAfter: number; gained: number; lost: number; sampleGained: { id: string }[]; sampleLost: { id: string }[]; devices: string[] }
interface Preview { currentExpression: string | null; expression: string; changesVisibility: boolean; enforced: boolean; totalRows: number; users: PreviewUser[]; affectedDevices: string[] }

const PREVIEW = `query($d: ID!, $e: String!, $op: RlsOperation!) { previewRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e, sampleSize: 100) {
  currentExpression expression changesVisibility enforced totalRows affectedDevices
  users { userId source rowsBefore rowsAfter gained lost sampleGained sampleLost devices } } }`;

const ids = (d: TestDevice): string[] => (d.rows() as { id: string }[]).map((r) => r.id).sort();

async function settle(d: TestDevice): Promise<void> {
  // Inline G3 checks until one brings nothing new (a handful of rows: one page each time).
  for (let i = 0; i < 5; i++) {
    const before = JSON.stringify(d.rows());
    const cursor = d.cursor.dbVersion;
    await d.download();
    if (JSON.stringify(d.rows()) === before && d.cursor.dbVersion === cursor) return;
  }
}

test('the preview of a SELECT change equals what the devices hold after it is applied', async () => {
  const db = await setupDatabase(t);
  const policy = (op: string, e: string) => t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e) { expression } }', { d: db.databaseId, op, e });
  // Rows of two users, written through the API key (bypasses RLS).
  const seeder = new TestDevice(t, db.databaseId, db.apiKey);
  for (const [id, user, title] of [['a1', 'u1', 'pub one'], ['a2', 'u1', 'secret'], ['b1', 'u2', 'pub two'], ['b2', 'u2', 'private'], ['c1', 'u9', 'nobody']]) {
    seeder.exec('INSERT INTO todos (id, user_id, title) VALUES (?, ?, ?)', id as string, user as string, title as string);
  }
  await seeder.upload();
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { rlsMode } }', { d: db.databaseId });
  await policy('SELECT', 'user_id = auth_userid()');

  const d1 = new TestDevice(t, db.databaseId, await createAccessToken(t, db.databaseId, 'u1'));
  const d2 = new TestDevice(t, db.databaseId, await createAccessToken(t, db.databaseId, 'u2'));
  await createAccessToken(t, db.databaseId, 'u3'); // a user without a device
  await settle(d1);
  await settle(d2);
  expect(ids(d1)).toEqual(['a1', 'a2']);
  expect(ids(d2)).toEqual(['b1', 'b2']);
  const held = new Map([['u1', ids(d1)], ['u2', ids(d2)]]);

  const expression = "title LIKE 'pub%'";
  const p = (await t.gql<{ previewRlsPolicy: Preview }>(PREVIEW, { d: db.databaseId, e: expression, op: 'SELECT' })).previewRlsPolicy;
  expect(p).toMatchObject({ currentExpression: 'user_id = auth_userid()', expression, changesVisibility: true, enforced: true, totalRows: 5 });
  expect(p.users.map((u) => u.userId)).toEqual(['u1', 'u2', 'u3']);
  expect([...p.affectedDevices]).toEqual([d1.site, d2.site].sort());
  // Nothing was applied.
  const stillOld = await t.gql<{ database: { rlsPolicies: { expression: string }[] } }>('query($d: ID!) { database(id: $d) { rlsPolicies { expression } } }', { d: db.databaseId });
  expect(stillOld.database.rlsPolicies.map((x) => x.expression)).toEqual(['user_id = auth_userid()']);

  await policy('SELECT', expression);
  await settle(d1);
  await settle(d2);
  const after = new Map([['u1', ids(d1)], ['u2', ids(d2)]]);
  for (const [user, device] of [['u1', d1], ['u2', d2]] as const) {
    const u = p.users.find((x) => x.userId === user) as PreviewUser;
    const before = held.get(user) ?? [];
    const now = after.get(user) ?? [];
    expect(u.devices).toEqual([device.site]);
    expect(u.source).toBe('ACCESS_TOKEN');
    expect(u.rowsBefore).toBe(before.length);
    expect(u.rowsAfter).toBe(now.length);
    expect(u.sampleGained.map((k) => k.id).sort()).toEqual(now.filter((x) => !before.includes(x)));
    expect(u.sampleLost.map((k) => k.id).sort()).toEqual(before.filter((x) => !now.includes(x)));
    expect(u.gained).toBe(u.sampleGained.length);
    expect(u.lost).toBe(u.sampleLost.length);
  }
  expect(after.get('u1')).toEqual(['a1', 'b1']);
  expect(p.users.find((x) => x.userId === 'u3')).toMatchObject({ rowsBefore: 0, rowsAfter: 2, gained: 2, lost: 0, devices: [] });
});

test('write policies change no visibility; invalid expressions are refused like setRlsPolicy', async () => {
  const db = await setupDatabase(t);
  const p = (await t.gql<{ previewRlsPolicy: Preview }>(PREVIEW, { d: db.databaseId, e: 'NEW.user_id = auth_userid()', op: 'INSERT' })).previewRlsPolicy;
  expect(p).toMatchObject({ changesVisibility: false, enforced: false, users: [], affectedDevices: [] });
  await expect(t.gql(PREVIEW, { d: db.databaseId, e: 'no_such_column = 1', op: 'SELECT' })).rejects.toThrow(/GraphQL/);
});

test('BYPASS mode: before is every row, after what ENFORCE with the policy would give', async () => {
  const db = await setupDatabase(t);
  const seeder = new TestDevice(t, db.databaseId, db.apiKey);
  seeder.exec("INSERT INTO todos (id, user_id) VALUES ('x1', 'u1'), ('x2', 'u2')");
  await seeder.upload();
  await createAccessToken(t, db.databaseId, 'u1');
  const p = (await t.gql<{ previewRlsPolicy: Preview }>(PREVIEW, { d: db.databaseId, e: 'user_id = auth_userid()', op: 'SELECT' })).previewRlsPolicy;
  expect(p.enforced).toBe(false);
  expect(p.users).toEqual([expect.objectContaining({ userId: 'u1', rowsBefore: 2, rowsAfter: 1, lost: 1, sampleLost: [{ id: 'x2' }] })]);
});
