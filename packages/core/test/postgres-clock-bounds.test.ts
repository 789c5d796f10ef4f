/**
 * Bounded clocks on the PostgreSQL engine (docs/PROTOCOL.md "Limits"): a poisoned upload is
 * refused by the decoder, and a merge that would take a damaged clock out of the safe-integer
 * range is refused with nothing written.
 */
import type pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodePayload, CoreErrorCode, isCoreError } from '@offsync/core';
import { openPgContext, openTestPool, openReplica, TODOS_DDL } from '@offsync/core/testing';

let pool: pg.Pool;
let closePool: (() => Promise<void>) | undefined;
beforeAll(async () => {
  const t = await openTestPool();
  pool = t.pool;
  closePool = () => t.close();
});
afterAll(async () => closePool?.());

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return isCoreError(e) ? e.code : `not a CoreError: ${String(e)}`;
  }
  return undefined;
}

test('PostgreSQL: poisoned clocks and a damaged local clock are refused, nothing written', async () => {
  const ctx = await openPgContext(pool, TODOS_DDL.replace('INTEGER', 'int8'), ['todos']);
  try {
    const device = openReplica();
    device.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'one')");
    const poisoned = encodePayload([...device.changes({})].map((c) => ({ ...c, dbVersion: Number.MAX_SAFE_INTEGER })), { schemaHash: 0n })!;
    expect(await codeOf(ctx.engine.applyPayload(poisoned))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
    expect(await ctx.sql('SELECT count(*)::int FROM todos')).toEqual([[0]]);

    await pool.query(`UPDATE "${ctx.engine.meta}".clock SET v = $1::int8 WHERE id = 1`, [(2n ** 53n).toString()]);
    const honest = device.encodeChanges([...device.changes({})])!;
    expect(await codeOf(ctx.engine.applyPayload(honest, { strictSchemaHash: false }))).toBe(CoreErrorCode.CLOCK_OUT_OF_RANGE);
    expect(await ctx.sql('SELECT count(*)::int FROM todos')).toEqual([[0]]);
    await pool.query(`UPDATE "${ctx.engine.meta}".clock SET v = 5 WHERE id = 1`);
    expect((await ctx.engine.applyPayload(honest, { strictSchemaHash: false })).applied).toBeGreaterThan(0);
    expect(await ctx.sql('SELECT count(*)::int FROM todos')).toEqual([[1]]);
  } finally {
    await ctx.drop();
  }
});
