/**
 * The conflict log through GraphQL with two in-process devices (G3 over HTTP): a concurrent edit
 * of one cell from the same base puts the loser in `Database.conflicts` with both values, sites
 * and users; `restoreConflictValue` writes it back as a new change that both devices receive and
 * announces it on `syncChanges`; conflicts of rows the merge rejected are not logged; the log can
 * be switched off per database (`setConflictLog`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAccessToken, setupDatabase, startApp, TestDevice, centralRows } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

let t: RunningApp;
afterAll(async () => t.dispose());
beforeAll(async () => {
  t = await startApp();
});

interface Side { value: unknown; colVersion: number; cl: number; siteId: string; userId: string | null }
interface ConflictNode { id: string; table: string; pkValues: unknown[]; column: string | null; kind: string; winner: Side; loser: Side; uploaderSiteId: string; uploaderUserId: string | null; restoredAt: string | null }

const CONFLICTS = `query($d: ID!, $f: ConflictFilter, $first: Int, $after: String) { database(id: $d) { conflictLog conflicts(first: $first, after: $after, filter: $f) {
  totalCount pageInfo { hasNextPage endCursor }
  nodes { id table pkValues column kind uploaderSiteId uploaderUserId restoredAt
    winner { value colVersion cl siteId userId } loser { value colVersion cl siteId userId } } } } }`;

async function conflicts(d: string, f: Record<string, unknown> = {}, first = 50): Promise<{ totalCount: number; nodes: ConflictNode[]; conflictLog: boolean }> {
  const r = await t.gql<{ database: { conflictLog: boolean; conflicts: { totalCount: number; nodes: ConflictNode[] } } }>(CONFLICTS, { d, f, first });
  return { ...r.database.conflicts, conflictLog: r.database.conflictLog };
}

async function ok(p: Promise<{ status: number; text: string }>): Promise<void> {
  const r = await p;
  expect(r.status, r.text).toBe(200);
}

const title = (d: TestDevice): unknown => (d.rows() as Array<{ id: string; title: string }>).find((r) => r.id === 't')?.title;

/** Both devices hold 't' with title 'base'; then each edits it offline and both upload, a first. */
async function concurrentEdit(a: TestDevice, b: TestDevice, va: string, vb: string): Promise<void> {
  a.exec("UPDATE todos SET title = ? WHERE id = 't'", va);
  b.exec("UPDATE todos SET title = ? WHERE id = 't'", vb);
  await ok(a.upload());
  await ok(b.upload());
}

describe('two devices edit the same cell from the same base', () => {
  let d: string;
  let a: TestDevice;
  let b: TestDevice;

  beforeAll(async () => {
    d = (await setupDatabase(t)).databaseId;
    a = new TestDevice(t, d, await createAccessToken(t, d, 'alice'));
    b = new TestDevice(t, d, await createAccessToken(t, d, 'bob'));
    a.exec("INSERT INTO todos (id, title) VALUES ('t', 'base')");
    await ok(a.upload());
    await ok(b.download());
    expect(title(b)).toBe('base');
  });

  test('the loser is in the log with both values, sites and users; filters find it', async () => {
    await concurrentEdit(a, b, 'from a', 'from b');
    const log = await conflicts(d);
    expect(log.conflictLog).toBe(true);
    expect(log.totalCount).toBe(1);
    // 'from b' > 'from a' in the value order: b's edit (uploaded second) wins the tiebreak.
    expect(log.nodes[0]).toMatchObject({
      table: 'todos', pkValues: ['t'], column: 'title', kind: 'TIEBREAK', uploaderSiteId: b.site, uploaderUserId: 'bob', restoredAt: null,
      winner: { value: 'from b', colVersion: 2, cl: 1, siteId: b.site, userId: 'bob' },
      loser: { value: 'from a', colVersion: 2, cl: 1, siteId: a.site, userId: 'alice' },
    });
    expect((await conflicts(d, { userId: 'alice' })).totalCount).toBe(1);
    expect((await conflicts(d, { userId: 'carol' })).totalCount).toBe(0);
    expect((await conflicts(d, { siteId: a.site.toUpperCase(), key: 't', table: 'todos', kind: 'TIEBREAK' })).totalCount).toBe(1);
    expect((await conflicts(d, { key: '["other"]' })).totalCount).toBe(0);
    expect((await conflicts(d, { kind: 'SUPERSEDED' })).totalCount).toBe(0);
    expect((await conflicts(d, { since: new Date(Date.now() + 60_000).toISOString() })).totalCount).toBe(0);
    await ok(a.download());
    await ok(b.download());
    expect([title(a), title(b)]).toEqual(['from b', 'from b']);
  });

  test('restoreConflictValue writes the losing value back as a new change both devices receive, announced on syncChanges', async () => {
    const [entry] = (await conflicts(d)).nodes;
    const events = t.app.services.pubsub.subscribe('syncChanges', d)[Symbol.asyncIterator]();
    const next = events.next();
    await new Promise((r) => setImmediate(r)); // let the subscription attach before the write
    const r = await t.gql<{ restoreConflictValue: { action: string; dbVersion: number; conflict: { id: string; restoredAt: string | null } } }>(
      'mutation($d: ID!, $c: ID!) { restoreConflictValue(databaseId: $d, conflictId: $c) { action dbVersion conflict { id restoredAt } } }',
      { d, c: entry?.id },
    );
    expect(r.restoreConflictValue.action).toBe('UPDATE');
    expect(r.restoreConflictValue.conflict.restoredAt).not.toBeNull();
    const event = await next;
    expect(event.value).toMatchObject({ databaseId: d, originSiteId: '', tables: ['todos'], dbVersion: r.restoreConflictValue.dbVersion });
    await events.return?.();
    expect(centralRows(t, d)).toEqual([{ id: 't', user_id: '', title: 'from a' }]);
    await ok(a.download());
    await ok(b.download());
    expect([title(a), title(b)]).toEqual(['from a', 'from a']);
    expect((await conflicts(d)).nodes[0]?.restoredAt).not.toBeNull();
    // The restore is a newer write, not a concurrent one: syncing it logged nothing new.
    expect((await conflicts(d)).totalCount).toBe(1);
  });

  test('unknown conflict ids are refused with NOT_FOUND', async () => {
    const res = await t.app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminKey}` },
      body: JSON.stringify({ query: 'mutation($d: ID!) { restoreConflictValue(databaseId: $d, conflictId: "999") { action } }', variables: { d } }),
    });
    const body = (await res.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
    expect(body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  test('setConflictLog(false) stops recording for that database; true resumes it', async () => {
    const off = await t.gql<{ setConflictLog: { conflictLog: boolean } }>('mutation($d: ID!) { setConflictLog(databaseId: $d, enabled: false) { conflictLog } }', { d });
    expect(off.setConflictLog.conflictLog).toBe(false);
    await concurrentEdit(a, b, 'a2', 'b2');
    expect((await conflicts(d)).totalCount).toBe(1);
    await ok(a.download());
    await ok(b.download());
    await t.gql('mutation($d: ID!) { setConflictLog(databaseId: $d, enabled: true) { conflictLog } }', { d });
    await concurrentEdit(a, b, 'a3', 'b3');
    const log = await conflicts(d);
    expect(log.totalCount).toBe(2);
    expect(log.nodes[0]?.loser).toMatchObject({ value: 'a3', siteId: a.site });
  });
});

test('a conflict of a row the merge then rejected (RLS) is not logged', async () => {
  const { databaseId: d, apiKey } = await setupDatabase(t);
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d });
  for (const [op, e] of [['SELECT', '1'], ['INSERT', '1'], ['UPDATE', 'OLD.user_id = auth_userid()'], ['DELETE', '0']]) {
    await t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e) { table } }', { d, op, e });
  }
  const seed = new TestDevice(t, d, apiKey);
  seed.exec("INSERT INTO todos (id, user_id, title) VALUES ('t', 'alice', 'base')");
  await ok(seed.upload());
  const a = new TestDevice(t, d, await createAccessToken(t, d, 'alice'));
  const b = new TestDevice(t, d, await createAccessToken(t, d, 'bob'));
  await ok(a.download());
  await ok(b.download());
  // Bob's edit would win the tiebreak, but bob may not update alice's row: it is rejected.
  await concurrentEdit(a, b, 'from a', 'from b');
  const rejections = await t.gql<{ database: { rejections: { totalCount: number } } }>('query($d: ID!) { database(id: $d) { rejections { totalCount } } }', { d });
  expect(rejections.database.rejections.totalCount).toBe(1);
  expect((await conflicts(d)).totalCount).toBe(0);
  expect(centralRows(t, d)).toEqual([{ id: 't', user_id: 'alice', title: 'from a' }]);
});
