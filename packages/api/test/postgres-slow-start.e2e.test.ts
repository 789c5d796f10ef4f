/**
 * Slow-start pages from a POSTGRES central database (the asynchronous feed, pg-central.ts; docs/PROTOCOL.md
 * "Packages"): rows written with psql reach a fresh G3 device through pages that start small and
 * grow ×4 up to `pageBytes`, every change exactly once, in (db_version, seq) order. On
 * `TEST_DATABASE_URL` (CI: the real server) or an embedded PGlite.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodePayload } from '@offsync/core';
import { startApp } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { call, newDevice, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import { PG_TODOS_DDL } from './sync-fixtures/pg-app-server.ts';
import { openTestPostgres } from './sync-fixtures/postgres.ts';
import type { TestPostgres } from './sync-fixtures/postgres.ts';

const N = 600;
let pg: TestPostgres;
let t: RunningApp & { ws: string };
let databaseId: string;
let apiKey: string;

beforeAll(async () => {
  pg = await openTestPostgres();
  await pg.sql(PG_TODOS_DDL);
  t = await startApp({ postgresPoolSize: pg.poolSize, postgresListen: pg.notifies, rateLimitPerSecond: 0, pageBytes: 24_000, inlineDownloadBytes: 1000, slowStartBytes: 1500, slowStartGrowth: 4 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "pg", kind: POSTGRES) { id } }');
  const c = pg.connection;
  const d = await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id } }', {
    p: p.createProject.id,
    c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) },
  });
  databaseId = d.createDatabase.id;
  await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["todos"]) { added } }', { d: databaseId });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret } }', { d: databaseId });
  apiKey = k.createApiKey.secret;
  await pg.sql(`INSERT INTO todos (id, title, done) SELECT 'row' || lpad(i::text, 6, '0'), 'a fairly long title to make pages fill up quickly ' || i, i % 2 FROM generate_series(1, ${N}) AS i`);
});

afterAll(async () => {
  await t?.dispose();
  await pg?.close();
});

test('a fresh G3 device drains growing pages (maxChunks 1) to exactly the PostgreSQL rows', async () => {
  const d = newDevice();
  const headers = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
  const url = `${t.origin}/v2/cloudsync/databases/${databaseId}/${siteHex(d)}/check`;
  const pages: Array<Array<{ v: number; seq: number }>> = [];
  let cursor = 0;
  for (let i = 0; i < 200; i++) {
    const r = await call('POST', url, { key: apiKey, json: { dbVersion: 0, seq: 0, cursor, maxChunks: 1 }, headers });
    expect(r.status).toBe(200);
    if (r.text === '') break;
    const data = (r.json() as { data: { chunks?: Array<{ payload?: string }>; payload?: string; final: boolean; nextCursor?: number } }).data;
    const chunk = data.chunks?.[0] ?? data;
    const bytes = new Uint8Array(Buffer.from(chunk.payload ?? '', 'base64'));
    pages.push(decodePayload(bytes).changes.map((c) => ({ v: c.dbVersion, seq: c.seq })));
    d.applyPayload(bytes);
    if (data.final) break;
    cursor = data.nextCursor ?? 0;
  }
  const sizes = pages.map((p) => p.length);
  expect(sizes.length).toBeGreaterThanOrEqual(4);
  expect(sizes[1] ?? 0).toBeGreaterThan(3 * (sizes[0] ?? 0));
  expect(sizes[2] ?? 0).toBeGreaterThan(3 * (sizes[1] ?? 0));
  for (let i = 1; i < pages.length; i++) {
    const last = pages[i - 1]?.at(-1);
    const first = pages[i]?.[0];
    expect(last !== undefined && first !== undefined && (first.v > last.v || (first.v === last.v && first.seq > last.seq))).toBe(true);
  }
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(N * 2);
  const pgRows = (await pg.sql('SELECT id, title, done FROM todos ORDER BY id')).map((r) => ({ id: r[0], title: r[1], done: Number(r[2]) }));
  const rows = (d.driver.prepare(ROWS_SQL).all() as Array<Record<string, unknown>>).map((r) => ({ id: r['id'], title: r['title'], done: Number(r['done']) }));
  expect(rows).toEqual(pgRows);
});
