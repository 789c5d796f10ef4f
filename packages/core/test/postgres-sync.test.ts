/**
 * A PostgreSQL replica (`@offsync/core/postgres`) exchanging payloads with SQLite replicas:
 * concurrent updates, delete vs update, resurrection, atomic refusal of bad batches and a
 * seeded random convergence property (1 PostgreSQL + 2 SQLite replicas).
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CoreErrorCode, isCoreError } from '@offsync/core';
import type { SyncEngine, SqlValue } from '@offsync/core';
import {
  collect,
  liteToPg,
  normRows,
  openPgContext,
  openTestPool,
  pgClockRows,
  pgToLite,
  clockRows,
  openReplica,
  syncOneWay,
  TODOS_DDL,
} from '@offsync/core/testing';
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

async function pgTodos(ctx: PgCtx): Promise<string[]> {
  const rows = await ctx.sql('SELECT id, title, done::int8::text, note FROM todos');
  return normRows(rows.map((r) => [String(r[0]), String(r[1]), BigInt(String(r[2])), r[3] === null ? null : String(r[3])]));
}

function liteTodos(e: SyncEngine): string[] {
  return normRows(e.driver.prepare('SELECT id, title, done, note FROM todos').all().map((r) => [r['id'], r['title'], r['done'], r['note']] as SqlValue[]));
}

/** Full mesh, twice: every replica ends with everything. */
async function syncAll(ctx: PgCtx, lites: readonly SyncEngine[]): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (const l of lites) {
      await liteToPg(l, ctx.engine);
      await pgToLite(ctx.engine, l);
    }
    for (const a of lites) for (const b of lites) if (a !== b) syncOneWay(a, b);
  }
}

async function expectConverged(ctx: PgCtx, lites: readonly SyncEngine[]): Promise<void> {
  const rows = await pgTodos(ctx);
  const clocks = await pgClockRows(ctx.engine, 'todos');
  for (const l of lites) {
    expect(liteTodos(l)).toEqual(rows);
    expect(clockRows(l, 'todos')).toEqual(clocks);
  }
}

async function withPg(fn: (ctx: PgCtx) => Promise<void>): Promise<void> {
  const ctx = await openPgContext(pool, TODOS_DDL, ['todos']);
  try {
    await fn(ctx);
  } finally {
    await ctx.drop();
  }
}

describe('PostgreSQL replica with SQLite replicas', () => {
  test('concurrent updates, delete vs update and resurrection converge', async () => {
    await withPg(async (ctx) => {
      const [l1, l2] = [openReplica(), openReplica()] as [SyncEngine, SyncEngine];
      expect(await ctx.engine.schemaHash()).toBe(l1.schemaHash());
      await ctx.sql("INSERT INTO todos (id, title) VALUES ('a', 'A')");
      l1.driver.exec("INSERT INTO todos (id, title, done) VALUES ('b', 'B', 1)");
      await syncAll(ctx, [l1, l2]);
      await expectConverged(ctx, [l1, l2]);
      // concurrent updates: higher col_version wins, then the greater value
      await ctx.sql("UPDATE todos SET title = 'pg' WHERE id = 'a'");
      l1.driver.exec("UPDATE todos SET title = 'l1' WHERE id = 'a'");
      l2.driver.exec("UPDATE todos SET title = 'l2' WHERE id = 'a'; UPDATE todos SET title = 'l2b' WHERE id = 'a'");
      await ctx.sql("UPDATE todos SET note = 'x' WHERE id = 'b'");
      l1.driver.exec("UPDATE todos SET note = 'y' WHERE id = 'b'");
      await syncAll(ctx, [l1, l2]);
      await expectConverged(ctx, [l1, l2]);
      expect(await pgTodos(ctx)).toEqual(normRows([['a', 'l2b', 0n, null], ['b', 'B', 1n, 'y']]));
      // delete on PostgreSQL vs a concurrent update on SQLite: the delete wins
      await ctx.sql("DELETE FROM todos WHERE id = 'b'");
      l2.driver.exec("UPDATE todos SET done = 0 WHERE id = 'b'");
      await syncAll(ctx, [l1, l2]);
      await expectConverged(ctx, [l1, l2]);
      expect((await pgTodos(ctx)).length).toBe(1);
      // resurrection on SQLite, then a PK change on PostgreSQL
      l1.driver.exec("INSERT INTO todos (id, title) VALUES ('b', 'again')");
      await syncAll(ctx, [l1, l2]);
      await ctx.sql("UPDATE todos SET id = 'c' WHERE id = 'a'");
      l2.driver.exec("DELETE FROM todos WHERE id = 'b'; INSERT INTO todos (id, note) VALUES ('b', 'l2 life')");
      await syncAll(ctx, [l1, l2]);
      await expectConverged(ctx, [l1, l2]);
      expect(await pgTodos(ctx)).toEqual(normRows([['b', '', 0n, 'l2 life'], ['c', 'l2b', 0n, null]]));
    });
  });

  test('a batch with an unknown column is refused whole; unknown schema hashes are refused', async () => {
    await withPg(async (ctx) => {
      const l1 = openReplica();
      l1.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'A'), ('b', 'B')");
      const changes = [...l1.changes()];
      const bad = changes.map((c, i) => (i === changes.length - 1 ? { ...c, col: 'nope' } : c));
      const v0 = await ctx.engine.dbVersion();
      const err = await ctx.engine.applyChanges(bad).catch((e: unknown) => e);
      expect(isCoreError(err, CoreErrorCode.UNKNOWN_COLUMN)).toBe(true);
      expect(await pgTodos(ctx)).toEqual([]);
      expect(await collect(ctx.engine.changes())).toEqual([]);
      expect(await ctx.engine.dbVersion()).toBe(v0);
      const other = openReplica('CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT)');
      other.driver.exec("INSERT INTO todos VALUES ('z', 'z')");
      const payload = other.encodeChanges([...other.changes()]) as Uint8Array;
      const refused = await ctx.engine.applyPayload(payload).catch((e: unknown) => e);
      expect(isCoreError(refused, CoreErrorCode.SCHEMA_HASH_UNKNOWN)).toBe(true);
      expect((await ctx.engine.applyChanges(changes)).applied).toBe(changes.length);
      expect(await pgTodos(ctx)).toEqual(liteTodos(l1));
    });
  });

  test('property: 1 PostgreSQL + 2 SQLite replicas converge (seeded)', async () => {
    const op = fc.record({
      r: fc.integer({ min: 0, max: 2 }),
      kind: fc.constantFrom('ins', 'upd', 'del', 'pk', 'sync'),
      id: fc.constantFrom('a', 'b', 'c'),
      id2: fc.constantFrom('a', 'b', 'c'),
      title: fc.constantFrom('x', 'y', 'zz', ''),
      done: fc.integer({ min: 0, max: 1 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 14 }), async (ops) => {
        await withPg(async (ctx) => {
          const lites = [openReplica(), openReplica()];
          for (const o of ops) {
            const stmts: [string, SqlValue[]][] = {
              ins: [['INSERT INTO todos (id, title, done) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [o.id, o.title, BigInt(o.done)]]],
              upd: [['UPDATE todos SET title = ?, done = ? WHERE id = ?', [o.title, BigInt(o.done), o.id]]],
              del: [['DELETE FROM todos WHERE id = ?', [o.id]]],
              pk: [['UPDATE todos SET id = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM todos WHERE id = ?)', [o.id2, o.id, o.id2]]],
              sync: [],
            }[o.kind] as [string, SqlValue[]][];
            if (o.kind === 'sync') {
              const l = lites[o.r % 2] as SyncEngine;
              await liteToPg(l, ctx.engine);
              await pgToLite(ctx.engine, l);
            } else if (o.r === 0) {
              for (const [sql, params] of stmts) {
                let n = 0;
                await ctx.sql(sql.replace(/\?/g, () => `$${++n}`), params.map((p) => (typeof p === 'bigint' ? Number(p) : p)));
              }
            } else for (const [sql, params] of stmts) (lites[o.r - 1] as SyncEngine).driver.prepare(sql).run(...params);
          }
          await syncAll(ctx, lites);
          await expectConverged(ctx, lites);
        });
      }),
      { numRuns: 50, seed: 20_261_125, endOnFailure: true },
    );
  }, 240_000);
});
