/**
 * End-to-end with the REAL native client 1.1.4 (test-only devDependency): values larger than a
 * chunk. With `payload_max_chunk_size` 262144 (the smallest the client takes) a 1 MiB TEXT and a
 * 3 MiB BLOB leave the device as fragment rows in payloads of version 3 (docs/PROTOCOL.md
 * "Fragmented values"), spread over the chunks of one batch. OffSync reassembles them and merges
 * the batch once; the values reach a second 1.1.4 device byte-identical (downloads carry them
 * whole in v2 pages, which the client takes whatever its chunk size).
 */
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import type { Chunk } from '../src/domains/sync/index.ts';
import { createAccessToken, http, setupDatabase, startApp } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { openNativeDevice } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';

const DDL = "CREATE TABLE docs(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', data BLOB, n INTEGER NOT NULL DEFAULT 0)";
const TEXT_BYTES = 1024 * 1024;
const BLOB_BYTES = 3 * 1024 * 1024;

let t: RunningApp;
let databaseId: string;
const devices: NativeDevice[] = [];

beforeAll(async () => {
  // Request rates off: the client sends its ~20 chunks back to back (quotas are tested elsewhere).
  t = await startApp({ rateLimitPerSecond: 0 });
  ({ databaseId } = await setupDatabase(t, DDL, ['docs']));
});

afterAll(async () => {
  for (const d of devices) await d.close();
  await t?.dispose();
});

async function device(user: string): Promise<NativeDevice> {
  const dev = await openNativeDevice();
  devices.push(dev);
  expect(await dev.value('SELECT cloudsync_version()')).toBe('1.1.4');
  await dev.exec(DDL);
  await dev.value("SELECT cloudsync_init('docs')");
  await dev.value('SELECT cloudsync_network_init_custom(?, ?)', t.origin, databaseId);
  await dev.value('SELECT cloudsync_network_set_token(?)', await createAccessToken(t, databaseId, user));
  // A literal: bound as a parameter the setting is stored as '262144.0' and ignored.
  await dev.value("SELECT cloudsync_set('payload_max_chunk_size', 262144)");
  return dev;
}

/** Sends until nothing is unsent; returns the chunks OffSync received. */
async function sendAll(dev: NativeDevice): Promise<Chunk[]> {
  const add = vi.spyOn(t.app.syncHttp.batches, 'add');
  for (let i = 0; i < 5 && (await dev.value('SELECT cloudsync_network_has_unsent_changes()')) !== 0n; i++) {
    await dev.value('SELECT cloudsync_network_send_changes()');
  }
  expect(await dev.value('SELECT cloudsync_network_has_unsent_changes()')).toBe(0n);
  const chunks = add.mock.calls.map((c) => c[2]);
  add.mockRestore();
  return chunks;
}

/** Receives until `done()` holds (at most 10 rounds). */
async function receiveUntil(dev: NativeDevice, done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 10 && !(await done()); i++) await dev.value('SELECT cloudsync_network_receive_changes()');
  expect(await done()).toBe(true);
}

const ROW = 'SELECT title, data, n, length(title) AS lt, length(data) AS ld FROM docs WHERE id = ?';
const same = (a: unknown, b: unknown): boolean => a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));

test('a 1 MiB TEXT and a 3 MiB BLOB round-trip byte-identical between two 1.1.4 devices at the 256 KiB chunk size', async () => {
  const a = await device('alice');
  const b = await device('bob');
  await a.value('INSERT INTO docs(id, title, data, n) VALUES (?, hex(randomblob(?)), randomblob(?), 7)', 'big', TEXT_BYTES / 2, BLOB_BYTES);
  const [want] = await a.all(ROW, 'big');
  expect([want?.['lt'], want?.['ld']]).toEqual([BigInt(TEXT_BYTES), BigInt(BLOB_BYTES)]);

  const chunks = await sendAll(a);
  // The device really fragmented: one batch, several v3 chunks (value parts), then the last.
  const batch = chunks.filter((c) => c.batchId === chunks.at(-1)?.batchId);
  const versions = batch.map((c) => c.payload[4]);
  expect(versions.filter((v) => v === 3).length).toBeGreaterThanOrEqual(16);
  expect(batch.at(-1)?.final).toBe(true);

  // The central row holds the whole values.
  const central = t.app.sync.databases.peek(databaseId);
  if (central === undefined) throw new Error('central database not open');
  const c = central.driver.prepare('SELECT title, data, n FROM docs WHERE id = ?').get('big');
  expect(c?.['title']).toBe(want?.['title']);
  expect(same(c?.['data'], want?.['data'])).toBe(true);
  expect(c?.['n']).toBe(7n);
  // The status covers the version: nothing is reported as sent that was not merged.
  const site = String(await a.value('SELECT lower(hex(cloudsync_siteid()))'));
  const status = await http('GET', `${t.origin}/v2/cloudsync/databases/${databaseId}/${site}/status`, await createAccessToken(t, databaseId, 'alice'));
  expect(status.body['lastOptimisticVersion']).toBeGreaterThanOrEqual(Number(await a.value('SELECT cloudsync_db_version()')));

  await receiveUntil(b, async () => (await b.value('SELECT count(*) FROM docs')) === 1n);
  const [got] = await b.all(ROW, 'big');
  expect(got?.['title']).toBe(want?.['title']);
  expect(same(got?.['data'], want?.['data'])).toBe(true);
  expect(got?.['n']).toBe(7n);

  // The other way: b replaces the BLOB (an UPDATE, col_version 2) and a receives it.
  await b.value('UPDATE docs SET data = randomblob(?) WHERE id = ?', BLOB_BYTES, 'big');
  const [want2] = await b.all(ROW, 'big');
  const back = await sendAll(b);
  expect(back.some((ch) => ch.payload[4] === 3)).toBe(true);
  await receiveUntil(a, async () => same((await a.all(ROW, 'big'))[0]?.['data'], want2?.['data']));
  const [got2] = await a.all(ROW, 'big');
  expect(got2?.['title']).toBe(want?.['title']);
  expect(got2?.['ld']).toBe(BigInt(BLOB_BYTES));
}, 300_000);
