/**
 * Block-LWW text columns on the PostgreSQL engine (adapters/postgres/blocks.ts, docs/PROTOCOL.md
 * "Block columns"), against SQLite replicas marked the same way: concurrent edits of different
 * lines survive everywhere, line inserts and deletes, the materialised text in the PostgreSQL
 * table, a psql UPDATE turned into the same block cells the SQLite engine makes of it, the feed
 * sending block cells only (paged), and lives of a deleted and re-inserted row.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodePk, CoreErrorCode, isCoreError } from '@offsync/core';
import type { SyncEngine, Change, SqlValue } from '@offsync/core';
import { collect, liteToPg, openPgContext, openTestPool, pgToLite, openReplica, syncOneWay } from '@offsync/core/testing';
import type { PgCtx } from '@offsync/core/testing';

const DDL = "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '', n INTEGER NOT NULL DEFAULT 0)";
const US = '\u001f';
const A = new Uint8Array(16).fill(1);
const B = new Uint8Array(16).fill(2);
const PK = encodePk(['n1']);

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

async function withPg(fn: (ctx: PgCtx) => Promise<void>, ddl = DDL): Promise<void> {
  const ctx = await openPgContext(pool, ddl, ['notes']);
  try {
    await ctx.engine.setBlockColumn('notes', 'body');
    await fn(ctx);
  } finally {
    await ctx.drop();
  }
}

function lite(): SyncEngine {
  const e = openReplica(DDL, ['notes']);
  e.setBlockColumn('notes', 'body');
  return e;
}

const cell = (col: string, val: SqlValue, colVersion: number, dbVersion: number, seq: number, siteId = A, cl = 1): Change => ({ tbl: 'notes', pk: PK, col, val, colVersion, dbVersion, siteId, cl, seq });
const block = (pos: string, val: SqlValue, cv: number, dbv: number, seq: number, site = A, cl = 1): Change => cell(`body${US}${pos}`, val, cv, dbv, seq, site, cl);

const pgBody = async (ctx: PgCtx, id = 'n1'): Promise<unknown> => (await ctx.sql('SELECT body FROM notes WHERE id = $1', [id]))[0]?.[0];
const liteBody = (e: SyncEngine, id = 'n1'): unknown => e.driver.prepare('SELECT body FROM notes WHERE id = ?').getRaw(id)?.[0];
/** Block cells of a feed as `pos=value@col_version` (the whole column never travels). */
const blockCells = (changes: readonly Change[]): string[] =>
  changes.filter((c) => c.col.startsWith(`body${US}`)).map((c) => `${c.col.slice(5)}=${c.val === null ? 'NULL' : String(c.val)}@${c.colVersion}`);
/** The live block state of one row: last write per position in feed order. */
function blockState(changes: readonly Change[]): string[] {
  const m = new Map<string, string>();
  for (const c of changes) if (c.col.startsWith(`body${US}`)) m.set(`${Buffer.from(c.pk).toString('hex')}/${c.col.slice(5)}`, `${c.val === null ? 'NULL' : String(c.val)}@${c.colVersion}`);
  return [...m].map(([k, v]) => `${k}=${v}`).sort();
}

/** Full mesh, twice, between the PostgreSQL central and SQLite replicas. */
async function syncAll(ctx: PgCtx, lites: readonly SyncEngine[]): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (const l of lites) {
      await liteToPg(l, ctx.engine);
      await pgToLite(ctx.engine, l);
    }
  }
}

async function expectConverged(ctx: PgCtx, lites: readonly SyncEngine[], ids = ['n1']): Promise<void> {
  const central = blockState(await collect(ctx.engine.changes()));
  for (const l of lites) {
    for (const id of ids) expect(liteBody(l, id)).toBe(await pgBody(ctx, id));
    expect(blockState([...l.changes()])).toEqual(central);
  }
}

describe('block columns on PostgreSQL', () => {
  test('marking: unknown, key and non-text columns refused; block cells of an unmarked column refused; a marked one materialises the text', async () => {
    const ctx = await openPgContext(pool, DDL, ['notes']);
    try {
      const insert = [cell('title', 't', 1, 1, 0), block('a0', 'line one', 1, 1, 1), block('a1', 'line two', 1, 1, 2), block('a2', 'line three', 1, 1, 3)];
      const refused = await ctx.engine.applyChanges(insert).catch((e: unknown) => e);
      expect(isCoreError(refused, CoreErrorCode.UNKNOWN_COLUMN)).toBe(true);
      for (const [col, code] of [['nope', CoreErrorCode.UNKNOWN_COLUMN], ['id', CoreErrorCode.UNKNOWN_COLUMN], ['n', CoreErrorCode.SCHEMA_INVALID]] as const) {
        expect(isCoreError(await ctx.engine.setBlockColumn('notes', col).catch((e: unknown) => e), code)).toBe(true);
      }
      expect(isCoreError(await ctx.engine.setBlockColumn('nope', 'body').catch((e: unknown) => e), CoreErrorCode.UNKNOWN_TABLE)).toBe(true);
      await ctx.engine.setBlockColumn('notes', 'BODY');
      await ctx.engine.setBlockColumn('notes', 'body'); // idempotent
      expect(await ctx.engine.blockColumns('notes')).toEqual(['body']);
      const r = await ctx.engine.applyChanges(insert);
      expect([r.received, r.applied]).toEqual([4, 4]);
      expect(await pgBody(ctx)).toBe('line one\nline two\nline three');
      // cleanup drops the marks and the blocks
      await ctx.engine.cleanup('notes');
      await ctx.engine.init('notes');
      expect(await ctx.engine.blockColumns('notes')).toEqual([]);
    } finally {
      await ctx.drop();
    }
  });

  test('LWW per block in position-id order (byte-wise), an older removed block stays removed, ties to the greater value', async () => {
    await withPg(async (ctx) => {
      const e = ctx.engine;
      await e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'l1', 1, 1, 1), block('a1', '', 1, 1, 2), block('a2', 'l3', 1, 1, 3)]);
      expect(await pgBody(ctx)).toBe('l1\n\nl3');
      await e.applyChanges([block('Zz', 'l1 by A', 1, 2, 0), block('a0', null, 2, 2, 1)]);
      await e.applyChanges([block('a1V', 'l3 by B', 1, 2, 0, B), block('a2', null, 2, 2, 1, B)]);
      expect(await pgBody(ctx)).toBe('l1 by A\n\nl3 by B');
      expect((await e.applyChanges([block('a0', 'l1', 1, 1, 1, B)])).applied).toBe(0);
      await e.applyChanges([block('a1V', 'l3 by Bz', 1, 3, 0, A)]);
      expect((await e.applyChanges([block('a1V', 'l3 by Ba', 1, 3, 0, A)])).applied).toBe(0);
      expect(await pgBody(ctx)).toBe('l1 by A\n\nl3 by Bz');
    });
  });

  test('the feed sends block cells (removed ones NULL), never the whole column, not back to their site, in keyset pages', async () => {
    await withPg(async (ctx) => {
      const e = ctx.engine;
      await e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'x', 1, 1, 1), block('a1', 'y', 1, 1, 2), block('a2', 'z', 1, 1, 3)]);
      await e.applyChanges([block('a1', null, 2, 2, 0, B)]);
      const all = await collect(e.changes());
      expect(all.map((c) => [c.col.replace(US, '|'), c.val, c.colVersion])).toEqual([
        ['title', 't', 1],
        ['body|a0', 'x', 1],
        ['body|a2', 'z', 1],
        ['body|a1', null, 2],
      ]);
      for (const pageSize of [1, 2, 3]) expect(await collect(e.changes({ pageSize }))).toEqual(all);
      expect((await collect(e.changes({ excludeSiteId: B }))).map((c) => c.col.replace(US, '|'))).toEqual(['title', 'body|a0', 'body|a2']);
      const cut = all[1] as Change;
      expect((await collect(e.changes({ after: { dbVersion: cut.dbVersion, seq: cut.seq } }))).map((c) => c.col.replace(US, '|'))).toEqual(['body|a2', 'body|a1']);
      // A deleted row's blocks stay behind its tombstone.
      await ctx.sql("DELETE FROM notes WHERE id = 'n1'");
      expect((await collect(e.changes())).map((c) => c.col)).toEqual(['__[RIP]__']);
    });
  });

  test('two SQLite devices edit different lines offline: both lines survive on both and in the PostgreSQL table', async () => {
    await withPg(async (ctx) => {
      const [d1, d2] = [lite(), lite()] as [SyncEngine, SyncEngine];
      d1.driver.exec("INSERT INTO notes (id, title, body) VALUES ('n1', 'note', 'one\ntwo\nthree\nfour')");
      await syncAll(ctx, [d1, d2]);
      expect(await pgBody(ctx)).toBe('one\ntwo\nthree\nfour');
      // Offline: d1 edits line 1 and appends a line, d2 edits line 3.
      d1.driver.exec("UPDATE notes SET body = 'ONE\ntwo\nthree\nfour\nfive' WHERE id = 'n1'");
      d2.driver.exec("UPDATE notes SET body = 'one\ntwo\nTHREE\nfour' WHERE id = 'n1'");
      await syncAll(ctx, [d1, d2]);
      expect(await pgBody(ctx)).toBe('ONE\ntwo\nTHREE\nfour\nfive');
      await expectConverged(ctx, [d1, d2]);
      // Lines inserted in different gaps, a line deleted.
      d1.driver.exec("UPDATE notes SET body = 'ONE\nafter one\ntwo\nTHREE\nfour\nfive' WHERE id = 'n1'");
      d2.driver.exec("UPDATE notes SET body = 'ONE\nTHREE\nafter three\nfour\nfive' WHERE id = 'n1'");
      await syncAll(ctx, [d1, d2]);
      expect(await pgBody(ctx)).toBe('ONE\nafter one\nTHREE\nafter three\nfour\nfive');
      await expectConverged(ctx, [d1, d2]);
      // Device to device directly, then through the central again: still one state.
      d1.driver.exec("UPDATE notes SET body = 'ONE\nafter one\nTHREE\nafter three\nfour' WHERE id = 'n1'");
      syncOneWay(d1, d2);
      await syncAll(ctx, [d1, d2]);
      expect(await pgBody(ctx)).toBe('ONE\nafter one\nTHREE\nafter three\nfour');
      await expectConverged(ctx, [d1, d2]);
    });
  });

  test('a psql UPDATE of the text arrives at a device as the right line blocks — the same the SQLite engine makes of it', async () => {
    await withPg(async (ctx) => {
      const d = lite();
      const sqliteCentral = lite();
      d.driver.exec("INSERT INTO notes (id, body) VALUES ('n1', 'alpha\nbeta\ngamma')");
      await syncAll(ctx, [d]);
      syncOneWay(d, sqliteCentral);
      const before = await collect(ctx.engine.changes());
      // By another program: a line inserted before line 1, lines 2 and 3 replaced by one (after the
      // last kept line: the next free id, never a removed block's).
      const text = 'zero\nalpha\nBETA';
      await ctx.sql("UPDATE notes SET body = $1 WHERE id = 'n1'", [text]);
      const v0 = sqliteCentral.dbVersion();
      sqliteCentral.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run(text);
      const last = before.at(-1) as Change;
      const after = await collect(ctx.engine.changes({ after: { dbVersion: last.dbVersion, seq: last.seq } }));
      expect(blockCells(after).sort()).toEqual(['Zz=zero@1', 'a1=NULL@2', 'a2=NULL@2', 'a3=BETA@1']);
      expect(after.some((c) => c.col === 'body')).toBe(false);
      expect(await pgBody(ctx)).toBe(text);
      // The SQLite engine folds the same write into the same block cells.
      expect(blockCells([...sqliteCentral.changes({ after: { dbVersion: v0, seq: Number.MAX_SAFE_INTEGER } })]).sort()).toEqual(blockCells(after).sort());
      await pgToLite(ctx.engine, d);
      expect(liteBody(d)).toBe(text);
      await expectConverged(ctx, [d]);
      // A psql write, then an upload of block cells before any download: the psql write is kept.
      await ctx.sql("UPDATE notes SET body = 'zero\nalpha\nBETA\npsql line' WHERE id = 'n1'");
      d.driver.exec("UPDATE notes SET body = 'ZERO\nalpha\nBETA' WHERE id = 'n1'");
      await liteToPg(d, ctx.engine);
      expect(await pgBody(ctx)).toBe('ZERO\nalpha\nBETA\npsql line');
      await syncAll(ctx, [d]);
      expect(liteBody(d)).toBe('ZERO\nalpha\nBETA\npsql line');
      await expectConverged(ctx, [d]);
    });
  });

  test('texts already in the table become blocks when the column is marked; an INSERT by another program too', async () => {
    const ctx = await openPgContext(pool, DDL, ['notes']);
    try {
      await ctx.sql("INSERT INTO notes (id, body) VALUES ('n1', 'a\nb'), ('n2', '')");
      await ctx.engine.setBlockColumn('notes', 'body');
      await ctx.sql("INSERT INTO notes (id, body) VALUES ('n3', 'c')");
      const feed = await collect(ctx.engine.changes());
      expect(blockCells(feed).sort()).toEqual(['a0=a@1', 'a0=c@1', 'a1=b@1']);
      const d = lite();
      await pgToLite(ctx.engine, d);
      expect([liteBody(d, 'n1'), liteBody(d, 'n2'), liteBody(d, 'n3')]).toEqual(['a\nb', '', 'c']);
    } finally {
      await ctx.drop();
    }
  });

  test('a deleted and re-inserted row: the new life restarts its blocks, the old life loses', async () => {
    await withPg(async (ctx) => {
      const d = lite();
      d.driver.exec("INSERT INTO notes (id, body) VALUES ('n1', 'old1\nold2')");
      await syncAll(ctx, [d]);
      d.driver.exec("DELETE FROM notes WHERE id = 'n1'");
      d.driver.exec("INSERT INTO notes (id, body) VALUES ('n1', 'new')");
      await syncAll(ctx, [d]);
      expect(await pgBody(ctx)).toBe('new');
      // A late block of the first life changes nothing.
      expect((await ctx.engine.applyChanges([block('a1', 'late', 5, 1, 0, B, 1)])).applied).toBe(0);
      expect(await pgBody(ctx)).toBe('new');
      await expectConverged(ctx, [d]);
    });
  });

  test('under rejectRows a refused text write (a CHECK) rejects that row alone, nothing of it applied', async () => {
    await withPg(async (ctx) => {
      const e = ctx.engine;
      await e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'short', 1, 1, 1)]);
      const r = await e.applyChanges([block('a1', 'x'.repeat(40), 1, 2, 0, B), { ...block('a0', 'other row', 1, 2, 1, B), pk: encodePk(['n2']) }, { ...cell('title', 'n2', 1, 2, 2, B), pk: encodePk(['n2']) }], { rejectRows: true });
      expect(r.rejected.map((x) => [x.pkValues, x.code])).toEqual([[['n1'], 'constraint_violation']]);
      expect(await pgBody(ctx)).toBe('short');
      expect(await pgBody(ctx, 'n2')).toBe('other row');
      expect(blockCells(await collect(e.changes())).sort()).toEqual(['a0=other row@1', 'a0=short@1']);
    }, "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '' CHECK (length(body) < 30), n INTEGER NOT NULL DEFAULT 0)");
  });
});

describe('block columns on PostgreSQL: convergence property', () => {
  test('random line edits on 3 SQLite devices and psql writes, synced in random orders: every replica, the blocks and the PostgreSQL text agree', async () => {
    const words = ['a', 'b', 'c', 'd', 'e', 'f'];
    type Op = { who: number; kind: 'edit' | 'insert' | 'delete'; at: number; word: number };
    const op = fc.record({ who: fc.integer({ min: 0, max: 3 }), kind: fc.constantFrom<'edit' | 'insert' | 'delete'>('edit', 'insert', 'delete'), at: fc.nat(20), word: fc.nat(words.length - 1) });
    const step = fc.record({ ops: fc.array(op, { minLength: 1, maxLength: 4 }), order: fc.array(fc.nat(2), { minLength: 1, maxLength: 4 }) });
    const apply = (text: string, o: Op): string => {
      const lines = text.split('\n');
      const i = o.at % (lines.length + (o.kind === 'insert' ? 1 : 0));
      const w = `${words[o.word] as string}${o.who}`;
      if (o.kind === 'insert') lines.splice(i, 0, w);
      else if (o.kind === 'delete' && lines.length > 1) lines.splice(i, 1);
      else lines[i] = w;
      return lines.join('\n');
    };
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 4 }), async (steps) => {
        await withPg(async (ctx) => {
          const ds = [lite(), lite(), lite()] as const;
          ds[0].driver.exec("INSERT INTO notes (id, body) VALUES ('n1', 'one\ntwo\nthree')");
          await syncAll(ctx, ds);
          for (const { ops, order } of steps) {
            for (const o of ops) {
              if (o.who === 3) await ctx.sql("UPDATE notes SET body = $1 WHERE id = 'n1'", [apply(String(await pgBody(ctx)), o)]);
              else {
                const d = ds[o.who] as SyncEngine;
                d.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run(apply(String(liteBody(d)), o));
              }
            }
            // Partial, reordered delivery before the full sync.
            for (const i of order) await liteToPg(ds[i] as SyncEngine, ctx.engine);
            for (const i of [...order].reverse()) await pgToLite(ctx.engine, ds[i] as SyncEngine);
          }
          await syncAll(ctx, ds);
          await expectConverged(ctx, ds);
        });
      }),
      { numRuns: 12, seed: 1414 },
    );
  }, 120_000);
});
