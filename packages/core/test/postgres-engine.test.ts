/**
 * The PostgreSQL engine (`@offsync/core/postgres`) against core's codec and the SQLite engine:
 * byte-identical PK blobs, identical clocks for the same local operations, one db_version per
 * transaction, payload exchange with SQLite replicas, atomic batches and a convergence property.
 */
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { collect, normRows, openPgContext, pgClockRows } from '../src/adapters/postgres/testing.ts';
import type { PgCtx } from '../src/adapters/postgres/testing.ts';
import { encodePk } from '../src/codec/pk.ts';
import { clockRows, openReplica, TODOS_DDL } from '../src/testing/replica.ts';
import type { SyncEngine } from '../src/engine/engine.ts';
import type { SqlValue } from '../src/types.ts';

let pool: pg.Pool;
let stop: (() => Promise<void>) | undefined;

/** TEST_DATABASE_URL when set, else an embedded PGlite over the PG wire protocol on a loopback port. */
beforeAll(async () => {
  let url = process.env['TEST_DATABASE_URL'];
  if (!url) {
    const db = await PGlite.create();
    const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 32 });
    await server.start();
    url = `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`;
    stop = async () => {
      await server.stop();
      await db.close();
    };
  }
  pool = new pg.Pool({ connectionString: url, max: stop ? 1 : 4 });
});
afterAll(async () => {
  await pool.end();
  await stop?.();
});

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function withPg<T>(ddl: string, tables: readonly string[], fn: (c: PgCtx) => Promise<T>, flags = 0): Promise<T> {
  const ctx = await openPgContext(pool, ddl, tables, flags);
  try {
    return await fn(ctx);
  } finally {
    await ctx.drop();
  }
}

async function pgTodos(ctx: PgCtx): Promise<string[]> {
  const rows = await ctx.sql('SELECT id, title, done::int8::text, note FROM todos');
  return normRows(rows.map((r) => [String(r[0]), String(r[1]), BigInt(String(r[2])), r[3] === null ? null : String(r[3])]));
}

function liteTodos(e: SyncEngine): string[] {
  return normRows(e.driver.prepare('SELECT id, title, done, note FROM todos').all().map((r) => [r['id'], r['title'], r['done'], r['note']] as SqlValue[]));
}

describe('PostgreSQL engine', () => {
  test('trigger PK blobs equal encodePk for TEXT, INTEGER and BLOB keys', async () => {
    const ddl = `CREATE TABLE kt (k text PRIMARY KEY NOT NULL, v text);
      CREATE TABLE ki (k int8 PRIMARY KEY NOT NULL, v text);
      CREATE TABLE kb (k bytea PRIMARY KEY NOT NULL, v text);
      CREATE TABLE kc (a int4 NOT NULL, b text NOT NULL, c bytea NOT NULL, v text, PRIMARY KEY (a, b, c))`;
    await withPg(ddl, ['kt', 'ki', 'kb', 'kc'], async (ctx) => {
      const texts = ['', 'a', 'héllo', '日本語', '🙂', 'x'.repeat(300)];
      const ints = [0n, 1n, 127n, 128n, 255n, 256n, 65535n, 65536n, -1n, -255n, -256n, 9223372036854775807n, -9223372036854775808n];
      const blobs = [new Uint8Array([]), new Uint8Array([0]), new Uint8Array([1, 2, 255]), new Uint8Array(256).fill(7)];
      for (const t of texts) await ctx.sql('INSERT INTO kt VALUES ($1, NULL)', [t]);
      for (const i of ints) await ctx.sql('INSERT INTO ki VALUES ($1, NULL)', [i.toString()]);
      for (const b of blobs) await ctx.sql('INSERT INTO kb VALUES ($1, NULL)', [Buffer.from(b)]);
      await ctx.sql('INSERT INTO kc VALUES (256, $1, $2, NULL), (-3, $3, $4, NULL)', ['é', Buffer.from([9]), '', Buffer.alloc(0)]);
      const got = new Set((await collect(ctx.engine.changes())).map((c) => `${c.tbl}:${hexOf(c.pk)}`));
      const want = [
        ...texts.map((t) => `kt:${hexOf(encodePk([t]))}`),
        ...ints.map((i) => `ki:${hexOf(encodePk([i]))}`),
        ...blobs.map((b) => `kb:${hexOf(encodePk([b]))}`),
        `kc:${hexOf(encodePk([256n, 'é', new Uint8Array([9])]))}`,
        `kc:${hexOf(encodePk([-3n, '', new Uint8Array([])]))}`,
      ];
      expect([...got].sort()).toEqual(want.sort());
    }, 1);
  });

  test('local operations produce the same clocks as the SQLite engine', async () => {
    const ops: [string, unknown[]][] = [
      ["INSERT INTO todos (id, title, done) VALUES ('a', 'A', 0)", []],
      ["INSERT INTO todos (id, title, done) VALUES ('b', 'B', 1)", []],
      ["UPDATE todos SET title = 'A2' WHERE id = 'a'", []],
      ["UPDATE todos SET title = 'A3', note = 'n' WHERE id = 'a'", []],
      ["UPDATE todos SET title = 'A3' WHERE id = 'a'", []],
      ["DELETE FROM todos WHERE id = 'b'", []],
      ["INSERT INTO todos (id, title) VALUES ('b', 'B again')", []],
      ["UPDATE todos SET id = 'c', done = 1 WHERE id = 'a'", []],
      ["DELETE FROM todos WHERE id = 'b'", []],
      ["INSERT INTO todos (id) VALUES ('a')", []],
      ["UPDATE todos SET id = 'b' WHERE id = 'c'", []],
    ];
    const lite = openReplica();
    await withPg(TODOS_DDL, ['todos'], async (ctx) => {
      for (const [sql] of ops) {
        lite.driver.exec(sql);
        await ctx.sql(sql);
        expect(await pgClockRows(ctx.engine, 'todos')).toEqual(clockRows(lite, 'todos'));
      }
      expect(await pgTodos(ctx)).toEqual(liteTodos(lite));
    });
  });

  test('one db_version per transaction, seqs increasing inside it', async () => {
    await withPg(TODOS_DDL, ['todos'], async (ctx) => {
      const v0 = await ctx.engine.dbVersion();
      const c = await ctx.pool.connect();
      try {
        await c.query(`SET search_path TO ${ctx.nsp}`);
        await c.query('BEGIN');
        await c.query("INSERT INTO todos (id, title) VALUES ('a', 'x'), ('b', 'y')");
        await c.query("UPDATE todos SET done = 1 WHERE id = 'a'");
        await c.query("DELETE FROM todos WHERE id = 'b'");
        await c.query('COMMIT');
        await c.query("UPDATE todos SET note = 'z' WHERE id = 'a'");
        await c.query('RESET search_path');
      } finally {
        c.release();
      }
      const feed = await collect(ctx.engine.changes());
      const versions = [...new Set(feed.map((ch) => ch.dbVersion))];
      expect(versions).toEqual([v0 + 1, v0 + 2]);
      const first = feed.filter((ch) => ch.dbVersion === v0 + 1).map((ch) => ch.seq);
      expect(new Set(first).size).toBe(first.length);
      expect(first).toEqual([...first].sort((a, b) => a - b));
      expect(await ctx.engine.dbVersion()).toBe(v0 + 2);
    });
  });
});
