/**
 * G3 chunked batches over HTTP (docs/PROTOCOL.md "Chunked batches"), through the real app under
 * RLS ENFORCE with a token user: a row whose columns are split across two chunks of one batch
 * lands whole (applied alone, its first chunk is refused by the INSERT policy); non-final chunks
 * are acknowledged with the unchanged SyncStatus; a batch re-sent under a new batchId after a
 * failure lands exactly once; refusals of the assembly are HTTP errors with stable codes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Change } from '@offsync/core';
import { centralRows, createAccessToken, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { Reply, RunningApp } from './data-plane-fixtures.ts';

// `title` before `user_id`: a row's first change is its title, so a cut after it leaves the owner in the next chunk.
const DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', user_id TEXT NOT NULL DEFAULT '')";

let t: RunningApp;
let databaseId: string;
let alice: string;

beforeAll(async () => {
  t = await startApp({ chunkBatches: { maxSiteBytes: 64 * 1024 } });
  ({ databaseId } = await setupDatabase(t, DDL));
  const d = databaseId;
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d });
  const policies = { SELECT: 'user_id = auth_userid()', INSERT: 'NEW.user_id = auth_userid()', UPDATE: 'OLD.user_id = auth_userid() AND NEW.user_id = auth_userid()', DELETE: 'OLD.user_id = auth_userid()' };
  for (const [op, e] of Object.entries(policies)) {
    await t.gql('mutation($d: ID!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: "todos", operation: $op, expression: $e) { table } }', { d, op, e });
  }
  alice = await createAccessToken(t, d, 'alice');
});
afterAll(async () => t.dispose());

const b64 = (p: Uint8Array): string => Buffer.from(p).toString('base64');

/** A device of alice's with local rows, its changes and the G3 window covering them. */
function aliceDevice(rows: Array<[string, string]>): { dev: TestDevice; changes: Change[]; window: { dbVersionMin: number; dbVersionMax: number } } {
  const dev = new TestDevice(t, databaseId, alice, DDL);
  for (const [id, title] of rows) dev.exec('INSERT INTO todos (id, title, user_id) VALUES (?, ?, ?)', id, title, 'alice');
  const changes = [...dev.engine.changes({ localOnly: true })];
  return { dev, changes, window: { dbVersionMin: 1, dbVersionMax: dev.engine.dbVersion() } };
}

function encode(dev: TestDevice, changes: Change[]): Uint8Array {
  const p = dev.engine.encodeChanges(changes);
  if (p === null) throw new Error('empty chunk');
  return p;
}

function sendChunk(dev: TestDevice, batchId: string, chunkIndex: number, isFinal: boolean, payload: Uint8Array, window: object): Promise<Reply> {
  return http('POST', dev.url('apply'), dev.credential, { blob: b64(payload), ...window, batchId, chunkIndex, isFinal });
}

/** The same chunk through an upload URL (`GET upload` → `PUT` → `apply {url}`), as 1.1.x does for chunks > 128 KiB. */
async function sendChunkByUrl(dev: TestDevice, batchId: string, chunkIndex: number, isFinal: boolean, payload: Uint8Array, window: object): Promise<Reply> {
  const slot = await http('GET', dev.url('upload'), dev.credential);
  const url = slot.body['url'] as string;
  const put = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(payload) });
  expect(put.status).toBe(200);
  return http('POST', dev.url('apply'), dev.credential, { url, ...window, batchId, chunkIndex, isFinal });
}

const status = async (dev: TestDevice): Promise<Record<string, unknown>> => (await http('GET', dev.url('status'), dev.credential)).body;

test('a row split across two chunks lands whole under RLS; the window is claimed only by the final chunk', async () => {
  const { dev, changes, window } = aliceDevice([['a1', 'first'], ['a2', 'second']]);
  expect(changes.map((c) => c.col)).toEqual(['title', 'user_id', 'title', 'user_id']);
  // Cut inside row a1: its title in chunk 0, its owner (and row a2) in chunk 1.
  const p0 = encode(dev, changes.slice(0, 1));
  const p1 = encode(dev, changes.slice(1));

  // Control: the same cut of another row, merged chunk by chunk without a batch, does not land
  // whole (its first chunk is an INSERT of a row owned by '', which the INSERT policy refuses).
  const ctl = aliceDevice([['c1', 'control']]);
  for (const [i, part] of [ctl.changes.slice(0, 1), ctl.changes.slice(1)].entries()) {
    await http('POST', ctl.dev.url('apply'), alice, { blob: b64(encode(ctl.dev, part)), dbVersionMin: i + 1, dbVersionMax: i + 1 });
  }
  expect(centralRows(t, databaseId)).not.toContainEqual({ id: 'c1', title: 'control', user_id: 'alice' });
  const others = centralRows(t, databaseId);

  const before = await status(dev);
  const r0 = await sendChunk(dev, 'batch-1', 0, false, p0, window);
  expect(r0.status).toBe(200);
  expect(r0.body).toEqual(before); // current SyncStatus: window not claimed
  expect(r0.body['lastOptimisticVersion']).toBe(0);
  expect(centralRows(t, databaseId)).toEqual(others); // nothing merged
  expect(await status(dev)).toEqual(before);

  const r1 = await sendChunkByUrl(dev, 'batch-1', 1, true, p1, window);
  expect(r1.status).toBe(200);
  expect(r1.body['failures']).toBeUndefined();
  expect(r1.body['lastOptimisticVersion']).toBe(window.dbVersionMax);
  expect(centralRows(t, databaseId).filter((r) => (r as { id: string }).id.startsWith('a'))).toEqual([
    { id: 'a1', title: 'first', user_id: 'alice' },
    { id: 'a2', title: 'second', user_id: 'alice' },
  ]);
  expect((await status(dev))['lastOptimisticVersion']).toBe(window.dbVersionMax);

  // A re-send of the final chunk (same batchId) is acknowledged, not merged again.
  const v = t.app.sync.databases.peek(databaseId)?.dbVersion();
  const again = await sendChunk(dev, 'batch-1', 1, true, p1, window);
  expect([again.status, again.body['lastOptimisticVersion'], again.body['failures']]).toEqual([200, window.dbVersionMax, undefined]);
  expect(t.app.sync.databases.peek(databaseId)?.dbVersion()).toBe(v);
});

test('an abandoned batch is discarded; the whole batch re-sent under a new batchId lands exactly once', async () => {
  const rows: Array<[string, string]> = Array.from({ length: 6 }, (_, i) => [`r${i}`, `row ${i}`]);
  const { dev, changes, window } = aliceDevice(rows);
  const cut = [0, 3, 7, changes.length];
  const chunks = cut.slice(0, -1).map((from, i) => encode(dev, changes.slice(from, cut[i + 1])));
  const central = (): unknown[] => centralRows(t, databaseId).filter((r) => (r as { id: string }).id.startsWith('r'));

  // First attempt: chunk 0, a duplicate of it (idempotent), then chunk 1; the connection "fails" there.
  expect((await sendChunk(dev, 'try-1', 0, false, chunks[0]!, window)).status).toBe(200);
  expect((await sendChunk(dev, 'try-1', 0, false, chunks[0]!, window)).status).toBe(200);
  expect((await sendChunk(dev, 'try-1', 1, false, chunks[1]!, window)).status).toBe(200);
  expect(await t.app.syncHttp.batches.peek(databaseId, dev.site)).toMatchObject({ batchId: 'try-1', chunks: 2 });
  expect(central()).toEqual([]);

  // The client re-sends the whole batch under a new id: the old buffer is dropped, the new one lands.
  for (const [i, p] of chunks.entries()) {
    const r = await sendChunk(dev, 'try-2', i, i === chunks.length - 1, p, window);
    expect([r.status, r.body['failures']]).toEqual([200, undefined]);
    expect(r.body['lastOptimisticVersion']).toBe(i === chunks.length - 1 ? window.dbVersionMax : 0);
  }
  expect(central()).toEqual(rows.map(([id, title]) => ({ id, title, user_id: 'alice' })));
  const v = t.app.sync.databases.peek(databaseId)?.dbVersion();

  // A late final chunk of the abandoned attempt is refused and merges nothing.
  const late = await sendChunk(dev, 'try-1', 2, true, chunks[2]!, window);
  expect([late.status, (late.body['errors'] as Array<{ code: string }>)[0]?.code]).toEqual([409, 'batch_invalid']);
  expect(t.app.sync.databases.peek(databaseId)?.dbVersion()).toBe(v);
  expect(central()).toHaveLength(rows.length);
});

test('a gap or another window refuses the batch (409); a batch over the per-site limit is refused (413); without batchId nothing changes', async () => {
  const { dev, changes, window } = aliceDevice([['g1', 'gap'], ['g2', 'gap']]);
  const p0 = encode(dev, changes.slice(0, 2));
  const p1 = encode(dev, changes.slice(2));
  await sendChunk(dev, 'gap', 0, false, p0, window);
  const gap = await sendChunk(dev, 'gap', 2, true, p1, window);
  expect([gap.status, (gap.body['errors'] as Array<{ code: string }>)[0]?.code]).toEqual([409, 'batch_invalid']);
  await sendChunk(dev, 'win', 0, false, p0, window);
  const other = await sendChunk(dev, 'win', 1, true, p1, { dbVersionMin: 1, dbVersionMax: window.dbVersionMax + 1 });
  expect(other.status).toBe(409);
  // Chunk 1 of 'win' alone cannot complete it: its chunk 0 was discarded with the refusal.
  expect((await sendChunk(dev, 'win', 1, true, p1, window)).status).toBe(409);
  expect(centralRows(t, databaseId).filter((r) => (r as { id: string }).id.startsWith('g'))).toEqual([]);

  // Per-site limit (64 KiB in this app): the batch is refused and its buffer freed.
  const big = aliceDevice(Array.from({ length: 60 }, (_, i) => [`big${i}`, randomBytes(1000).toString('hex')]));
  const half = Math.floor(big.changes.length / 2);
  const b0 = encode(big.dev, big.changes.slice(0, half));
  const b1 = encode(big.dev, big.changes.slice(half));
  expect(b0.length + b1.length).toBeGreaterThan(64 * 1024);
  await sendChunk(big.dev, 'big', 0, false, b0, big.window);
  const tooBig = await sendChunk(big.dev, 'big', 1, true, b1, big.window);
  expect([tooBig.status, (tooBig.body['errors'] as Array<{ code: string }>)[0]?.code]).toEqual([413, 'batch_too_large']);
  expect(await t.app.syncHttp.batches.peek(databaseId, big.dev.site)).toBeUndefined();

  // Without batchId a G3 apply is merged at once, as before.
  const plain = await dev.upload();
  expect([plain.status, plain.body['failures'], plain.body['lastOptimisticVersion']]).toEqual([200, undefined, window.dbVersionMax]);
  expect(centralRows(t, databaseId).filter((r) => (r as { id: string }).id.startsWith('g'))).toHaveLength(2);
});
