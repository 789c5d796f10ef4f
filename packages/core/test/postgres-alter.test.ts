/**
 * The PostgreSQL alter flow on an engine opened on ONE client (`createPgSyncEngine({ client })`,
 * operations serialised): beginAlter pins that client's transaction, the statements run through
 * the engine join it, commitAlter commits (or rolls everything back). The pool case is in the
 * conformance suite (engine-conformance.test.ts). TEST_DATABASE_URL, else PGlite.
 */
import type pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { CoreErrorCode, isCoreError } from '@offsync/core';
import { createPgSyncEngine } from '@offsync/core/postgres';
import { collect, openTestPool } from '@offsync/core/testing';

let pool: pg.Pool | undefined;
let close: (() => Promise<void>) | undefined;
beforeAll(async () => {
  const t = await openTestPool();
  pool = t.pool;
  close = () => t.close();
});
afterAll(async () => close?.());

test('single-client engine: an alter adds a column (back-filled, tracked after); a refused one rolls back and the client serves on', { timeout: 120_000 }, async () => {
  const client = await (pool as pg.Pool).connect();
  const tag = Math.random().toString(16).slice(2, 10);
  const nsp = `t_alter_${tag}`;
  const meta = `offsync_alter_${tag}`;
  try {
    await client.query(`CREATE SCHEMA ${nsp}; CREATE TABLE ${nsp}.notes (id text PRIMARY KEY, body text NOT NULL DEFAULT '')`);
    await client.query(`INSERT INTO ${nsp}.notes (id, body) VALUES ('n1', 'one')`);
    const e = await createPgSyncEngine({ client, schema: meta, tablesSchema: nsp });
    await e.init('notes');
    const v0 = await e.dbVersion();
    const hash0 = await e.schemaHash();

    await e.beginAlter('notes');
    await e.withConnection((c) => c.q(`ALTER TABLE ${nsp}.notes ADD COLUMN stars int4 NOT NULL DEFAULT 2`));
    await e.commitAlter('notes');
    const added = (await collect(e.changes({ after: { dbVersion: v0, seq: Number.MAX_SAFE_INTEGER } }))).map((c) => [c.col, c.val, c.dbVersion]);
    expect(added).toEqual([['stars', 2n, v0 + 1]]);
    await client.query(`UPDATE ${nsp}.notes SET stars = 5 WHERE id = 'n1'`);
    const tracked = (await collect(e.changes({ after: { dbVersion: v0 + 1, seq: Number.MAX_SAFE_INTEGER } }))).map((c) => [c.col, c.val, c.colVersion]);
    expect(tracked).toEqual([['stars', 5n, 2]]);
    expect(await e.knownSchemaHashes()).toEqual(expect.arrayContaining([hash0, await e.schemaHash()]));

    // A primary-key change: refused, the ALTER undone with everything else of the alter.
    const before = await e.schemaHash();
    await e.beginAlter('notes');
    await e.withConnection((c) => c.q(`ALTER TABLE ${nsp}.notes DROP CONSTRAINT notes_pkey, ADD PRIMARY KEY (id, body)`));
    await e.withConnection((c) => c.q(`INSERT INTO ${nsp}.notes (id, body) VALUES ('n2', 'untracked')`));
    const err = await e.commitAlter('notes').then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isCoreError(err, CoreErrorCode.SCHEMA_INVALID)).toBe(true);
    expect((await client.query(`SELECT id FROM ${nsp}.notes ORDER BY id`)).rows).toEqual([{ id: 'n1' }]);
    const pk = await client.query(`SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = '${nsp}.notes'::regclass AND i.indisprimary`);
    expect(pk.rows).toEqual([{ attname: 'id' }]);
    expect(await e.schemaHash()).toBe(before);
    // Tracking is back on the same client.
    await client.query(`INSERT INTO ${nsp}.notes (id) VALUES ('n3')`);
    expect((await collect(e.changes({ after: { dbVersion: v0 + 2, seq: Number.MAX_SAFE_INTEGER } }))).map((c) => c.col).sort()).toEqual(['body', 'stars']);
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${nsp} CASCADE; DROP SCHEMA IF EXISTS ${meta} CASCADE`);
    client.release();
  }
});
