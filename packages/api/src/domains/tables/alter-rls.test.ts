/**
 * An operator's alterTable and the RLS policies of a SQLITE database (docs/PROTOCOL.md §P6
 * "Alteration"): a DROP COLUMN of a column a policy names is refused and changes nothing, a
 * RENAME COLUMN carries every policy (and the SELECT texts of the policy history) along, so a
 * user's device receives exactly the rows the policy allows after the rename — a swap of names
 * included, with the data plane caching policies for an hour.
 */
import { decodePayload, decodePk } from '@offsync/core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAccessToken, setupDatabase, startApp, TestDevice } from '../../../test/data-plane-fixtures.ts';
import type { RunningApp } from '../../../test/data-plane-fixtures.ts';
import { openReplica } from '@offsync/core/testing';
import { ApiError, isApiError } from '../../errors.ts';
import type { SyncEngine } from '../sync/sync-deps.ts';
import { alterTable } from './alter.ts';
import type { AlterDeps } from './alter.ts';
import { policyColumnRefs, renamePolicyColumn } from './rls-validate.ts';
import type { RlsOperation } from './rls-validate.ts';

const DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', other TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '')";
const OPS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;
const OWNER_POLICIES = {
  SELECT: 'owner = auth_userid()',
  INSERT: 'NEW.owner = auth_userid()',
  UPDATE: 'OLD.owner = auth_userid() AND NEW.owner = auth_userid()',
  DELETE: 'OLD.owner = auth_userid()',
};

interface Db { t: RunningApp; databaseId: string; apiKey: string; alice: string; bob: string }

/** A SQLITE database under ENFORCE with `policies` on todos, two users, and three rows seeded through the API key. */
async function open(t: RunningApp, policies: Partial<Record<(typeof OPS)[number], string>> = OWNER_POLICIES): Promise<Db> {
  const { databaseId, apiKey } = await setupDatabase(t, DDL);
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d: databaseId });
  for (const [op, e] of Object.entries(policies)) await setPolicy(t, databaseId, op, e);
  const admin = new TestDevice(t, databaseId, apiKey, DDL);
  admin.exec("INSERT INTO todos (id, owner, other) VALUES ('a1', 'alice', 'bob'), ('b1', 'bob', 'alice'), ('c1', 'carol', 'alice')");
  expect((await admin.upload()).status).toBe(200);
  return { t, databaseId, apiKey, alice: await createAccessToken(t, databaseId, 'alice'), bob: await createAccessToken(t, databaseId, 'bob') };
}

async function setPolicy(t: RunningApp, d: string, op: string, e: string): Promise<void> {
  await t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e) { table } }', { d, op, e });
}

async function policies(db: Db): Promise<Record<string, string>> {
  const config = await db.t.app.services.tables.getRlsConfig(db.databaseId);
  return Object.fromEntries(config.policies.map((p) => [p.operation, p.expression]));
}

/** The alter's error as `{ code, ...details }`, or 'done'. */
async function alter(db: Db, statements: string[]): Promise<Record<string, unknown> | 'done'> {
  try {
    await db.t.app.services.tables.alterTable(db.databaseId, 'todos', statements);
    return 'done';
  } catch (e) {
    if (isApiError(e)) return { code: e.code, message: e.message, ...e.details };
    throw e;
  }
}

/** A device created from the database's device DDL (the table as it is now), synced once. */
async function freshDevice(db: Db, credential: string): Promise<TestDevice> {
  const ddl = (await db.t.app.services.tables.deviceDdl(db.databaseId)).map((x) => x.sql).join(';\n');
  const d = new TestDevice(db.t, db.databaseId, credential, ddl);
  expect((await d.download()).status).toBe(200);
  return d;
}

const ids = (d: TestDevice): string[] => (d.rows() as Array<{ id: string }>).map((r) => r.id);
const columns = async (db: Db): Promise<string[]> => (await db.t.app.services.tables.listTables(db.databaseId)).nodes.find((n) => n.name === 'todos')?.columns.map((c) => c.name) ?? [];
const historyOf = (db: Db): unknown[] => {
  const engine = db.t.app.sync.databases.peek(db.databaseId);
  if (engine === undefined) throw new Error('the central file is not open');
  return engine.driver.prepare("SELECT db_version, select_expr FROM offsync_policy_history WHERE tbl = 'todos' ORDER BY db_version").all();
};

describe('policy expressions: the identifiers that name columns, and a rename of one', () => {
  test('bare (any case), quoted, bracketed, backticked and qualified names; not literals, functions, qualifiers, types or collations', () => {
    const expr = `"Owner" = auth_userid() OR [owner] = 'owner' OR \`owner\` = x'6f' OR NEW.OWNER IS NULL OR todos.owner = owner(1) OR CAST(note AS owner) = note COLLATE owner OR auth_userid() IS NOT DISTINCT FROM owner`;
    expect(policyColumnRefs(expr).map((r) => expr.slice(r.start, r.end))).toEqual(['"Owner"', '[owner]', '`owner`', 'OWNER', 'owner', 'note', 'note', 'owner']);
    expect(renamePolicyColumn(expr, 'owner', 'owner_id')).toBe(
      `"owner_id" = auth_userid() OR [owner_id] = 'owner' OR \`owner_id\` = x'6f' OR NEW.owner_id IS NULL OR todos.owner_id = owner(1) OR CAST(note AS owner) = note COLLATE owner OR auth_userid() IS NOT DISTINCT FROM owner_id`,
    );
    // A subquery of the table: its alias and table name are not columns, its qualified and bare columns are.
    expect(renamePolicyColumn('EXISTS (SELECT 1 FROM todos AS t2 WHERE t2.owner = owner)', 'owner', 'o')).toBe('EXISTS (SELECT 1 FROM todos AS t2 WHERE t2.o = o)');
    // A new name that is a keyword or not a plain identifier is double-quoted where it was bare.
    expect(renamePolicyColumn('owner = auth_userid() AND NEW.owner <> \'\'', 'owner', 'order')).toBe('"order" = auth_userid() AND NEW."order" <> \'\'');
    expect(renamePolicyColumn('owner = 1', 'owner', 'the "owner"')).toBe('"the ""owner""" = 1');
    expect(renamePolicyColumn("note = 'a''owner'", 'owner', 'x')).toBe("note = 'a''owner'");
  });
});

describe('alterTable and the RLS policies of a SQLITE database', () => {
  let t: RunningApp;
  beforeAll(async () => {
    // Policies cached for an hour: only the policies' epoch makes the data plane reload them.
    t = await startApp({ cacheTtlMs: 3_600_000 });
  });
  afterAll(async () => t.dispose());

  test('DROP COLUMN of a column a policy names is refused and changes nothing; other columns drop', async () => {
    const db = await open(t, { ...OWNER_POLICIES, SELECT: "owner = auth_userid() OR note = 'other'" });
    const before = await policies(db);
    const r = await alter(db, ['ALTER TABLE todos ADD COLUMN extra TEXT', 'ALTER TABLE todos DROP COLUMN owner']);
    expect(r).toMatchObject({ code: 'ALTER_REFUSED', reason: 'POLICY_DEPENDENCY', statement: 1, column: 'owner' });
    expect(r !== 'done' && [...(r['operations'] as string[])].sort()).toEqual([...OPS].sort());
    expect(r !== 'done' && r['message']).toMatch(/change or remove the RLS .* first/);
    // A column renamed earlier in the same call and then dropped is still the policy's column.
    expect(await alter(db, ['ALTER TABLE todos RENAME COLUMN owner TO x', 'ALTER TABLE todos DROP COLUMN x'])).toMatchObject({ reason: 'POLICY_DEPENDENCY', statement: 1, column: 'x' });
    expect(await columns(db)).toEqual(['id', 'owner', 'other', 'note']);
    expect(await policies(db)).toEqual(before);
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1']);

    // `other` appears only inside a string literal: not the policy's column. `note` no policy names.
    expect(await alter(db, ['ALTER TABLE todos DROP COLUMN other'])).toBe('done');
    expect(await alter(db, ['ALTER TABLE todos DROP COLUMN note'])).toMatchObject({ reason: 'POLICY_DEPENDENCY', operations: ['SELECT'] });
    await setPolicy(t, db.databaseId, 'SELECT', 'owner = auth_userid()');
    expect(await alter(db, ['ALTER TABLE todos DROP COLUMN note'])).toBe('done');
    expect(await columns(db)).toEqual(['id', 'owner']);
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1']);
  });

  test('RENAME COLUMN rewrites every policy: the user sees exactly their rows, writes are judged on the new column, nothing is renewed', async () => {
    const db = await open(t, { ...OWNER_POLICIES, SELECT: "owner = auth_userid() AND note <> 'owner'" });
    const bob = await freshDevice(db, db.bob);
    expect(ids(bob)).toEqual(['b1']); // caches the policies as they are
    const history = historyOf(db);
    expect(await alter(db, ['ALTER TABLE todos RENAME COLUMN owner TO owner_id'])).toBe('done');
    expect(await policies(db)).toEqual({
      SELECT: "owner_id = auth_userid() AND note <> 'owner'",
      INSERT: 'NEW.owner_id = auth_userid()',
      UPDATE: 'OLD.owner_id = auth_userid() AND NEW.owner_id = auth_userid()',
      DELETE: 'OLD.owner_id = auth_userid()',
    });
    // Not a change of who may see what: no renewal recorded.
    expect(historyOf(db)).toEqual(history);

    const alice = await freshDevice(db, db.alice);
    expect(ids(alice)).toEqual(['a1']);
    alice.exec("INSERT INTO todos (id, owner_id) VALUES ('a2', 'alice'), ('x1', 'bob')");
    const up = await alice.upload();
    expect(up.status).toBe(200);
    expect((up.body['failures'] as { rejected?: { changes: { operation: string }[] } } | undefined)?.rejected?.changes.map((c) => c.operation)).toEqual(['INSERT']);
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1', 'a2']);
    expect(ids(await freshDevice(db, db.bob))).toEqual(['b1']);
  });

  test('a swap of names cannot leak: owner → x, then other → owner; the user sees what x = auth_userid() allows', async () => {
    const db = await open(t);
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1']); // caches the policies as they are
    expect(await alter(db, ['ALTER TABLE todos RENAME COLUMN owner TO x'])).toBe('done');
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1']);
    expect(await alter(db, ['ALTER TABLE todos RENAME COLUMN other TO owner'])).toBe('done');
    expect((await policies(db))['SELECT']).toBe('x = auth_userid()');
    // b1 and c1 now have owner = 'alice': what the old text would let alice see.
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1']);
    expect(ids(await freshDevice(db, db.bob))).toEqual(['b1']);
    // The same swap in one call.
    expect(await alter(db, ['ALTER TABLE todos RENAME COLUMN x TO y', 'ALTER TABLE todos RENAME COLUMN owner TO x', 'ALTER TABLE todos RENAME COLUMN y TO owner'])).toBe('done');
    expect((await policies(db))['SELECT']).toBe('owner = auth_userid()');
    expect(ids(await freshDevice(db, db.alice))).toEqual(['a1']);
  });

  test('the SELECT texts of the policy history are renamed along: a device behind a policy change still gets its removals', async () => {
    const db = await open(t, { ...OWNER_POLICIES, SELECT: 'other = auth_userid()' });
    const alice = await freshDevice(db, db.alice);
    expect(ids(alice)).toEqual(['b1', 'c1']);
    const cursor = alice.cursor;
    await setPolicy(t, db.databaseId, 'SELECT', 'owner = auth_userid()');
    // Before the first SELECT policy: none (null); before the second: the first.
    const [first, renewal] = historyOf(db) as Array<{ db_version: bigint; select_expr: string | null }>;
    expect([first?.select_expr, renewal?.select_expr]).toEqual([null, 'other = auth_userid()']);

    expect(await alter(db, ['ALTER TABLE todos RENAME COLUMN other TO other_id'])).toBe('done');
    expect(historyOf(db)).toEqual([first, { db_version: renewal?.db_version, select_expr: 'other_id = auth_userid()' }]);
    // A device of the new schema at alice's old cursor: b1 and c1, which she could see then and
    // may not now, are answered with removals (judged by the history's text); a1 reaches it.
    const behind = new TestDevice(t, db.databaseId, db.alice, (await t.app.services.tables.deviceDdl(db.databaseId)).map((x) => x.sql).join(';\n'));
    behind.cursor = cursor;
    const down = await behind.download();
    expect(down.status).toBe(200);
    const payload = (down.body['data'] as { payload?: string } | undefined)?.payload;
    const keys = payload === undefined ? [] : [...new Set(decodePayload(new Uint8Array(Buffer.from(payload, 'base64'))).changes.map((ch) => String(decodePk(ch.pk)[0])))].sort();
    expect(keys).toEqual(['a1', 'b1', 'c1']);
    expect(ids(behind)).toEqual(['a1']);
  });

  test('a policy that would no longer validate after the alter rolls it back (POLICY_DEPENDENCY), policies and history unchanged', async () => {
    // Inside the subquery `owner` is t2's; renamed `atom` it would be ambiguous with json_each's own `atom` column.
    const select = "owner = auth_userid() AND EXISTS (SELECT 1 FROM json_each('[1]') AS j, todos AS t2 WHERE t2.id = todos.id AND owner <> '')";
    const db = await open(t, { ...OWNER_POLICIES, SELECT: select });
    await setPolicy(t, db.databaseId, 'SELECT', `${select} AND 1`); // a history entry to keep
    const before = await policies(db);
    const history = historyOf(db);
    const r = await alter(db, ['ALTER TABLE todos ADD COLUMN extra TEXT', 'ALTER TABLE todos RENAME COLUMN owner TO atom']);
    expect(r).toMatchObject({ code: 'ALTER_REFUSED', reason: 'POLICY_DEPENDENCY', operations: ['SELECT'], message: expect.stringMatching(/ambiguous column name: atom/) });
    expect(await columns(db)).toEqual(['id', 'owner', 'other', 'note']);
    expect(await policies(db)).toEqual(before);
    expect(historyOf(db)).toEqual(history);
  });
});

describe('alterTable: the order of the policy store and the alter (SQLITE)', () => {
  const TODOS = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '')";
  type Change = { table: string; operation: RlsOperation; from: string; to: string };

  /** alter.ts's deps over one replica: `replace` records what it was given and the columns the table had then. */
  function depsOver(engine: SyncEngine, replace: (changes: readonly Change[]) => Promise<void>, log: unknown[]): AlterDeps {
    const cols = (): string[] => engine.driver.prepare("SELECT name FROM pragma_table_info('todos')").all().map((r) => String(r['name']));
    return {
      databases: { getDatabase: () => Promise.resolve({ kind: 'SQLITE' }), pgSettings: () => { throw new Error('not POSTGRES'); } } as unknown as AlterDeps['databases'],
      policies: {
        list: () => Promise.resolve([{ table: 'todos', operation: 'SELECT', expression: 'owner = auth_userid()' }]),
        replace: async (_id, changes) => {
          log.push({ changes, columns: cols() });
          await replace(changes);
        },
      },
      withSchemaChange: (_id, fn) => Promise.resolve().then(() => fn(engine)),
      readSchema: (_id, fn) => Promise.resolve().then(() => fn(engine)),
    };
  }

  test('the renamed texts are stored before the alter runs; a failed store runs no alter; a failed alter sets them back', async () => {
    const e = openReplica(TODOS, ['todos']);
    const log: unknown[] = [];
    await alterTable(depsOver(e, () => Promise.resolve(), log), 'd', 'todos', ['ALTER TABLE todos RENAME COLUMN owner TO owner_id']);
    expect(log).toEqual([{ changes: [{ table: 'todos', operation: 'SELECT', from: 'owner = auth_userid()', to: 'owner_id = auth_userid()' }], columns: ['id', 'owner'] }]);

    // The store refuses (a policy changed meanwhile): the alter never runs.
    const f = openReplica(TODOS, ['todos']);
    const conflict = new ApiError('CONFLICT', 'changed meanwhile');
    await expect(alterTable(depsOver(f, () => Promise.reject(conflict), []), 'd', 'todos', ['ALTER TABLE todos RENAME COLUMN owner TO owner_id'])).rejects.toBe(conflict);
    expect(f.driver.prepare("SELECT name FROM pragma_table_info('todos')").all().map((r) => r['name'])).toEqual(['id', 'owner']);

    // The alter fails after the store: the texts are set back, then the failure is reported.
    const g = openReplica(TODOS, ['todos']);
    const back: unknown[] = [];
    const r = alterTable(depsOver(g, () => Promise.resolve(), back), 'd', 'todos', ['ALTER TABLE todos RENAME COLUMN owner TO owner_id', 'ALTER TABLE todos ADD COLUMN id TEXT']);
    await expect(r).rejects.toMatchObject({ code: 'ALTER_FAILED', details: { statement: 1 } });
    expect(back.map((x) => (x as { changes: Change[] }).changes.map((c) => c.to))).toEqual([['owner_id = auth_userid()'], ['owner = auth_userid()']]);
    expect(g.driver.prepare("SELECT name FROM pragma_table_info('todos')").all().map((r) => r['name'])).toEqual(['id', 'owner']);
    for (const x of [e, f, g]) x.close();
  });
});
