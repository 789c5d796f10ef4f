import { describe, expect, test } from 'vitest';
import { openReplica, tableRows } from '@offsync/core/testing';
import { isApiError } from '../../errors.ts';
import { alterSqliteTable, planAlter, sqliteDeviceDdl } from './alter.ts';
import type { AlterDialect } from './alter.ts';

const todos = { name: 'todos', pk: ['id'] };

function refusal(fn: () => unknown): { code: string; reason: unknown; statement: unknown } {
  try {
    fn();
  } catch (e) {
    if (isApiError(e)) return { code: e.code, reason: e.details['reason'], statement: e.details['statement'] };
    throw e;
  }
  throw new Error('expected a refusal');
}

const refused = (sql: string | string[], dialect: AlterDialect = 'SQLITE') => refusal(() => planAlter(Array.isArray(sql) ? sql : [sql], todos, dialect));

describe('planAlter', () => {
  test('accepted forms are rebuilt with quoted names (schema-qualified on POSTGRES, unquoted names folded there)', () => {
    expect(planAlter(["ALTER TABLE todos ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"], todos, 'SQLITE')).toEqual(['ALTER TABLE "todos" ADD COLUMN "priority" INTEGER NOT NULL DEFAULT 0']);
    expect(planAlter(["alter table Todos add Note text default 'it''s' ;"], todos, 'SQLITE')).toEqual(['ALTER TABLE "todos" ADD COLUMN "Note" TEXT DEFAULT \'it\'\'s\'']);
    expect(planAlter(['ALTER TABLE todos ADD COLUMN Score numeric(10, 2) DEFAULT -1.5'], todos, 'POSTGRES')).toEqual(['ALTER TABLE "public"."todos" ADD COLUMN "score" NUMERIC(10, 2) DEFAULT -1.5']);
    expect(planAlter(['ALTER TABLE todos ADD COLUMN "Tags" character varying(20)[]'], todos, 'POSTGRES')).toEqual(['ALTER TABLE "public"."todos" ADD COLUMN "Tags" CHARACTER VARYING(20)[]']);
    expect(planAlter(['ALTER TABLE todos ADD data BLOB', 'ALTER TABLE todos DROP COLUMN data', 'ALTER TABLE todos RENAME COLUMN title TO name'], todos, 'SQLITE')).toEqual([
      'ALTER TABLE "todos" ADD COLUMN "data" BLOB',
      'ALTER TABLE "todos" DROP COLUMN "data"',
      'ALTER TABLE "todos" RENAME COLUMN "title" TO "name"',
    ]);
    expect(planAlter(['ALTER TABLE todos ALTER COLUMN title SET DEFAULT \'x\'', 'ALTER TABLE todos ALTER title TYPE varchar(80)', 'ALTER TABLE todos ALTER COLUMN title DROP NOT NULL'], todos, 'POSTGRES')).toEqual([
      'ALTER TABLE "public"."todos" ALTER COLUMN "title" SET DEFAULT \'x\'',
      'ALTER TABLE "public"."todos" ALTER COLUMN "title" TYPE VARCHAR(80)',
      'ALTER TABLE "public"."todos" ALTER COLUMN "title" DROP NOT NULL',
    ]);
    // A comment is not part of the statement that runs.
    expect(planAlter(['ALTER TABLE todos /* why */ ADD COLUMN n INT -- trailing'], todos, 'SQLITE')).toEqual(['ALTER TABLE "todos" ADD COLUMN "n" INT']);
  });

  test('other statements, other tables, several statements in one string: refused with their reason', () => {
    expect(refused('DROP TABLE todos')).toMatchObject({ code: 'ALTER_REFUSED', reason: 'NOT_ALTER_TABLE', statement: 0 });
    expect(refused('DELETE FROM todos')).toMatchObject({ reason: 'NOT_ALTER_TABLE' });
    expect(refused(['ALTER TABLE todos ADD COLUMN a TEXT', 'ALTER TABLE users ADD COLUMN a TEXT'])).toMatchObject({ reason: 'OTHER_TABLE', statement: 1 });
    expect(refused('ALTER TABLE other.todos ADD COLUMN a TEXT', 'POSTGRES')).toMatchObject({ reason: 'OTHER_TABLE' });
    // PostgreSQL folds unquoted names, so "Todos" quoted is another table there.
    expect(refused('ALTER TABLE "Todos" ADD COLUMN a TEXT', 'POSTGRES')).toMatchObject({ reason: 'OTHER_TABLE' });
    expect(refused('ALTER TABLE todos ADD COLUMN a TEXT; DROP TABLE users')).toMatchObject({ reason: 'MULTIPLE_STATEMENTS' });
    expect(refused("ALTER TABLE todos ADD COLUMN a TEXT DEFAULT 'x'; DROP TABLE users; --")).toMatchObject({ reason: 'MULTIPLE_STATEMENTS' });
    expect(refused('ALTER TABLE todos RENAME TO todos_old')).toMatchObject({ reason: 'TABLE_RENAME' });
    expect(refused([])).toMatchObject({ reason: 'INVALID_INPUT' });
  });

  test('key changes are refused before anything runs', () => {
    expect(refused('ALTER TABLE todos DROP COLUMN id')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
    expect(refused('ALTER TABLE todos RENAME COLUMN ID TO key')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
    expect(refused('ALTER TABLE todos ALTER COLUMN id TYPE uuid', 'POSTGRES')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
    expect(refused('ALTER TABLE todos ADD PRIMARY KEY (id, title)', 'POSTGRES')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
    expect(refused('ALTER TABLE todos ADD CONSTRAINT k PRIMARY KEY (title)', 'POSTGRES')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
    expect(refused('ALTER TABLE todos DROP CONSTRAINT todos_pkey', 'POSTGRES')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
    expect(refused('ALTER TABLE todos ADD COLUMN k TEXT PRIMARY KEY')).toMatchObject({ reason: 'PRIMARY_KEY_CHANGE' });
  });

  test('expressions, functions, constraints, CASCADE and what the tokenizer cannot read are refused', () => {
    expect(refused("ALTER TABLE todos ADD COLUMN x text DEFAULT pg_read_file('/etc/passwd')", 'POSTGRES')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ADD COLUMN x int DEFAULT (1 + 1)')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ALTER COLUMN title TYPE int USING length(title)', 'POSTGRES')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ADD COLUMN x int CHECK (abs(x))')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ADD COLUMN x int REFERENCES users(id)')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ADD COLUMN x text UNIQUE')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ADD CONSTRAINT u UNIQUE (title)', 'POSTGRES')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos DROP COLUMN title CASCADE', 'POSTGRES')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos OWNER TO postgres', 'POSTGRES')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos DISABLE ROW LEVEL SECURITY', 'POSTGRES')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused('ALTER TABLE todos ADD COLUMN x int GENERATED ALWAYS AS (1) STORED')).toMatchObject({ reason: 'UNSUPPORTED' });
    expect(refused("ALTER TABLE todos ADD COLUMN x text DEFAULT 'a\\'")).toMatchObject({ reason: 'SYNTAX' });
    expect(refused("ALTER TABLE todos ADD COLUMN x text DEFAULT 'open")).toMatchObject({ reason: 'SYNTAX' });
    expect(refused('ALTER TABLE todos ADD COLUMN x text DEFAULT $$a$$', 'POSTGRES')).toMatchObject({ reason: 'SYNTAX' });
    expect(refused("ALTER TABLE todos ADD COLUMN x text DEFAULT 'a'::text", 'POSTGRES')).toMatchObject({ reason: 'SYNTAX' });
  });
});

describe('alterSqliteTable', () => {
  const DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '')";

  test('adds a column in one transaction: back-filled as local changes, a new schema hash, the old one still known', () => {
    const e = openReplica(DDL, ['todos']);
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'milk')");
    const before = e.schemaHash();
    const v = e.dbVersion();
    const r = alterSqliteTable(e, 'todos', ['ALTER TABLE todos ADD COLUMN prio INTEGER NOT NULL DEFAULT 3']);
    expect(r.statements).toEqual(['ALTER TABLE "todos" ADD COLUMN "prio" INTEGER NOT NULL DEFAULT 3']);
    expect(tableRows(e, 'todos')).toEqual([{ id: 'a', title: 'milk', prio: 3n }]);
    expect(e.schemaHash()).not.toBe(before);
    expect(e.knownSchemaHashes()).toContain(before);
    const prio = [...e.changes({ after: { dbVersion: v, seq: Number.MAX_SAFE_INTEGER } })].filter((c) => c.col === 'prio');
    expect(prio.map((c) => c.val)).toEqual([3n]);
    // Tracking is back: a later write is a change.
    e.driver.exec("UPDATE todos SET prio = 5 WHERE id = 'a'");
    expect([...e.changes({ after: { dbVersion: e.dbVersion() - 1, seq: Number.MAX_SAFE_INTEGER } })].map((c) => [c.col, c.val])).toEqual([['prio', 5n]]);
    expect(sqliteDeviceDdl(e)).toEqual([{ table: 'todos', sql: 'CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT \'\', "prio" INTEGER NOT NULL DEFAULT 3)' }]);
    e.close();
  });

  test('a statement the database rejects: ALTER_FAILED, earlier statements undone, tracking as before', () => {
    const e = openReplica(DDL, ['todos']);
    const hash = e.schemaHash();
    const ddl = sqliteDeviceDdl(e);
    const err = refusal(() => alterSqliteTable(e, 'todos', ['ALTER TABLE todos ADD COLUMN a TEXT', 'ALTER TABLE todos ADD COLUMN title TEXT']));
    expect(err).toMatchObject({ code: 'ALTER_FAILED', statement: 1 });
    expect(sqliteDeviceDdl(e)).toEqual(ddl);
    expect(e.schemaHash()).toBe(hash);
    expect(e.driver.inTransaction).toBe(false);
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('b', 'eggs')");
    expect([...e.changes({ localOnly: true })].some((c) => c.col === 'title' && c.val === 'eggs')).toBe(true);
    // A later alter works (no alter left open).
    expect(alterSqliteTable(e, 'todos', ['ALTER TABLE todos ADD COLUMN a TEXT']).table).toBe('todos');
    e.close();
  });

  test('an unsynced table is refused (TABLE_NOT_SYNCED)', () => {
    const e = openReplica(`${DDL}; CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL)`, ['todos']);
    expect(refusal(() => alterSqliteTable(e, 'notes', ['ALTER TABLE notes ADD COLUMN a TEXT']))).toMatchObject({ code: 'ALTER_REFUSED', reason: 'TABLE_NOT_SYNCED' });
    e.close();
  });
});
