/**
 * The DDL-text schema hash of a POSTGRES database (docs/PROTOCOL.md §P6 "Hash algorithms"): the
 * canonical SQLite `CREATE TABLE` text derived from the PostgreSQL columns (device-ddl.ts), its hash
 * by the existing DDL-text function, and a SQLite database created from that text computing the
 * same hashes (both variants) as the PostgreSQL engine.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ddlTextSchemaHash, normalizedFnv64, schemaHashToInt64 } from '@offsync/core';
import { classify, createPgSyncEngine, sqliteDdlFor, sqliteLiteral } from '@offsync/core/postgres';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { openPgContext, openTestPool } from '@offsync/core/testing';

type PgTable = Parameters<typeof sqliteDdlFor>[0];
type PgCol = PgTable['columns'][number];

/** A column as readPgTableSchema reports it (format_type, typname, not null, pg_get_expr, key position). */
function col(cid: number, name: string, typname: string, sqlType: string, notNull: boolean, defaultValue: string | null, pk = 0): PgCol {
  return { cid, name, type: sqlType, notNull, defaultValue, pk, typname, sqlType, ...classify(typname, sqlType) };
}

function table(name: string, columns: PgCol[]): PgTable {
  return { name, columns, pkColumns: columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk), valueColumns: columns.filter((c) => c.pk === 0), createSql: '' };
}

describe('sqliteDdlFor (pure)', () => {
  test('a known table: the canonical statement, and its DDL-text hash is the hash of that text', () => {
    const t = table('Orders', [
      col(0, 'tenant', 'text', 'text', true, null, 1),
      col(1, 'id', 'uuid', 'uuid', true, 'gen_random_uuid()', 2),
      col(2, 'qty', 'int4', 'integer', true, "'-1'::integer"),
      col(3, 'label', 'varchar', 'character varying(40)', true, "'it''s'::character varying"),
      col(4, 'price', 'numeric', 'numeric(10,2)', true, '0.00'),
      col(5, 'amount', 'numeric', 'numeric', false, null),
      col(6, 'ratio', 'float8', 'double precision', false, '1.5'),
      col(7, 'paid', 'bool', 'boolean', true, 'false'),
      col(8, 'data', 'bytea', 'bytea', false, "'\\x0a0B'::bytea"),
      col(9, 'created', 'timestamptz', 'timestamp with time zone', true, 'now()'),
      col(10, 'seen', 'timestamptz', 'timestamp with time zone', false, 'now()'),
      col(11, 'note', 'text', 'text', false, 'NULL::text'),
    ]);
    const text = sqliteDdlFor(t);
    expect(text).toBe(
      'CREATE TABLE "Orders" ("tenant" TEXT NOT NULL, "id" TEXT NOT NULL, "qty" INTEGER NOT NULL DEFAULT -1, ' +
        `"label" TEXT NOT NULL DEFAULT 'it''s', "price" TEXT NOT NULL DEFAULT '0.00', "amount" NUMERIC, "ratio" REAL DEFAULT 1.5, ` +
        `"paid" BOOLEAN NOT NULL DEFAULT 0, "data" BLOB DEFAULT X'0A0B', "created" TEXT NOT NULL DEFAULT '', "seen" TEXT, "note" TEXT, ` +
        'PRIMARY KEY ("tenant", "id"))',
    );
    // The existing DDL-text function over exactly that text (lower-cased, normalised).
    expect(ddlTextSchemaHash([text])).toBe(normalizedFnv64(text.toLowerCase()));
  });

  test('default expressions: constants become SQLite literals, anything else is not a constant', () => {
    const cases: [string, string, string | undefined][] = [
      ["''::text", 'TEXT', "''"],
      ["'a''b'::character varying", 'TEXT', "'a''b'"],
      ["'-1'::integer", 'INTEGER', '-1'],
      ['(-2)', 'INTEGER', '-2'],
      ['42', 'INTEGER', '42'],
      ['42', 'TEXT', "'42'"],
      ["'1.50'::numeric", 'NUMERIC', '1.50'],
      ['true', 'BOOLEAN', '1'],
      ["'f'::boolean", 'BOOLEAN', '0'],
      ["'\\x00ff'::bytea", 'BLOB', "X'00FF'"],
      ["'not hex'::bytea", 'BLOB', undefined],
      ['NULL::text', 'TEXT', 'NULL'],
      ["'2024-01-02'::date", 'TEXT', "'2024-01-02'"],
      ['now()', 'TEXT', undefined],
      ["nextval('t_id_seq'::regclass)", 'INTEGER', undefined],
      ['CURRENT_TIMESTAMP', 'TEXT', undefined],
    ];
    for (const [expr, word, want] of cases) expect(sqliteLiteral(expr, word), expr).toBe(want);
  });
});

describe('DDL-text hash of a PostgreSQL database (TEST_DATABASE_URL, else PGlite)', () => {
  let pool: pg.Pool | undefined;
  let close: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const t = await openTestPool();
    pool = t.pool;
    close = () => t.close();
  });
  afterAll(async () => close?.());

  const DDL = `CREATE TABLE items (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name varchar(40) NOT NULL DEFAULT 'it''s',
      qty int4 NOT NULL DEFAULT -1,
      price numeric(10,2) NOT NULL DEFAULT 0.00,
      ratio float8 DEFAULT 1.5,
      flag bool NOT NULL DEFAULT true,
      data bytea DEFAULT '\\x0102',
      created timestamptz NOT NULL DEFAULT now(),
      amount numeric,
      note text);
    CREATE TABLE "Alpha" (k text PRIMARY KEY, n int8)`;
  const ITEMS =
    `CREATE TABLE "items" ("id" TEXT NOT NULL, "name" TEXT NOT NULL DEFAULT 'it''s', "qty" INTEGER NOT NULL DEFAULT -1, ` +
    `"price" TEXT NOT NULL DEFAULT '0.00', "ratio" REAL DEFAULT 1.5, "flag" BOOLEAN NOT NULL DEFAULT 1, "data" BLOB DEFAULT X'0102', ` +
    `"created" TEXT NOT NULL DEFAULT '', "amount" NUMERIC, "note" TEXT, PRIMARY KEY ("id"))`;
  const ALPHA = 'CREATE TABLE "Alpha" ("k" TEXT NOT NULL, "n" INTEGER, PRIMARY KEY ("k"))';

  test('deviceDdl, ddlSchemaHash, the recorded kinds, and a SQLite database created from the statements computing both hashes alike', { timeout: 120_000 }, async () => {
    const ctx = await openPgContext(pool as pg.Pool, DDL, ['items', 'Alpha']);
    const lite = openSyncDatabase(':memory:');
    try {
      const e = ctx.engine;
      // Tables in name order (NOCASE), as a device must create them.
      expect(await e.deviceDdl()).toEqual([ALPHA, ITEMS]);
      const ddlHash = await e.ddlSchemaHash();
      expect(ddlHash).toBe(ddlTextSchemaHash([ALPHA, ITEMS]));
      const m = `"${e.meta}"`;
      const kinds = await ctx.sql(`SELECT hash::text, kind FROM ${m}.schema_versions`);
      expect(kinds).toEqual(
        expect.arrayContaining([
          [schemaHashToInt64(ddlHash).toString(), 'ddl-text'],
          [schemaHashToInt64(await e.schemaHash()).toString(), 'column-list'],
        ]),
      );
      // A device created from the statements (the SQLite engine reads its sqlite_master text).
      for (const s of await e.deviceDdl()) lite.driver.exec(s);
      lite.init('Alpha');
      lite.init('items');
      expect(lite.ddlSchemaHash()).toBe(ddlHash);
      expect(lite.schemaHash()).toBe(await e.schemaHash());

      // After an alter both hashes are recorded again; the device's ALTER gives the same column-list hash.
      await e.beginAlter('items');
      await e.withConnection((c) => c.q(`ALTER TABLE "${ctx.nsp}".items ADD COLUMN tags text NOT NULL DEFAULT 'x'`));
      await e.commitAlter('items');
      const after = await e.ddlSchemaHash();
      expect(after).toBe(ddlTextSchemaHash([ALPHA, ITEMS.replace(', PRIMARY KEY', `, "tags" TEXT NOT NULL DEFAULT 'x', PRIMARY KEY`)]));
      expect(await e.knownSchemaHashes()).toEqual(expect.arrayContaining([ddlHash, after]));
      lite.beginAlter('items');
      lite.driver.exec(`ALTER TABLE items ADD COLUMN tags TEXT NOT NULL DEFAULT 'x'`);
      lite.commitAlter('items');
      expect(lite.schemaHash()).toBe(await e.schemaHash());

      // A database initialised before the DDL-text hash was recorded learns it when opened.
      await ctx.sql(`DELETE FROM ${m}.schema_versions WHERE kind = 'ddl-text'`);
      expect(await e.knownSchemaHashes()).not.toContain(after);
      const reopened = await createPgSyncEngine({ pool: pool as pg.Pool, schema: e.meta, tablesSchema: ctx.nsp });
      expect(await reopened.knownSchemaHashes()).toContain(after);
    } finally {
      lite.close();
      await ctx.drop();
    }
  });
});
