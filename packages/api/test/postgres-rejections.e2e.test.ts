/**
 * The rejection log of a POSTGRES database (issue 10 item 4; docs/ARCHITECTURE.md "PostgreSQL
 * row-level security", "Per-row rejection"): rows PostgreSQL's own policies refused during a
 * merge are kept in `offsync.rejections`, written in the merge's transaction as the connection's
 * user, and listed by GraphQL `Database.rejections` with the SQLite log's fields, filters and
 * keyset pages. The fixtures are those of postgres-rls.e2e.test.ts (two users, Supabase-style
 * policies over `auth.uid()`). On `TEST_DATABASE_URL` (CI) or an embedded PGlite.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { RunningApp, TestDevice } from './data-plane-fixtures.ts';
import { openRlsWorkspace } from './sync-fixtures/postgres-rls.ts';
import type { RlsWorkspace } from './sync-fixtures/postgres-rls.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';
import { PgCentral } from '../src/domains/sync/index.ts';
import type { RejectionEntry } from '../src/domains/sync/index.ts';

let w: RlsWorkspace;
let pg: TestPostgres;
let t: RunningApp;
let databaseId: string;
/** Entries each upload's merge reported after commit (what the device's `failures.rejected` and the live subscription are built from). */
let reported: RejectionEntry[][] = [];

beforeAll(async () => {
  // A customer's deferred check: a row titled 'boom' fails the COMMIT (after the merge wrote everything).
  w = await openRlsWorkspace([
    `CREATE FUNCTION no_boom() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.title = 'boom' THEN RAISE EXCEPTION 'boom refused at commit'; END IF; RETURN NULL; END $$`,
    'CREATE CONSTRAINT TRIGGER no_boom AFTER INSERT OR UPDATE ON todos DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION no_boom()',
  ]);
  ({ pg, t, databaseId } = w);
  const deps = t.app.dataPlane.deps;
  const hook = deps.onChangesRejected;
  deps.onChangesRejected = async (id, entries) => {
    if (id === databaseId) reported.push([...entries]);
    await hook?.call(deps, id, entries);
  };
}, 120_000);

afterAll(async () => {
  await w?.close();
});

const device = (sub: string): Promise<TestDevice> => w.device(sub);

interface Node { id: string; at: string; siteId: string; userId: string | null; credentialKind: string; table: string; pk: string; pkValues: unknown[]; operation: string; code: string; reason: string; values: Record<string, unknown> }
interface Page { totalCount: number; nodes: Node[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }
const PAGE = `query($id: ID!, $first: Int, $after: String, $f: RejectionFilter) { database(id: $id) { rejections(first: $first, after: $after, filter: $f) {
  totalCount nodes { id at siteId userId credentialKind table pk pkValues operation code reason values } pageInfo { hasNextPage endCursor } } } }`;

async function gqlRaw(query: string, variables: Record<string, unknown>): Promise<{ data?: Record<string, unknown>; errors?: Array<{ message: string; extensions?: { code?: string } }> }> {
  const r = await t.app.yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminKey}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await r.json()) as { data?: Record<string, unknown>; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

async function page(vars: Record<string, unknown> = {}): Promise<Page> {
  const r = await gqlRaw(PAGE, { id: databaseId, ...vars });
  if (r.errors !== undefined) throw new Error(JSON.stringify(r.errors));
  return (r.data?.['database'] as { rejections: Page }).rejections;
}

const logRows = async (): Promise<number> => Number((await pg.sql('SELECT count(*) FROM offsync.rejections'))[0]?.[0]);

test('a forbidden insert and a forged edit are listed by Database.rejections with table, key, operation, code, user and site; ids as the merge reported them', async () => {
  const alice = await device('alice');
  const bob = await device('bob');
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('a1', 'alice', 'milk')");
  bob.exec("INSERT INTO todos (id, user_id, title) VALUES ('b1', 'bob', 'bread')");
  expect((await alice.upload()).body).not.toHaveProperty('failures');
  expect((await bob.upload()).body).not.toHaveProperty('failures');
  expect(await page()).toMatchObject({ totalCount: 0, nodes: [] });

  reported = [];
  // A row planted for bob, beside one of her own: the planted one is refused alone.
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('a2', 'alice', 'ok'), ('x1', 'bob', 'planted')");
  const planted = await alice.upload();
  expect(planted.body).toMatchObject({ failures: { rejected: { code: 'rls_denied', count: 1, changes: [{ table: 'todos', operation: 'INSERT', code: 'rls_denied' }] } } });
  // A forged edit of bob's row, which alice cannot see.
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('b1', 'alice', 'hijacked')");
  const forged = await alice.upload();
  expect(forged.body).toMatchObject({ failures: { rejected: { count: 1, changes: [{ table: 'todos', operation: 'UPDATE' }] } } });
  expect(await pg.sql("SELECT id, user_id, title FROM todos WHERE id IN ('b1', 'x1')")).toEqual([['b1', 'bob', 'bread']]);

  const p = await page();
  expect(p.totalCount).toBe(2);
  const [edit, insert] = p.nodes;
  expect(insert).toMatchObject({
    siteId: alice.site, userId: 'alice', credentialKind: 'JWT', table: 'todos', pkValues: ['x1'], operation: 'INSERT', code: 'rls_denied',
    values: { user_id: 'bob', title: 'planted' },
  });
  expect(edit).toMatchObject({ siteId: alice.site, userId: 'alice', credentialKind: 'JWT', table: 'todos', pkValues: ['b1'], operation: 'UPDATE', values: { title: 'hijacked' } });
  expect(edit?.code).toBe((forged.body['failures'] as { rejected: { code: string } }).rejected.code);
  // The ids (and everything else) are those the merges reported after commit, newest first.
  expect(reported.map((r) => r.map((e) => String(e.id)))).toEqual([[insert?.id], [edit?.id]]);
  expect(reported.flat().map((e) => [e.table, e.pkValues, e.operation, e.code, e.reason, e.at.toISOString()])).toEqual(
    [insert, edit].map((n) => [n?.table, n?.pkValues, n?.operation, n?.code, n?.reason, n?.at]),
  );
  expect(Number(edit?.id)).toBeGreaterThan(Number(insert?.id));
}, 120_000);

test('filters and keyset pages work as on SQLite; a bad cursor is a validation error', async () => {
  const bob = await device('bob');
  bob.exec("INSERT INTO todos (id, user_id, title) VALUES ('y1', 'alice', 'for alice'), ('y2', 'carol', 'for carol')");
  expect((await bob.upload()).body).toMatchObject({ failures: { rejected: { count: 2 } } });

  const all = await page();
  expect(all.totalCount).toBe(4);
  expect(all.nodes.map((n) => n.pkValues[0])).toEqual(['y2', 'y1', 'b1', 'x1']);
  const ids = all.nodes.map((n) => n.id);

  // Keyset pages of one: every entry once, newest first; new entries would not shift them.
  const seen: string[] = [];
  let after: string | null = null;
  for (;;) {
    const pg1: Page = await page({ first: 1, ...(after === null ? {} : { after }) });
    seen.push(...pg1.nodes.map((n) => n.id));
    if (!pg1.pageInfo.hasNextPage) break;
    after = pg1.pageInfo.endCursor;
  }
  expect(seen).toEqual(ids);

  const byBob = await page({ f: { userId: 'bob' } });
  expect(byBob.totalCount).toBe(2);
  expect(byBob.nodes.every((n) => n.siteId === bob.site)).toBe(true);
  expect((await page({ f: { siteId: bob.site.toUpperCase() } })).nodes.map((n) => n.id)).toEqual(byBob.nodes.map((n) => n.id));
  expect((await page({ f: { operation: 'UPDATE' } })).nodes.map((n) => n.pkValues[0])).toEqual(['b1']);
  expect((await page({ f: { operation: 'INSERT', userId: 'alice' } })).nodes.map((n) => n.pkValues[0])).toEqual(['x1']);
  expect((await page({ f: { table: 'other' } })).totalCount).toBe(0);
  expect((await page({ f: { code: 'rls_denied', userId: 'bob' } })).totalCount).toBe(2);
  expect((await page({ f: { since: new Date(Date.now() + 60_000).toISOString() } })).totalCount).toBe(0);
  expect((await page({ f: { since: all.nodes[3]?.at } })).totalCount).toBe(4);
  const zero = await page({ first: 0 });
  expect(zero).toMatchObject({ totalCount: 4, nodes: [], pageInfo: { hasNextPage: true, endCursor: null } });

  const bad = await gqlRaw(PAGE, { id: databaseId, after: 'bm90IGEgY3Vyc29y' });
  expect(bad.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
}, 120_000);

test('a merge that fails as a whole (rolled back at COMMIT) leaves no entry', async () => {
  const before = await page();
  reported = [];
  const alice = await device('alice');
  // x2 is refused on its own (RLS); 'boom' passes RLS and fails the deferred check at COMMIT.
  alice.exec("INSERT INTO todos (id, user_id, title) VALUES ('x2', 'bob', 'planted'), ('a9', 'alice', 'boom')");
  const r = await alice.upload();
  expect(r.status).not.toBe(200);
  expect(await pg.sql("SELECT id FROM todos WHERE id IN ('x2', 'a9')")).toEqual([]);
  expect(await page()).toEqual(before);
  expect(await logRows()).toBe(before.totalCount);
  expect(reported).toEqual([]);
}, 120_000);

test('values keep their SQL types; retention by count and by age applies on write', async () => {
  const central = ((await t.app.sync.databases.open(databaseId)) as { central?: unknown }).central;
  if (!(central instanceof PgCentral)) throw new Error('expected a POSTGRES central');
  const db = { central };
  const log = central.rejections;
  const site = randomBytes(16).toString('hex');
  const row = (reason: string) => ({
    siteId: site, userId: 'dave', credentialKind: 'jwt' as const, credentialId: null, table: 'notes', pk: new Uint8Array([1, 2, 3]),
    pkValues: [5n, 'k'], operation: 'DELETE' as const, code: 'constraint_violation', policy: null, reason,
    values: { n: 2n ** 60n, b: new Uint8Array([0xde, 0xad]), r: Number.NEGATIVE_INFINITY, f: 1.5, z: null },
  });
  const now = Date.now();
  const [old] = await db.central.engine.transaction((c) => log.record(c, [row('old')], now - 31 * 86_400_000));
  expect((await page({ f: { siteId: site } })).nodes.map((n) => n.reason)).toEqual(['old']);
  const typed = await db.central.engine.transaction((c) => log.record(c, [row('typed')], now));
  // The 31-day-old entry went with the next write.
  const mine = await page({ f: { siteId: site } });
  expect(mine.nodes.map((n) => n.id)).toEqual([String(typed[0]?.id)]);
  expect(Number(typed[0]?.id)).toBeGreaterThan(Number(old?.id));
  expect(mine.nodes[0]).toMatchObject({
    pk: Buffer.from([1, 2, 3]).toString('base64'), pkValues: [{ $int: '5' }, 'k'], operation: 'DELETE', code: 'constraint_violation',
    values: { n: { $int: (2n ** 60n).toString() }, b: { $blob: Buffer.from([0xde, 0xad]).toString('base64') }, r: { $real: '-Infinity' }, f: 1.5, z: null },
  });
  const listed = await log.list({ first: 1, filter: { siteId: site } });
  expect(listed.nodes[0]?.values).toEqual(row('typed').values);
  expect(listed.nodes[0]?.pkValues).toEqual([5n, 'k']);

  // More rows than one INSERT statement takes: ids ascend in the rows' order across statements.
  const bulkSite = randomBytes(16).toString('hex');
  const bulk = await db.central.engine.transaction((c) => log.record(c, Array.from({ length: 501 }, (_, i) => ({ ...row(`b${i}`), siteId: bulkSite })), now));
  expect(bulk.map((e) => e.id)).toEqual(bulk.map((e) => e.id).sort((a, b) => a - b));
  expect(new Set(bulk.map((e) => e.id)).size).toBe(501);
  const bulkPage = await log.list({ first: 500, filter: { siteId: bulkSite } });
  expect(bulkPage.totalCount).toBe(501);
  expect(bulkPage.nodes.map((n) => [n.id, n.reason])).toEqual(bulk.slice(1).reverse().map((e) => [e.id, e.reason]));
  expect(bulkPage.hasNextPage).toBe(true);

  const total = await logRows();
  log.configure({ maxEntries: 3 });
  try {
    await db.central.engine.transaction((c) => log.record(c, [row('c1'), row('c2')], now));
    const kept = await page();
    expect(kept.totalCount).toBe(3);
    expect(kept.nodes.map((n) => n.reason)).toEqual(['c2', 'c1', 'b500']);
    expect(total).toBeGreaterThan(3);
  } finally {
    log.configure({ maxEntries: 100_000 });
  }
}, 120_000);

test('deleteDatabase(uninstall: true) drops the log with the offsync schema', async () => {
  expect(await pg.sql("SELECT to_regclass('offsync.rejections') IS NOT NULL")).toEqual([[true]]);
  const un = await t.gql<{ deleteDatabase: { uninstalled: boolean } }>('mutation($d: ID!) { deleteDatabase(id: $d, uninstall: true) { uninstalled } }', { d: databaseId });
  expect(un.deleteDatabase.uninstalled).toBe(true);
  expect(await pg.sql("SELECT to_regclass('offsync.rejections') IS NULL")).toEqual([[true]]);
}, 120_000);
