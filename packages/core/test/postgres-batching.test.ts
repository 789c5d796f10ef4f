/**
 * The set-based PostgreSQL merge (adapters/postgres/merge.ts, chunks of CHUNK rows) on batches
 * larger than a chunk: a mixed batch (inserts, updates that win, tie and lose, deletes, deletes
 * and re-inserts, resurrections, repeated non-consecutive changes of the same rows, two sites)
 * against existing central state ends exactly as the SQLite engine ends on the same input; and
 * under PostgreSQL RLS, a batch whose chunks hold refused rows commits the others and rejects
 * and compensates exactly the refused ones — the same outcome as merging each row on its own.
 * On TEST_DATABASE_URL when set, else an embedded PGlite.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RIP_SENTINEL } from '@offsync/core';
import type { Change, SqlValue } from '@offsync/core';
import { CONFORMANCE_DDL, REMOTE_SITE, clockLines, openPgContext, openTestPool, postgresEngineFactory, remoteChange, sqliteEngineFactory, todoRows } from '@offsync/core/testing';
import type { ConformanceEngine, PgCtx } from '@offsync/core/testing';
import { prng as rng } from '@offsync/core/testing';

let pool: pg.Pool | undefined;
let closePool: (() => Promise<void>) | undefined;
beforeAll(async () => {
  const t = await openTestPool();
  pool = t.pool;
  closePool = () => t.close();
}, 120_000);
afterAll(async () => closePool?.());

/** A second remote site. */
const REMOTE_SITE_2 = new Uint8Array([0x01, 0x90, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x44]);

/**
 * Interleaves per-row change lists (each row's own order kept) at random, then numbers them in
 * groups of a few changes per (site, db_version), alternating two remote sites.
 */
function interleave(perRow: Change[][], seed: number): Change[] {
  const next = rng(seed);
  const queues = perRow.map((l) => [...l]);
  const out: Change[] = [];
  while (queues.some((q) => q.length > 0)) {
    const live = queues.filter((q) => q.length > 0);
    out.push((live[Math.floor(next() * live.length)] as Change[]).shift() as Change);
  }
  return out.map((ch, i) => ({ ...ch, dbVersion: 100 + Math.floor(i / 7), seq: i % 7, siteId: Math.floor(i / 7) % 2 === 0 ? REMOTE_SITE : REMOTE_SITE_2 }));
}

const cell = (id: string, col: string, val: SqlValue, cv: number, cl: number): Change => remoteChange('todos', id, col, val, cv, cl, 1);
const sentinel = (id: string, cl: number): Change => remoteChange('todos', id, RIP_SENTINEL, null, cl, cl, 1);

/** 2,600 rows (over five chunks), 4,000 changes: every kind of decision. */
function mixedBatch(): Change[] {
  const rows: Change[][] = [];
  for (let i = 0; i < 700; i++) {
    const id = `n${i}`;
    const insert = [cell(id, 'title', `new ${i}`, 1, 1), cell(id, 'done', 0n, 1, 1)];
    // Some new rows are edited again later in the batch (not next to their insert once interleaved).
    rows.push(i < 150 ? [...insert, cell(id, 'title', `new ${i} edited`, 2, 1), cell(id, 'note', 'n', 1, 1)] : insert);
  }
  for (let i = 0; i < 300; i++) rows.push([cell(`e${i}`, 'title', `won ${i}`, 2, 1)]); // wins (cv 2 > 1)
  for (let i = 300; i < 400; i++) rows.push([cell(`e${i}`, 'title', i % 2 === 0 ? 'zzz tie' : 'aaa tie', 1, 1)]); // ties: the value order decides
  for (let i = 400; i < 500; i++) rows.push([sentinel(`e${i}`, 2)]); // deletes
  for (let i = 500; i < 600; i++) rows.push([sentinel(`e${i}`, 2), cell(`e${i}`, 'title', `again ${i}`, 1, 3), cell(`e${i}`, 'done', 1n, 1, 3)]); // delete, re-insert
  for (let i = 600; i < 700; i++) rows.push([cell(`e${i}`, 'done', 1n, 0, 1)]); // older: lose
  for (let i = 700; i < 800; i++) rows.push([cell(`e${i}`, 'done', 1n, 2, 1), cell(`e${i}`, 'done', 0n, 2, 1), cell(`e${i}`, 'note', null, 3, 1)]); // same cell twice, tie with itself
  for (let i = 800; i < 900; i++) rows.push([cell(`e${i}`, 'title', `back ${i}`, 1, 3)]); // resurrect rows deleted centrally
  for (let i = 900; i < 1000; i++) rows.push([sentinel(`e${i}`, 4)]); // delete of a deleted row, newer life
  for (let i = 0; i < 900; i++) rows.push([cell(`m${i}`, 'note', `only note ${i}`, 1, 1)]); // partial inserts: defaults for the rest
  return interleave(rows, 20261201);
}

/** The central state both engines start from: 1,000 rows written locally, 200 of them deleted. */
async function seed(e: ConformanceEngine): Promise<void> {
  const values = Array.from({ length: 1000 }, (_, i) => `('e${i}', 'old ${i}', 0)`).join(', ');
  await e.sql(`INSERT INTO todos (id, title, done) VALUES ${values}`);
  await e.sql("DELETE FROM todos WHERE id LIKE 'e8%' AND length(id) = 4");
  await e.sql("DELETE FROM todos WHERE id LIKE 'e9%' AND length(id) = 4");
}

describe('PostgreSQL merge, set-based', () => {
  for (const mode of [{ label: 'device merge', opts: {} }, { label: 'authoritative merge (rejectRows)', opts: { rejectRows: true } }]) {
    test(`a mixed batch over several chunks ends as on the SQLite engine (${mode.label})`, async () => {
      const lite = await sqliteEngineFactory()(CONFORMANCE_DDL, ['todos']);
      const pgE = await postgresEngineFactory(pool as pg.Pool)(CONFORMANCE_DDL, ['todos']);
      try {
        await seed(lite);
        await seed(pgE);
        expect(await clockLines(pgE)).toEqual(await clockLines(lite));
        const batch = mixedBatch();
        expect(batch.length).toBe(4000);
        const a = await lite.applyChanges(batch, mode.opts);
        const b = await pgE.applyChanges(batch, mode.opts);
        expect(b.rejected).toEqual([]);
        expect(b.received).toBe(batch.length);
        expect(b.applied).toBe(a.applied);
        expect(b.last).toEqual(a.last);
        expect(await todoRows(pgE)).toEqual(await todoRows(lite));
        expect(await clockLines(pgE)).toEqual(await clockLines(lite));
        // Merged again: nothing changes (idempotence), on both.
        const again = await pgE.applyChanges(batch, mode.opts);
        expect(again.applied).toBe(0);
        expect(await todoRows(pgE)).toEqual(await todoRows(lite));
      } finally {
        await lite.close();
        await pgE.close();
      }
    }, 300_000);
  }
});

describe('PostgreSQL merge, set-based, under row-level security', () => {
  const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";
  // Roles are global to a server: a name of this run's own.
  const ROLE = `batch_user_${randomBytes(4).toString('hex')}`;

  async function open(): Promise<PgCtx> {
    const ctx = await openPgContext(pool as pg.Pool, DDL, ['todos']);
    await ctx.sql(`GRANT USAGE ON SCHEMA ${ctx.nsp} TO ${ROLE}`);
    await ctx.sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON todos TO ${ROLE}`);
    await ctx.sql('ALTER TABLE todos ENABLE ROW LEVEL SECURITY');
    await ctx.sql(`CREATE POLICY own_rows ON todos USING (user_id = current_setting('request.jwt.claim.sub', true)) WITH CHECK (user_id = current_setting('request.jwt.claim.sub', true))`);
    const values = Array.from({ length: 600 }, (_, i) => `('r${i}', '${i % 2 === 0 ? 'u1' : 'u2'}', 'old ${i}')`).join(', ');
    await ctx.sql(`INSERT INTO todos (id, user_id, title) VALUES ${values}`);
    return ctx;
  }

  /** u1's upload (800 rows): edits (of one column), inserts and deletes of its own rows and of u2's, spread over both chunks. */
  function upload(): Change[] {
    const rows: Change[][] = [];
    for (let i = 0; i < 400; i++) rows.push([cell(`r${i}`, 'title', `edit ${i}`, 2, 1)]); // u2's odd rows: refused
    for (let i = 0; i < 200; i++) rows.push([cell(`x${i}`, 'user_id', i % 5 === 0 ? 'u2' : 'u1', 1, 1), cell(`x${i}`, 'title', `mine ${i}`, 1, 1)]); // every 5th: an insert for u2, refused
    // Deleted and re-inserted for u1: u2's are hidden from u1, refused (an UPDATE: the row lives on).
    for (let i = 400; i < 440; i++) rows.push([sentinel(`r${i}`, 2), cell(`r${i}`, 'title', `reborn ${i}`, 1, 3), cell(`r${i}`, 'user_id', 'u1', 1, 3)]);
    for (let i = 440; i < 600; i++) rows.push([sentinel(`r${i}`, 2)]); // deletes: u2's are hidden from u1, refused
    return interleave(rows, 7);
  }

  const security = { role: ROLE, claims: JSON.stringify({ sub: 'u1', role: ROLE }), sub: 'u1' };
  const rowsOf = async (ctx: PgCtx): Promise<string[]> => (await ctx.sql('SELECT id, user_id, title FROM todos ORDER BY id')).map((r) => r.join('|'));
  const clocksOf = async (ctx: PgCtx): Promise<string[]> => {
    const m = `"${ctx.engine.meta}"."todos__crdt"`;
    return (await ctx.sql(`SELECT encode(pk, 'hex') || '/' || col || '=' || col_version FROM ${m} ORDER BY 1`)).map((r) => String(r[0]));
  };

  test('refused rows of every chunk are rolled back and compensated alone; the rest commits — as when each row is merged on its own', async () => {
    await (pool as pg.Pool).query(`CREATE ROLE ${ROLE} NOLOGIN`);
    const whole = await open();
    const single = await open();
    try {
      const batch = upload();
      const r = await whole.engine.applyChanges(batch, { rejectRows: true, rowSecurity: security });
      // The reference: the same changes merged one row per batch, on an identical database.
      const byRow = new Map<string, Change[]>();
      for (const ch of batch) {
        const k = Buffer.from(ch.pk).toString('hex');
        byRow.set(k, [...(byRow.get(k) ?? []), ch]);
      }
      const rejectedOne: string[] = [];
      let appliedOne = 0;
      for (const changes of byRow.values()) {
        const one = await single.engine.applyChanges(changes, { rejectRows: true, rowSecurity: security });
        appliedOne += one.applied;
        rejectedOne.push(...one.rejected.map((x) => `${String(x.pkValues[0])}:${x.operation}:${x.code}`));
      }
      const rejected = r.rejected.map((x) => `${String(x.pkValues[0])}:${x.operation}:${x.code}`);
      expect(rejected.sort()).toEqual(rejectedOne.sort());
      // What u1 could not do: edit u2's rows (200, and 20 re-inserted), insert rows for u2 (40), delete u2's rows (80).
      expect(rejected.filter((x) => x.endsWith(':UPDATE:rls_denied'))).toHaveLength(220);
      expect(rejected.filter((x) => x.endsWith(':INSERT:rls_denied'))).toHaveLength(40);
      expect(rejected.filter((x) => x.endsWith(':DELETE:rls_denied'))).toHaveLength(80);
      expect(rejected).toHaveLength(340);
      expect(r.applied).toBe(appliedOne);
      expect(await rowsOf(whole)).toEqual(await rowsOf(single));
      expect(await clocksOf(whole)).toEqual(await clocksOf(single));
      const rows = await rowsOf(whole);
      expect(rows).toContain('r0|u1|edit 0');
      expect(rows).toContain('r1|u2|old 1');
      expect(rows).toContain('x1|u1|mine 1');
      expect(rows.some((x) => x.startsWith('x0|'))).toBe(false);
      expect(rows).toContain('r401|u2|old 401');
      expect(rows).toContain('r400|u1|reborn 400');
      expect(rows.some((x) => x.startsWith('r442|'))).toBe(false);
      expect(rows).toContain('r441|u2|old 441');
      // Compensation: u2's edited cell re-stamped above the device's (2 + 1), the refused insert
      // tombstoned (2), the refused delete outranked by a live causal length (3), the refused
      // delete and re-insert by the next live one above the device's (5).
      const clocks = await clocksOf(whole);
      const pkHex = (id: string): string => Buffer.from(remoteChange('todos', id, 'title', null, 1, 1, 1).pk).toString('hex');
      const titleId = 2; // columns: user_id 1, title 2
      expect(clocks).toContain(`${pkHex('r1')}/${titleId}=3`);
      expect(clocks).toContain(`${pkHex('x0')}/0=2`);
      expect(clocks).toContain(`${pkHex('r441')}/0=3`);
      expect(clocks).toContain(`${pkHex('r401')}/0=5`);
    } finally {
      await whole.drop();
      await single.drop();
      await (pool as pg.Pool).query(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
    }
  }, 300_000);
});

describe('PostgreSQL merge, set-based, refusals without RLS', () => {
  test('a value PostgreSQL refuses (class 22) rejects its row alone in a chunk of 600; a blob into a TEXT column takes the row-by-row path; the outcome equals merging each row on its own', async () => {
    const whole = await openPgContext(pool as pg.Pool, CONFORMANCE_DDL, ['todos']);
    const single = await openPgContext(pool as pg.Pool, CONFORMANCE_DDL, ['todos']);
    try {
      for (const ctx of [whole, single]) await ctx.sql(`INSERT INTO todos (id, title) SELECT 'e' || i, 'old' FROM generate_series(0, 99) i`);
      const rows: Change[][] = [];
      for (let i = 0; i < 600; i++) rows.push([cell(`n${i}`, 'title', `t ${i}`, 1, 1), cell(`n${i}`, 'done', i === 7 || i === 507 ? 'abc' : 1n, 1, 1)]);
      for (let i = 0; i < 100; i++) rows.push([cell(`e${i}`, 'done', i === 42 ? 'not a number' : 1n, 2, 1)]);
      rows.push([cell('b0', 'title', new Uint8Array([0x68, 0x69]), 1, 1)]);
      const batch = interleave(rows, 99);
      const r = await whole.engine.applyChanges(batch, { rejectRows: true });
      const refused = r.rejected.map((x) => `${String(x.pkValues[0])}:${x.operation}:${x.code}`).sort();
      expect(refused).toEqual(['e42:UPDATE:constraint_violation', 'n507:INSERT:constraint_violation', 'n7:INSERT:constraint_violation']);
      let applied = 0;
      const refusedOne: string[] = [];
      for (const row of rows) {
        const one = await single.engine.applyChanges(row, { rejectRows: true });
        applied += one.applied;
        refusedOne.push(...one.rejected.map((x) => `${String(x.pkValues[0])}:${x.operation}:${x.code}`));
      }
      expect(refusedOne.sort()).toEqual(refused);
      expect(r.applied).toBe(applied);
      const rowsOf = async (ctx: PgCtx): Promise<string[]> => (await ctx.sql('SELECT id, title, done::text FROM todos ORDER BY id')).map((x) => x.join('|'));
      expect(await rowsOf(whole)).toEqual(await rowsOf(single));
      expect((await rowsOf(whole)).filter((x) => x.startsWith('n7|') || x.startsWith('n507|'))).toEqual([]);
      expect(await rowsOf(whole)).toContain('e42|old|0');
      expect(await rowsOf(whole)).toContain('e41|old|1');
      expect(await rowsOf(whole)).toContain('b0|hi|0'); // the blob's bytes as text, as a one-row merge stores them
      const clocks = async (ctx: PgCtx): Promise<string[]> =>
        (await ctx.sql(`SELECT encode(pk, 'hex') || '/' || col || '=' || col_version FROM "${ctx.engine.meta}"."todos__crdt" ORDER BY 1`)).map((x) => String(x[0]));
      expect(await clocks(whole)).toEqual(await clocks(single));
    } finally {
      await whole.drop();
      await single.drop();
    }
  }, 300_000);
});
