import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openTestDb, type TestDb } from '../codec/test-sqlite.ts';
import {
  columnListAffinity,
  columnListHashInput,
  columnListSchemaHash,
  ddlTextSchemaHash,
  normalizedFnv64,
  schemaHashFromInt64,
  schemaHashToInt64,
} from './schema-hash.ts';

const TODOS_SQL =
  "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, score REAL, data BLOB)";
const TODOS = {
  name: 'todos',
  columns: [
    { name: 'id', type: 'TEXT', pk: true },
    { name: 'title', type: 'TEXT', pk: false },
    { name: 'done', type: 'INTEGER', pk: false },
    { name: 'score', type: 'REAL', pk: false },
    { name: 'data', type: 'BLOB', pk: false },
  ],
};

test('D.4 verified values', () => {
  expect(columnListHashInput([TODOS])).toBe('todos:id:text:1,todos:title:text:0,todos:done:integer:0,todos:score:real:0,todos:data:blob:0');
  expect(columnListSchemaHash([TODOS])).toBe(0xfe8b12589f8259a7n);
  expect(ddlTextSchemaHash([TODOS_SQL])).toBe(14342886994888993408n);
});

test('normalisation rules', () => {
  const h = normalizedFnv64;
  expect(h('  A  b  ')).toBe(h('a b'));
  expect(h('a ( b , c ) ;')).toBe(h('a( b, c)'));
  expect(h('x;;')).toBe(h('x'));
  expect(h('a -- c\n b')).toBe(h('a b'));
  expect(h('a/*c*/b')).toBe(h('ab'));
  expect(h("'A  B'")).not.toBe(h("'a b'"));
  expect(h("'it''s' X")).toBe(h("'it''s' x"));
  expect(h("'it''s'")).toBe(h("'it's'")); // a doubled quote hashes as one
  expect(h('"Q -- not a comment"')).not.toBe(h('"Q'));
  expect(h('a\u0001b')).toBe(h('ab'));
  expect(h('a é b')).toBe(h('a b')); // non-ASCII outside quotes counts as non-printable
  expect(h('')).toBe(0xcbf29ce484222325n);
});

test('affinity words', () => {
  expect(['INT', 'bigint', 'CHARINT', 'VARCHAR(10)', 'clob', 'Text', 'BLOB', '', 'REAL', 'floating', 'DOUBLE', 'NUMERIC', 'decimal', 'DECIMAL(10,2)', 'BOOLEAN', 'DATE'].map(columnListAffinity)).toEqual([
    'integer', 'integer', 'integer', 'text', 'text', 'text', 'blob', 'blob', 'real', 'real', 'real', 'numeric', 'numeric', 'text', 'text', 'text',
  ]);
});

test('tables sort case-insensitively, columns keep their order and are lower-cased', () => {
  const t = (name: string) => ({ name, columns: [{ name: 'ID', type: 'text', pk: true }] });
  expect(columnListHashInput([t('b'), t('A'), t('c')])).toBe('A:id:text:1,b:id:text:1,c:id:text:1');
});

test('int64 conversion', () => {
  expect(schemaHashToInt64(14342886994888993408n)).toBe(14342886994888993408n - 2n ** 64n);
  expect(schemaHashFromInt64(14342886994888993408n - 2n ** 64n)).toBe(14342886994888993408n);
});

describeExtension();

function describeExtension(): void {
  let dbs: TestDb[] = [];
  beforeAll(() => {
    dbs = [];
  });
  afterAll(() => dbs.forEach((d) => d.close()));

  /** Creates the tables, inits them, returns [extension's current hash or null, our hash]. */
  async function hashes(createSqls: string[]): Promise<[bigint | null, bigint]> {
    const db = await openTestDb();
    dbs.push(db);
    for (const s of createSqls) db.exec(s);
    const names = db.all("SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 1) <> '_'").map((r) => r[0] as string);
    for (const n of names) db.one('SELECT cloudsync_init(?)', [n]);
    const stored = db.one('SELECT hash FROM cloudsync_schema_versions ORDER BY seq DESC LIMIT 1');
    const sqls = db
      .all("SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN (SELECT tbl_name FROM cloudsync_table_settings)")
      .map((r) => r[0] as string);
    return [stored === null ? null : schemaHashFromInt64(stored as bigint), ddlTextSchemaHash(sqls)];
  }

  test('DDL-text hash matches what the 0.9.99 extension stores', async () => {
    const cases = [
      'CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, a TEXT)',
      'CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, -- comment\n a TEXT)',
      'CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL,--comment\na TEXT)',
      'CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL /* c */, a/*x*/TEXT)',
      "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a TEXT /* c */ DEFAULT 'A  B' )",
      "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, a TEXT DEFAULT 'héllo')",
      'CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a default "q""q")',
      'CREATE TABLE t(id TEXT/**/PRIMARY KEY NOT NULL)',
      'CREATE TABLE t(id TEXT--c\nPRIMARY KEY NOT NULL)',
      'CREATE TABLE "Tq"\t(id TEXT PRIMARY KEY NOT NULL)',
      'create TABLE "Tq"(id text primary key not null, a\nreal)',
      'create TABLE "Tq"(id text primary key not null, a\treal)',
      'create TABLE "Tq"(id text primary key not null,\na real)',
      'create TABLE "Tq"(\nid text primary key not null, a real)',
      'create TABLE "Tq"(id text primary key not null , a \n  real \n)',
      "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, c default 'it''''s')",
    ];
    for (const c of cases) {
      const [theirs, ours] = await hashes([c]);
      expect(theirs, c).toBe(ours);
    }
  });

  test('random DDL formatting: equal whenever the extension could store the hash', async () => {
    // 0.9.99 cannot store hashes ≥ 2^63 (u64 bound into a signed INTEGER PRIMARY KEY): then the
    // table stays empty for a single table, which is itself a check on our value.
    const ws = fc.constantFrom(' ', '  ', '\t', '\n', ' \n  ', '\r\n', ' /* x */ ', '--c\n', '/**/', ' --c\n ');
    const opt = fc.constantFrom('', ' ', '\n', '\t ', '/*c*/');
    const word = (w: string) => fc.constantFrom(w, w.toUpperCase(), w[0]!.toUpperCase() + w.slice(1));
    const ddl = fc
      .tuple(word('create'), ws, word('table'), ws, fc.constantFrom('t', 'T', '"Tq"', 'items'), opt, opt, word('id'), ws, word('text'), ws,
        word('primary key not null'), opt, opt, word('a'), ws, fc.constantFrom('TEXT', 'integer', 'real', 'BLOB', ''), ws,
        fc.constantFrom("DEFAULT 'X  y'", 'default "q""q"', 'DEFAULT 0', ''), opt)
      .map(([c, s1, t, s2, name, o1, o2, id, s3, tt, s4, pk, o3, o4, a, s5, ty, s6, def, o5]) =>
        `${c}${s1}${t}${s2}${name}${o1}(${o2}${id}${s3}${tt}${s4}${pk}${o3},${o4}${a}${s5}${ty}${s6}${def}${o5})`);
    const samples = fc.sample(ddl, { seed: 99, numRuns: 150 });
    let compared = 0;
    for (const s of samples) {
      const [theirs, ours] = await hashes([s]);
      if (ours < 2n ** 63n) {
        expect(theirs, JSON.stringify(s)).toBe(ours);
        compared++;
      } else expect(theirs, JSON.stringify(s)).toBeNull();
    }
    expect(compared).toBeGreaterThan(40);
  });

  test('two tables: sqlite_master order, joined with a comma', async () => {
    let compared = 0;
    for (let i = 0; i < 12; i++) {
      const sqls = [`CREATE TABLE z${i} (id TEXT PRIMARY KEY NOT NULL)`, `CREATE TABLE a${i} (id TEXT PRIMARY KEY NOT NULL, x)`];
      const [theirs, ours] = await hashes(sqls);
      if (ours < 2n ** 63n && ddlTextSchemaHash([sqls[0]!]) < 2n ** 63n) {
        expect(theirs).toBe(ours);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(0);
  });
}
