/**
 * End-to-end with the REAL native client 1.1.4 (protocol G3, docs/PROTOCOL.md §P7; test-only
 * devDependency): a token user under RLS ENFORCE inserts many rows in ONE transaction; with a
 * small `payload_max_chunk_size` the client cuts that transaction into several chunks of one
 * batch (same window, `batchId`, `chunkIndex`, `isFinal`; boundaries inside rows). OffSync
 * assembles them and merges the batch once: every row lands whole and exactly, and the status
 * covers the version.
 */
import { afterAll, afterEach, beforeAll, expect, test, vi } from 'vitest';
import { ChunkBatches, SyncError } from '../src/domains/sync/index.ts';
import type { Chunk, ChunkOutcome } from '../src/domains/sync/index.ts';
import { createAccessToken, http, setupDatabase, startApp } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { openNativeDevice } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';

// The figure: 100,000 rows in one transaction (about 15 s here: 79 chunks, 5.4 MB).
const ROWS = 100_000;
// `title` before `owner`: a chunk cut inside a row leaves its owner to the next chunk.
const DDL = "CREATE TABLE items(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '', n INTEGER NOT NULL DEFAULT 0)";

let t: RunningApp;
let databaseId: string;
const devices: NativeDevice[] = [];

beforeAll(async () => {
  // The per-credential request rate (20/s, burst 60 by default; docs/PROTOCOL.md "Quotas") is
  // off here: the client sends a 79-chunk batch back to back, faster than that; quotas are tested
  // in their own files.
  t = await startApp({ rateLimitPerSecond: 0 });
  ({ databaseId } = await setupDatabase(t, DDL, ['items']));
  const d = databaseId;
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d });
  const policies = { SELECT: 'owner = auth_userid()', INSERT: 'NEW.owner = auth_userid()', UPDATE: 'OLD.owner = auth_userid() AND NEW.owner = auth_userid()', DELETE: 'OLD.owner = auth_userid()' };
  for (const [op, e] of Object.entries(policies)) {
    await t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "items", operation: $op, expression: $e) { table } }', { d, op, e });
  }
});

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  for (const d of devices) await d.close();
  await t?.dispose();
});

/**
 * A fresh native device of token user `user` inserts `rows` rows (ids `<prefix>000001`…) in one
 * transaction and sends them with `payload_max_chunk_size` = `chunkSize`; then checks that they
 * arrived as one batch of several chunks and landed whole and exactly.
 */
async function sendOneTransaction(user: string, prefix: string, rows: number, chunkSize: number, failAtChunk?: number): Promise<{ chunks: number; seconds: number; errors: string[] }> {
  const token = await createAccessToken(t, databaseId, user);
  const batches = t.app.syncHttp.batches;
  const original = ChunkBatches.prototype.add.bind(batches);
  let calls = 0;
  const add = vi.spyOn(batches, 'add').mockImplementation((db, site, chunk) => {
    const out = original(db, site, chunk);
    // Simulated failure after the chunk was buffered (e.g. the reply was lost): the client must re-send the batch.
    if (calls++ === failAtChunk) throw new SyncError('internal_error', 'injected failure');
    return out;
  });
  const dev = await openNativeDevice();
  devices.push(dev);
  expect(await dev.value('SELECT cloudsync_version()')).toBe('1.1.4');
  await dev.exec(DDL);
  await dev.value("SELECT cloudsync_init('items')");
  await dev.value('SELECT cloudsync_network_init_custom(?, ?)', t.origin, databaseId);
  await dev.value('SELECT cloudsync_network_set_token(?)', token);
  await dev.value(`SELECT cloudsync_set('payload_max_chunk_size', ${chunkSize})`);
  const site = String(await dev.value('SELECT lower(hex(cloudsync_siteid()))'));

  await dev.exec(`BEGIN;
    WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows})
    INSERT INTO items (id, title, owner, n) SELECT printf('${prefix}%06d', i), 'title of row ' || i || ' ' || hex(randomblob(8)), '${user}', i FROM s;
    COMMIT;`);
  const version = Number(await dev.value('SELECT cloudsync_db_version()'));

  const started = Date.now();
  const results: string[] = [];
  const errors: string[] = [];
  for (let i = 0; i < 5 && (await dev.value('SELECT cloudsync_network_has_unsent_changes()')) !== 0n; i++) {
    await dev.value('SELECT cloudsync_network_send_changes()').then(
      (r) => results.push(String(r)),
      (e: unknown) => errors.push(String(e)),
    );
  }
  const seconds = (Date.now() - started) / 1000;
  console.info(`native 1.1.4: ${rows} rows sent in ${seconds.toFixed(1)} s (${add.mock.calls.length} apply calls)`, results.at(-1), errors.slice(0, 3));
  expect(await dev.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);

  // The client really chunked one transaction: several chunks of one batch, indexes 0..n-1, final last, one window.
  const all = add.mock.calls.map((c) => c[2] as Chunk);
  const settled = await Promise.allSettled(add.mock.results.map((r) => r.value as Promise<ChunkOutcome>));
  const outcomes = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value.kind] : []));
  add.mockRestore();
  const lastBatch = all.at(-1)?.batchId;
  const chunks = all.filter((c) => c.batchId === lastBatch);
  if (failAtChunk !== undefined) {
    // The failed attempt: chunks 0..failAtChunk under another batchId, never final, then abandoned.
    expect(errors).toHaveLength(1);
    expect(all.slice(0, failAtChunk + 1).map((c) => [c.batchId === lastBatch, c.index, c.final])).toEqual(Array.from({ length: failAtChunk + 1 }, (_, i) => [false, i, false]));
    expect(all.length).toBe(failAtChunk + 1 + chunks.length);
  } else expect(errors).toEqual([]);
  expect(chunks.length).toBeGreaterThan(2);
  expect(new Set(chunks.map((c) => c.batchId)).size).toBe(1);
  expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
  expect(chunks.map((c) => c.final)).toEqual(chunks.map((_, i) => i === chunks.length - 1));
  expect(new Set(chunks.map((c) => JSON.stringify(c.window))).size).toBe(1);
  expect(outcomes.slice(-chunks.length)).toEqual(chunks.map((_, i) => (i === chunks.length - 1 ? 'complete' : 'buffered')));

  // The central table holds exactly the device's rows, with their values.
  const central = t.app.sync.databases.peek(databaseId);
  if (central === undefined) throw new Error('central database not open');
  const mine = `id LIKE '${prefix}%'`;
  const q = (sql: string): unknown => central.driver.prepare(sql).getRaw()?.[0];
  expect(q(`SELECT count(*) FROM items WHERE ${mine}`)).toBe(BigInt(rows));
  expect(q(`SELECT count(*) FROM items WHERE ${mine} AND owner = '${user}' AND id = printf('${prefix}%06d', n) AND title LIKE 'title of row ' || n || ' %' AND n BETWEEN 1 AND ${rows}`)).toBe(BigInt(rows));
  const dump = `SELECT group_concat(id || '|' || title || '|' || owner || '|' || n, char(10)) AS v FROM (SELECT * FROM items WHERE ${mine} ORDER BY id)`;
  expect(q(dump)).toBe((await dev.all(dump))[0]?.['v']);

  // The site's status covers the transaction's version.
  const status = await http('GET', `${t.origin}/v2/cloudsync/databases/${databaseId}/${site}/status`, token);
  expect(status.status).toBe(200);
  expect(status.body['lastOptimisticVersion']).toBeGreaterThanOrEqual(version);
  expect(status.body['gaps']).toEqual([]);
  return { chunks: chunks.length, seconds, errors };
}

// `payload_max_chunk_size` counts uncompressed bytes and 1.1.4 raises it to at least 256 KiB
// (observed: 65536 gives ~68 KB compressed chunks, all inline).
test(`a ${ROWS}-row transaction of the native 1.1.4 client, sent in inline chunks by a token user under RLS, lands whole and exactly`, async () => {
  await sendOneTransaction('alice', 'a', ROWS, 65536);
}, 600_000);

test('chunks larger than 128 KiB travel through upload URLs and are assembled the same way', async () => {
  const takeUpload = vi.spyOn(t.app.syncHttp.artifacts, 'takeUpload');
  // 1 MB of uncompressed changes per chunk ≈ 260 KB on the wire: above the 128 KiB inline limit.
  const r = await sendOneTransaction('bob', 'b', 20_000, 1_000_000);
  expect(takeUpload).toHaveBeenCalledTimes(r.chunks);
  takeUpload.mockRestore();
}, 600_000);

test('after a chunk fails, the client re-sends the whole batch under a new batchId; it lands exactly once', async () => {
  const r = await sendOneTransaction('carol', 'c', 20_000, 65536, 3);
  expect(r.errors[0]).toMatch(/internal_error|Internal error/);
  expect(r.chunks).toBeGreaterThan(4);
  expect((await t.app.syncHttp.batches.stats()).openBatches).toBe(0);
}, 600_000);
