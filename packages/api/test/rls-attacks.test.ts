/**
 * Attacks on row-level security through the sync HTTP protocol (issue 8, points 1, 5 and 7), by
 * token users under ENFORCE with `owner = auth_userid()` policies on all four operations. Each
 * test asserts outcomes — what the victim's row holds (values and clocks), which bytes the
 * attacker downloaded (decoded payloads) — not only status codes.
 */
import Database from 'better-sqlite3';
import { decodePayload, decodePk, encodePk } from '@offsync/core';
import type { Change, SqlValue } from '@offsync/core';
import { clockRows } from '@offsync/core/testing';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createAccessToken, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { Reply, RunningApp } from './data-plane-fixtures.ts';

// `items` is deployed WITHOUT its UNIQUE constraint; the unique index on slug is created after
// deployTables (below), so the synced table carries one (point 1).
const DDL = [
  'CREATE TABLE items(id TEXT PRIMARY KEY NOT NULL, slug TEXT, title, owner)',
  "CREATE TABLE docs(id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')",
  // A single-column INTEGER key is refused at deploy (rule D1.4); a composite key keeps an INTEGER key column.
  "CREATE TABLE nums(n INTEGER NOT NULL, tag TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '', PRIMARY KEY (n, tag))",
].join(';\n');
const TABLES = ['items', 'docs', 'nums'];

let t: RunningApp;
let databaseId: string;
let apiKey: string;
let alice: string;
let bob: string;

type Gql = { data?: unknown; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
async function gqlRaw(query: string, variables: Record<string, unknown>): Promise<Gql> {
  const res = await t.app.yoga.fetch('http://localhost/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${t.adminKey}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as Gql;
}

beforeAll(async () => {
  t = await startApp();
  ({ databaseId, apiKey } = await setupDatabase(t, DDL, TABLES));
  // After deployTables: a unique index the merge meets at write time.
  const file = new Database(sqliteDatabasePath(t.dataDir, databaseId));
  file.exec('CREATE UNIQUE INDEX items_slug ON items(slug)');
  file.close();
  const d = databaseId;
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d });
  const policies = { SELECT: 'owner = auth_userid()', INSERT: 'NEW.owner = auth_userid()', UPDATE: 'OLD.owner = auth_userid() AND NEW.owner = auth_userid()', DELETE: 'OLD.owner = auth_userid()' };
  for (const table of TABLES) {
    for (const [op, e] of Object.entries(policies)) {
      await t.gql('mutation($d: ID!, $t: String!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: $t, operation: $op, expression: $e) { table } }', { d, t: table, op, e });
    }
  }
  alice = await createAccessToken(t, d, 'alice');
  bob = await createAccessToken(t, d, 'bob');
});
afterAll(async () => t?.dispose());

const device = (credential: string): TestDevice => new TestDevice(t, databaseId, credential, DDL, TABLES);

function central<T = Record<string, unknown>>(sql: string): T[] {
  const open = t.app.sync.databases.peek(databaseId);
  if (open === undefined) throw new Error('central database not open');
  return open.driver.prepare(sql).all() as T[];
}

/** The central clocks of one row (`pkHex/col=version@cl`), from the engine's own change feed. */
function centralClocks(table: string, pk: readonly SqlValue[]): string[] {
  const open = t.app.sync.databases.peek(databaseId);
  if (open === undefined) throw new Error('central database not open');
  const key = hex(encodePk(pk)).toUpperCase();
  return clockRows(open, table).filter((r) => r.startsWith(`${key}/`));
}

/** The changes a G3 check reply carries (decoded from the payload bytes), without applying them. */
function changesOf(r: Reply): Change[] {
  expect(r.status).toBe(200);
  if (r.text === '') return [];
  const data = r.body['data'] as { payload?: string; chunks?: unknown[] } | undefined;
  expect(data?.chunks).toBeUndefined();
  return data?.payload === undefined ? [] : decodePayload(new Uint8Array(Buffer.from(data.payload, 'base64'))).changes;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Every value an attacker could read in a set of changes: primary-key values and cell values. */
function readable(changes: readonly Change[]): SqlValue[] {
  return changes.flatMap((c) => [...decodePk(c.pk), c.val]);
}

type Rejected = { count: number; changes: Array<{ table: string; operation: string; code: string; reason: string }> };
const rejectedOf = (r: Reply): Rejected | undefined => (r.body['failures'] as { rejected?: Rejected } | undefined)?.rejected;

/** POSTs `changes` as the device's next upload (window = its unsent versions), as a forging client would. */
async function uploadChanges(d: TestDevice, changes: Change[]): Promise<Reply> {
  const max = d.engine.dbVersion();
  const blob = d.engine.encodeChanges(changes);
  if (blob === null) throw new Error('nothing to upload');
  const r = await http('POST', d.url('apply'), d.credential, { blob: Buffer.from(blob).toString('base64'), dbVersionMin: d.sent + 1, dbVersionMax: max });
  if (r.status === 200 && (r.body['failures'] as { apply?: unknown } | undefined)?.apply === undefined) d.sent = max;
  return r;
}

const localChanges = (d: TestDevice): Change[] => [...d.engine.changes({ localOnly: true, after: { dbVersion: d.sent, seq: Number.MAX_SAFE_INTEGER } })];

test('point 1: deployTables refuses a table with a UNIQUE column besides the key (OS1-unique, names the column)', async () => {
  const p = (await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "u", kind: SQLITE) { id } }')).createProject.id;
  const id = (await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!) { createDatabase(projectId: $p, name: "uniq") { id } }', { p })).createDatabase.id;
  const file = new Database(sqliteDatabasePath(t.dataDir, id));
  file.exec('CREATE TABLE items(id TEXT PRIMARY KEY NOT NULL, slug TEXT UNIQUE, title, owner)');
  file.close();
  const r = await gqlRaw('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["items"]) { added } }', { d: id });
  expect(r.data ?? null).toBeNull();
  const ext = r.errors?.[0]?.extensions as { code?: string; refused?: Array<{ table: string; issues: Array<{ rule: string; message: string }> }> };
  expect(ext.code).toBe('SCHEMA_ISSUES');
  expect(ext.refused).toEqual([{ table: 'items', issues: [{ rule: 'OS1-unique', message: expect.stringContaining('UNIQUE constraint on (slug)') }] }]);
  // Nothing was deployed.
  const tables = await t.gql<{ database: { tables: { selectedCount: number; nodes: Array<{ name: string; schemaIssues: Array<{ rule: string }> }> } } }>(
    'query($d: ID!) { database(id: $d) { tables { selectedCount nodes { name schemaIssues { rule } } } } }',
    { d: id },
  );
  expect(tables.database.tables.selectedCount).toBe(0);
  expect(tables.database.tables.nodes).toEqual([{ name: 'items', schemaIssues: [{ rule: 'OS1-unique' }] }]);
});

test("point 1: a new id whose slug equals the victim's is rejected (constraint_violation); the victim's row is untouched and nothing of it reaches the attacker", async () => {
  const a = device(alice);
  a.exec("INSERT INTO items (id, slug, title, owner) VALUES ('v1', 'secret-slug', 'victim private title', 'alice')");
  expect(rejectedOf(await a.upload())).toBeUndefined();
  const victimRow = central("SELECT * FROM items WHERE id = 'v1'");
  const victimClocks = centralClocks('items', ['v1']);
  expect(victimRow).toEqual([{ id: 'v1', slug: 'secret-slug', title: 'victim private title', owner: 'alice' }]);
  expect(victimClocks.length).toBeGreaterThan(0);

  const m = device(bob);
  // Bob's device has no unique index: it holds both rows; the second collides on the server.
  m.exec("INSERT INTO items (id, slug, title, owner) VALUES ('m1', 'mine', 'my own', 'bob')");
  m.exec("INSERT INTO items (id, slug, title, owner) VALUES ('x1', 'secret-slug', 'pwned', 'bob')");
  const up = await m.upload();
  expect(up.status).toBe(200);
  expect((up.body['failures'] as { apply?: unknown }).apply).toBeUndefined();
  expect(rejectedOf(up)).toMatchObject({ count: 1, changes: [{ table: 'items', operation: 'INSERT', code: 'constraint_violation' }] });
  expect(up.body['lastOptimisticVersion']).toBe(m.engine.dbVersion());

  // The log holds the attempt, with the attacker's values.
  const log = (await t.app.sync.rejections(databaseId)).list({ first: 10, filter: { table: 'items' } });
  expect(log.nodes.map((n) => [n.userId, n.siteId, n.pkValues, n.operation, n.code, n.values['slug'], n.values['title']])).toEqual([
    ['bob', m.site, ['x1'], 'INSERT', 'constraint_violation', 'secret-slug', 'pwned'],
  ]);
  expect(log.nodes[0]?.reason).toMatch(/UNIQUE/i);

  // The victim's row: same values, same owner, same clocks. The attacker's permitted row landed; x1 did not.
  expect(central("SELECT * FROM items WHERE id = 'v1'")).toEqual(victimRow);
  expect(centralClocks('items', ['v1'])).toEqual(victimClocks);
  expect(central('SELECT id, slug, title, owner FROM items ORDER BY id')).toEqual([
    { id: 'm1', slug: 'mine', title: 'my own', owner: 'bob' },
    victimRow[0],
  ]);

  // The attacker's next download: none of the victim's values (key, title, owner); x1 is removed from his device.
  const down = await m.download();
  const seen = readable(changesOf(down));
  for (const v of ['v1', 'victim private title', 'alice']) expect(seen).not.toContain(v);
  expect(seen).toContain('x1');
  expect(m.engine.driver.prepare('SELECT id FROM items ORDER BY id').all()).toEqual([{ id: 'm1' }]);
  // …and he is not stuck: a later change lands.
  m.exec("UPDATE items SET title = 'my own, edited' WHERE id = 'm1'");
  expect(rejectedOf(await m.upload())).toBeUndefined();
  expect(central("SELECT title FROM items WHERE id = 'm1'")).toEqual([{ title: 'my own, edited' }]);

  // The victim's other device sees exactly her row, unchanged.
  const a2 = device(alice);
  await a2.download();
  expect(a2.engine.driver.prepare('SELECT * FROM items').all()).toEqual(victimRow);
});

test("point 5: another user's download carries neither the key of a deleted row nor the deleting device's site id", async () => {
  const admin = new TestDevice(t, databaseId, apiKey, DDL, TABLES);
  const a = device(alice);
  const a2 = device(alice);
  const b = device(bob);
  a.exec("INSERT INTO docs (id, owner, body) VALUES ('secret-doc-key', 'alice', 'private')");
  expect(rejectedOf(await a.upload())).toBeUndefined();
  expect(readable(changesOf(await a2.download()))).toContain('secret-doc-key');
  const before = changesOf(await b.download());
  expect(readable(before)).not.toContain('secret-doc-key');

  a.exec("DELETE FROM docs WHERE id = 'secret-doc-key'");
  expect(rejectedOf(await a.upload())).toBeUndefined();
  expect(central("SELECT * FROM docs WHERE id = 'secret-doc-key'")).toEqual([]);
  // Something bob may see arrives after the deletion, so his next download is not empty.
  admin.exec("INSERT INTO docs (id, owner, body) VALUES ('for-bob', 'bob', 'hello bob')");
  expect((await admin.upload()).status).toBe(200);

  // Control: alice's other device receives the deletion, stamped with the deleting device's site.
  const mine = changesOf(await a2.download()).filter((c) => c.tbl === 'docs' && decodePk(c.pk)[0] === 'secret-doc-key');
  expect(mine.map((c) => c.cl % 2)).toContain(0);
  expect(mine.map((c) => Buffer.from(c.siteId).toString('hex'))).toContain(a.site);

  const after = changesOf(await b.download());
  expect(readable(after)).toContain('hello bob');
  for (const changes of [before, after]) {
    expect(readable(changes)).not.toContain('secret-doc-key');
    expect(readable(changes)).not.toContain('private');
    expect(changes.map((c) => Buffer.from(c.siteId).toString('hex'))).not.toContain(a.site);
    expect(changes.map((c) => Buffer.from(c.pk).toString('hex'))).not.toContain(Buffer.from(encodePk(['secret-doc-key'])).toString('hex'));
  }
  // Bob's full download from scratch (a new device) is the same story.
  const fresh = changesOf(await device(bob).download());
  expect(fresh.map((c) => Buffer.from(c.siteId).toString('hex'))).not.toContain(a.site);
  expect(readable(fresh)).not.toContain('secret-doc-key');
});

test("point 7: a BLOB key on a TEXT key column and a TEXT key on an INTEGER key column are rejected (pk_type_mismatch) and read nothing of another user's 'a1' / 5", async () => {
  const a = device(alice);
  a.exec("INSERT INTO docs (id, owner, body) VALUES ('a1', 'alice', 'alice doc secret')");
  a.exec("INSERT INTO nums (n, tag, owner, body) VALUES (5, 'k', 'alice', 'alice num secret')");
  expect(rejectedOf(await a.upload())).toBeUndefined();
  const aliceRows = { docs: central("SELECT * FROM docs WHERE id = 'a1'"), nums: central("SELECT * FROM nums WHERE n = 5 AND tag = 'k'") };
  const aliceClocks = { docs: centralClocks('docs', ['a1']), nums: centralClocks('nums', [5n, 'k']) };
  expect(aliceRows.nums).toEqual([{ n: 5n, tag: 'k', owner: 'alice', body: 'alice num secret' }]);

  // Bob's device writes three rows; a forging client re-keys two of them: x'6131' (BLOB, = 'a1' as bytes) and TEXT '5'.
  const m = device(bob);
  m.exec("INSERT INTO docs (id, owner, body) VALUES ('zz-blob', 'bob', 'forged blob')");
  m.exec("INSERT INTO nums (n, tag, owner, body) VALUES (99, 'k', 'bob', 'forged text')");
  m.exec("INSERT INTO docs (id, owner, body) VALUES ('bob-ok', 'bob', 'legit')");
  const blobKey = encodePk([new Uint8Array([0x61, 0x31])]);
  const textKey = encodePk(['5', 'k']);
  const forged = localChanges(m).map((c) => {
    const pk = decodePk(c.pk);
    if (pk[0] === 'zz-blob') return { ...c, pk: blobKey };
    if (pk[0] === 99n) return { ...c, pk: textKey };
    return c;
  });
  expect(forged.filter((c) => c.pk === blobKey || c.pk === textKey).length).toBeGreaterThan(2);
  const up = await uploadChanges(m, forged);
  expect(up.status).toBe(200);
  expect((up.body['failures'] as { apply?: unknown }).apply).toBeUndefined();
  const rej = rejectedOf(up);
  expect(rej?.count).toBe(2);
  expect(rej?.changes.map((c) => [c.table, c.code]).sort()).toEqual([['docs', 'pk_type_mismatch'], ['nums', 'pk_type_mismatch']]);
  expect(rej?.changes.find((c) => c.table === 'docs')?.reason).toBe('Primary-key column id of table docs is declared TEXT; the change carries a BLOB value');
  expect(rej?.changes.find((c) => c.table === 'nums')?.reason).toBe('Primary-key column n of table nums is declared INTEGER; the change carries a TEXT value');
  expect(up.body['lastOptimisticVersion']).toBe(m.engine.dbVersion());

  const log = (await t.app.sync.rejections(databaseId)).list({ first: 10, filter: { code: 'pk_type_mismatch' } });
  expect(log.nodes.map((n) => [n.table, n.userId, n.values['body']]).sort()).toEqual([['docs', 'bob', 'forged blob'], ['nums', 'bob', 'forged text']]);
  expect(log.nodes.find((n) => n.table === 'docs')?.pkValues).toEqual([new Uint8Array([0x61, 0x31])]);
  expect(log.nodes.find((n) => n.table === 'nums')?.pkValues).toEqual(['5', 'k']);

  // Alice's rows: same values, same clocks, one metadata identity each; bob's legit row landed, nothing forged did.
  expect(central("SELECT * FROM docs WHERE id = 'a1'")).toEqual(aliceRows.docs);
  expect(central("SELECT * FROM nums WHERE n = 5 AND tag = 'k'")).toEqual(aliceRows.nums);
  expect(centralClocks('docs', ['a1'])).toEqual(aliceClocks.docs);
  expect(centralClocks('nums', [5n, 'k'])).toEqual(aliceClocks.nums);
  expect(central("SELECT id, body FROM docs WHERE owner = 'bob' ORDER BY id")).toContainEqual({ id: 'bob-ok', body: 'legit' });
  expect(central("SELECT count(*) AS c FROM docs WHERE body LIKE 'forged%' OR typeof(id) <> 'text'")).toEqual([{ c: 0n }]);
  expect(central("SELECT count(*) AS c FROM nums WHERE body LIKE 'forged%' OR typeof(n) <> 'integer'")).toEqual([{ c: 0n }]);

  // What bob downloads next: nothing of alice's rows (no 'a1', no 5, no value of hers). (Read, not
  // applied: this forger's replica holds the rows under their original keys.)
  const seen = changesOf(await http('POST', m.url('check'), m.credential, { dbVersion: 0, seq: 0, cursor: 0 }));
  const values = readable(seen);
  for (const v of ['a1', 5n, 'alice', 'alice doc secret', 'alice num secret']) expect(values).not.toContain(v);
  for (const c of seen.filter((x) => x.tbl !== 'items')) expect(['for-bob', new Uint8Array([0x61, 0x31]), '5']).toContainEqual(decodePk(c.pk)[0]);
  // The BLOB key (which a real client stores as it wrote it) comes back as a removal addressed to
  // bob: one sentinel, no value. (No client can hold TEXT '5' in an INTEGER column: SQLite's
  // affinity stores 5; that forged key gets nothing back.)
  expect(seen.filter((c) => hex(c.pk) === hex(blobKey)).map((c) => [c.col, c.val, c.cl % 2])).toEqual([['__[RIP]__', null, 0]]);
  expect(seen.filter((c) => hex(c.pk) === hex(textKey)).every((c) => c.val === null && c.cl % 2 === 0)).toBe(true);
  // A fresh device of alice's receives each of her rows under exactly one key identity.
  // (Applied: a removal under TEXT '5' would delete her row 5 on a real client and stick OffSync's engine.)
  const aliceDev = device(alice);
  const aliceSeen = changesOf(await aliceDev.download());
  expect(aliceDev.engine.driver.prepare('SELECT * FROM nums').all()).toEqual(aliceRows.nums);
  const aliceKeys = aliceSeen.filter((c) => c.tbl === 'docs' || c.tbl === 'nums').map((c) => hex(c.pk));
  expect(aliceKeys).toContain(hex(encodePk(['a1'])));
  expect(aliceKeys).toContain(hex(encodePk([5n, 'k'])));
  expect(aliceKeys).not.toContain(hex(textKey));
  expect(aliceKeys).not.toContain(hex(blobKey));
});

test("point 7: a forged TEXT key compensated while no row matched it never reaches the owner of a row created later under the INTEGER key", async () => {
  const m = device(bob);
  m.exec("INSERT INTO nums (n, tag, owner, body) VALUES (70, 'later', 'bob', 'forged')");
  const textKey = encodePk(['7', 'later']);
  const up = await uploadChanges(m, localChanges(m).map((c) => ({ ...c, pk: textKey })));
  expect(rejectedOf(up)?.changes.map((c) => c.code)).toEqual(['pk_type_mismatch']);
  // No row matched: the forger's principal gets a removal of the key as he sent it.
  const forgerSees = changesOf(await http('POST', m.url('check'), bob, { dbVersion: 0, seq: 0, cursor: 0 })).filter((c) => c.tbl === 'nums');
  expect(forgerSees.map((c) => [decodePk(c.pk), c.cl % 2])).toEqual([[['7', 'later'], 0]]);

  // Then alice creates (7, 'later'): her devices receive her row under its INTEGER key only.
  const a = device(alice);
  a.exec("INSERT INTO nums (n, tag, owner, body) VALUES (7, 'later', 'alice', 'seven')");
  expect(rejectedOf(await a.upload())).toBeUndefined();
  const a2 = device(alice);
  const got = changesOf(await a2.download()).filter((c) => c.tbl === 'nums');
  expect(got.map((c) => decodePk(c.pk)).filter((k) => k[1] === 'later')).toEqual([[7n, 'later'], [7n, 'later']]);
  expect(a2.engine.driver.prepare("SELECT * FROM nums WHERE tag = 'later'").all()).toEqual([{ n: 7n, tag: 'later', owner: 'alice', body: 'seven' }]);
});

test('point 7 with an API key: a TEXT key matching an existing INTEGER-keyed row is rejected and no removal of it reaches the other devices', async () => {
  const admin = new TestDevice(t, databaseId, apiKey, DDL, TABLES);
  admin.exec("INSERT INTO nums (n, tag, owner, body) VALUES (8, 'api', 'carol', 'carol eight')");
  expect(rejectedOf(await admin.upload())).toBeUndefined();
  const other = new TestDevice(t, databaseId, apiKey, DDL, TABLES);
  await other.download();
  expect(other.engine.driver.prepare("SELECT body FROM nums WHERE tag = 'api'").all()).toEqual([{ body: 'carol eight' }]);

  const forger = new TestDevice(t, databaseId, apiKey, DDL, TABLES);
  forger.exec("INSERT INTO nums (n, tag, owner, body) VALUES (80, 'api', 'mallory', 'overwrite')");
  const up = await uploadChanges(forger, localChanges(forger).map((c) => ({ ...c, pk: encodePk(['8', 'api']) })));
  expect(rejectedOf(up)?.changes.map((c) => c.code)).toEqual(['pk_type_mismatch']);
  expect(central("SELECT * FROM nums WHERE tag = 'api'")).toEqual([{ n: 8n, tag: 'api', owner: 'carol', body: 'carol eight' }]);
  // The other API-key device downloads nothing under the forged key, and keeps carol's row.
  const next = changesOf(await other.download());
  expect(next.filter((c) => c.tbl === 'nums').map((c) => decodePk(c.pk))).not.toContainEqual(['8', 'api']);
  expect(other.engine.driver.prepare("SELECT body FROM nums WHERE tag = 'api'").all()).toEqual([{ body: 'carol eight' }]);
});
