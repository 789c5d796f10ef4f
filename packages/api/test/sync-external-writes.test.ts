/**
 * Rows written straight into a central database by another program (not through sync) are
 * tracked by the engine's plain-SQL triggers and reach the devices like any other change.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, newDevice, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';

let t: TestServer & { origin: string };
beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: 'ext' }] });
});
afterAll(async () => t.close());

async function pullAll(d: Device): Promise<void> {
  const base = `${t.origin}/v2/cloudsync/databases/ext/${siteHex(d)}`;
  const r = await call('POST', `${base}/check`, { json: { dbVersion: 0, seq: 0 } });
  expect(r.status).toBe(200);
  const { url } = r.json() as { url: string };
  const blob = await call('GET', url, { key: null });
  expect(blob.status).toBe(200);
  d.applyPayload(blob.bytes, { strictSchemaHash: false });
}

test('another process inserts, updates and deletes in the central file; a device receives it all', async () => {
  const other = new Database(t.pathOf('ext')); // a plain connection: no OffSync code loaded
  other.exec(`INSERT INTO todos (id, title, done) VALUES ('a', 'from cron', 0), ('b', 'to be deleted', 0), ('c', 'edited', 0)`);
  other.exec(`UPDATE todos SET title = 'edited twice', done = 1 WHERE id = 'c'`);
  other.exec(`DELETE FROM todos WHERE id = 'b'`);
  const central = other.prepare(ROWS_SQL).safeIntegers(true).all();
  other.close();

  const d = newDevice();
  await pullAll(d);
  expect(d.driver.prepare(ROWS_SQL).all()).toEqual(central);
  expect(central).toEqual([
    { id: 'a', title: 'from cron', done: 0n },
    { id: 'c', title: 'edited twice', done: 1n },
  ]);
});
