/**
 * Values larger than a chunk between the REAL native 1.1.4 client (test-only devDependency) and
 * OffSync's client, through an in-process OffSync server (docs/PROTOCOL.md "Fragmented values"):
 * with `payload_max_chunk_size` 262144 the native device sends a 1 MiB TEXT and a 3 MiB BLOB as
 * version-3 fragments over the chunks of one batch (the api suite's sync-native-fragments test
 * checks the chunks); OffSync's client receives them byte-identical; and a 3 MiB BLOB written by
 * OffSync's client reaches the native device byte-identical.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openNativeDevice, receiveUntil, sendAll } from '../../api/test/sync-fixtures/native-device.ts';
import type { NativeDevice } from '../../api/test/sync-fixtures/native-device.ts';
import { openDatabase } from '../src/sync/index.ts';
import type { OffSyncDatabase } from '../src/sync/index.ts';
import { API_KEY, createSyncServer, listen } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { removeTempDirs, tempPath } from './helpers.ts';

const DDL = "CREATE TABLE docs(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', data BLOB, n INTEGER NOT NULL DEFAULT 0)";
const DB = 'db_fragments';
const TEXT_BYTES = 1024 * 1024;
const BLOB_BYTES = 3 * 1024 * 1024;
const ROW = 'SELECT title, data, n FROM docs WHERE id = ?';

let server: SyncServer;
let origin: string;
const natives: NativeDevice[] = [];
const ours: OffSyncDatabase[] = [];

beforeAll(async () => {
  server = createSyncServer({ databaseId: DB, schema: { ddl: [DDL], tables: ['docs'] } });
  origin = `http://127.0.0.1:${await listen(server.server)}`;
});

afterAll(async () => {
  for (const n of natives) await n.close();
  for (const d of ours) await d.close();
  await server?.close();
  removeTempDirs();
});

const same = (a: unknown, b: unknown): boolean => a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));

test('a 1 MiB TEXT and a 3 MiB BLOB from a 1.1.4 device at the 256 KiB chunk size reach OffSync client byte-identical, and back', async () => {
  const n = await openNativeDevice();
  natives.push(n);
  expect(await n.value('SELECT cloudsync_version()')).toBe('1.1.4');
  await n.exec(DDL);
  await n.value("SELECT cloudsync_init('docs')");
  await n.value('SELECT cloudsync_network_init_custom(?, ?)', origin, DB);
  await n.value('SELECT cloudsync_network_set_apikey(?)', API_KEY);
  // A literal: bound as a parameter the setting is stored as '262144.0' and ignored.
  await n.value("SELECT cloudsync_set('payload_max_chunk_size', 262144)");

  const d = openDatabase(tempPath(), { apiKey: API_KEY, serverUrl: origin, databaseId: DB });
  ours.push(d);
  d.db.exec(DDL);
  d.db.prepare("SELECT cloudsync_init('docs')").get();

  await n.value('INSERT INTO docs(id, title, data, n) VALUES (?, hex(randomblob(?)), randomblob(?), 7)', 'big', TEXT_BYTES / 2, BLOB_BYTES);
  const [want] = await n.all(ROW, 'big');
  expect(await sendAll(n)).toBe(0n);
  await d.sync();
  const got = d.db.prepare(ROW).get('big') as { title: string; data: Uint8Array; n: bigint | number } | undefined;
  expect(got?.title).toBe(want?.['title']);
  expect(String(got?.title).length).toBe(TEXT_BYTES);
  expect(same(got?.data, want?.['data'])).toBe(true);
  expect(Number(got?.n)).toBe(7);

  // The other way: OffSync's client replaces the BLOB; the native device takes it whole.
  const blob = new Uint8Array(BLOB_BYTES).map((_, i) => (i * 7919) % 251);
  d.db.prepare('UPDATE docs SET data = ? WHERE id = ?').run(blob, 'big');
  await d.sync();
  const data = "SELECT hex(data) FROM docs WHERE id = 'big'";
  expect(await receiveUntil(n, data, Buffer.from(blob).toString('hex').toUpperCase())).toBe(Buffer.from(blob).toString('hex').toUpperCase());
  expect(await n.value("SELECT title FROM docs WHERE id = 'big'")).toBe(want?.['title']);
}, 300_000);
