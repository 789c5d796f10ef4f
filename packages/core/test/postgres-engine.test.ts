/**
 * The PostgreSQL engine (`@offsync/core/postgres`) against core's codec and the SQLite engine:
 * byte-identical PK blobs, identical clocks for the same local operations, one db_version per
 * transaction, payload exchange with SQLite replicas, atomic batches and a convergence property.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodePk } from '@offsync/core';
import type { SyncEngine, SqlValue } from '@offsync/core';
import { collect, normRows, openPgContext, openTestPool, pgClockRows, clockRows, openReplica, TODOS_DDL } from '@offsync/core/testing';
import type { PgCtx } from '@offsync/core/testing';

let pool: pg.Pool;
let closePool: (() => Promise<void>) | undefined;

beforeAll(async () => {
  const t = await openTestPool();
  pool = t.pool;
  closePool = () => t.close();
});
afterAll(async () => {
  await closePool?.();
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

  test('value classes: bool → INTEGER 0/1, numeric → TEXT, float → REAL, timestamps → ISO TEXT, bytea → BLOB; merges round-trip', async () => {
    const ddl = `CREATE TABLE v (id uuid PRIMARY KEY NOT NULL, b bool, n numeric(6,2), f float4, d float8, s int2,
      ts timestamptz, day date, j jsonb, raw bytea, vc varchar(10))`;
    const id = '0190f1b2-7a4e-7c3d-9e1f-123456789abc';
    const rows = await withPg(ddl, ['v'], async (a) => {
      await a.sql(`INSERT INTO v VALUES ($1, true, 1.5, 0.5, -2.25, -7, '2024-05-06T07:08:09.5Z', '2024-02-29', '{"k": [1]}', '\\x00ff', 'hé')`, [id]);
      const feed = await collect(a.engine.changes());
      const vals = Object.fromEntries(feed.map((c) => [c.col, c.val]));
      expect(vals).toMatchObject({ b: 1n, n: '1.50', f: 0.5, d: -2.25, s: -7n, day: '2024-02-29', j: '{"k": [1]}', vc: 'hé' });
      expect(vals['ts']).toBe('2024-05-06T07:08:09.500000Z');
      expect(vals['raw']).toEqual(new Uint8Array([0, 255]));
      expect(feed[0]?.pk).toEqual(encodePk([id]));
      return { feed, hash: await a.engine.schemaHash() };
    });
    await withPg(ddl, ['v'], async (b) => {
      expect(await b.engine.schemaHash()).toBe(rows.hash);
      expect((await b.engine.applyChanges(rows.feed)).applied).toBe(rows.feed.length);
      const back = (await collect(b.engine.changes())).map((c) => [c.col, c.val, c.colVersion]);
      expect(back).toEqual(rows.feed.map((c) => [c.col, c.val, c.colVersion]));
    });
  });

  test('init: D.1 messages, PK types, idempotence, algorithm change, back-fill, pk-only and gos tables', async () => {
    const ddl = `CREATE TABLE ip (id int8 PRIMARY KEY NOT NULL, t text);
      CREATE TABLE nd (id text PRIMARY KEY NOT NULL, t text NOT NULL);
      CREATE TABLE fp (id float8 PRIMARY KEY NOT NULL, t text);
      CREATE TABLE nopk (t text);
      CREATE TABLE pre (id text PRIMARY KEY NOT NULL, t text, u text);
      CREATE TABLE tags (a text NOT NULL, b int4 NOT NULL, PRIMARY KEY (a, b));
      CREATE TABLE logs (id text PRIMARY KEY NOT NULL, msg text);
      INSERT INTO pre VALUES ('p1', 'x', NULL), ('p2', NULL, 'y');`;
    await withPg(ddl, [], async (ctx) => {
      const e = ctx.engine;
      const msg = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (err: unknown) => (err as Error).message);
      expect(await msg(e.init('nope'))).toBe('Table nope does not exist');
      expect(await msg(e.init('ip'))).toMatch(/^Table ip uses a single-column INTEGER primary key/);
      expect(await msg(e.init('ip', 'cls', 1))).toBe('ok');
      expect(await msg(e.init('nd'))).toBe('All non-primary key columns declared as NOT NULL must have a DEFAULT value. (table nd)');
      expect(await msg(e.init('fp'))).toMatch(/primary key column id of table fp has type double precision/);
      expect(await msg(e.init('nopk'))).toMatch(/^Rowid only tables are not supported/);
      expect(await msg(e.init('dws_t', 'dws'))).toBe('CRDT algorithm dws is not yet supported');
      expect(await msg(e.init('ip', 'gos', 1))).toBe('The function cloudsync_cleanup(table) must be called before changing a table algorithm');
      const v0 = await e.dbVersion();
      await e.init('pre');
      await e.init('pre');
      const pre = await collect(e.changes({ tables: ['pre'] }));
      expect(pre.map((c) => `${c.col}=${String(c.val)}@${c.dbVersion - v0}`).sort()).toEqual(['t=null@1', 't=x@1', 'u=null@1', 'u=y@1']);
      await e.init('tags');
      await e.init('logs', 'gos');
      await ctx.sql("INSERT INTO tags VALUES ('x', 1); DELETE FROM tags; INSERT INTO tags VALUES ('x', 1)");
      expect((await pgClockRows(e, 'tags')).map((l) => l.split('/')[1])).toEqual(['__[RIP]__=3@3']);
      await ctx.sql("INSERT INTO logs VALUES ('l1', 'm')");
      expect(await msg(ctx.sql("UPDATE logs SET msg = 'n'"))).toBe('UPDATE operation is not allowed on table logs');
      expect(await msg(ctx.sql('DELETE FROM logs'))).toBe('DELETE operation is not allowed on table logs');
      const local = await collect(e.changes({ localOnly: true, after: { dbVersion: v0 + 1, seq: 1_000_000 } }));
      expect(local.map((c) => c.tbl).sort()).toEqual(['logs', 'tags']);
      await e.cleanup('logs');
      await ctx.sql("UPDATE logs SET msg = 'n'");
      expect((await e.syncedTables()).map((t) => t.name)).toEqual(['ip', 'pre', 'tags']);
    });
  });

  test('TRUNCATE of a synced table is refused with a clear message and changes nothing; after cleanup it is allowed', async () => {
    await withPg(TODOS_DDL, ['todos'], async (ctx) => {
      await ctx.sql("INSERT INTO todos (id, title) VALUES ('a', 'x'), ('b', 'y')");
      const err = await ctx.sql('TRUNCATE todos').then(() => undefined, (e: unknown) => e as { code?: string; message?: string; hint?: string });
      expect(err?.code).toBe('0A000');
      expect(err?.message).toBe('TRUNCATE of synced table todos is not tracked by OffSync');
      expect(err?.hint).toMatch(/DELETE the rows instead/);
      expect((await ctx.sql('SELECT count(*)::int FROM todos'))[0]).toEqual([2]);
      await ctx.engine.cleanup('todos');
      await ctx.sql('TRUNCATE todos');
      expect((await ctx.sql('SELECT count(*)::int FROM todos'))[0]).toEqual([0]);
    });
  });

  test('feed: keyset pages, cursor, row filter', async () => {
    await withPg(TODOS_DDL, ['todos'], async (ctx) => {
      await ctx.sql("INSERT INTO todos (id, title) VALUES ('a', '1'), ('b', '2'), ('c', '3')");
      await ctx.sql("UPDATE todos SET done = 1 WHERE id <> 'b'");
      const all = await collect(ctx.engine.changes());
      expect(all.length).toBe(9);
      expect(all.map((c) => [c.dbVersion, c.seq])).toEqual(all.map((c) => [c.dbVersion, c.seq]).sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!));
      expect(await collect(ctx.engine.changes({ pageSize: 2 }))).toEqual(all);
      const mid = all[4] as (typeof all)[number];
      expect(await collect(ctx.engine.changes({ after: { dbVersion: mid.dbVersion, seq: mid.seq }, pageSize: 3 }))).toEqual(all.slice(5));
      const noB = await collect(ctx.engine.changes({ pageSize: 2, rowFilter: (_t, pk, row) => pk[0] !== 'b' && row?.['title'] !== undefined }));
      expect(noB).toEqual(all.filter((c) => c.pk[3] !== 0x62));
      expect(await collect(ctx.engine.changes({ excludeSiteId: ctx.engine.siteId }))).toEqual([]);
    });
  });
});

