/**
 * The REAL native client 1.1.4 (protocol G3 with `check-chunks`; test-only devDependency) follows
 * slow-start pages unmodified (docs/PROTOCOL.md "Packages"): a fresh device downloads a
 * multi-page database whose first page is small and whose pages grow across its `/check` calls,
 * and ends with exactly the central rows.
 */
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { listenTestServer, TODOS_DDL } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import { openSyncingDevice, receiveUntil } from './sync-fixtures/native-device.ts';
import type { NativeDevice } from './sync-fixtures/native-device.ts';
import type { DownloadOptions } from '../src/domains/sync/index.ts';

const N = 1500;
let t: TestServer & { origin: string };
const devices: NativeDevice[] = [];
const seed = newDevice();

beforeAll(async () => {
  insertTodos(seed, N, 'row', 'a fairly long title to make pages fill up quickly ');
  // Small pages so the download takes many: first page 1.5 KB, ×2 per page, up to 24 KB; replies of
  // at most 40 KB inline (the first holds the ramp 1.5 + 3 + 6 + 12 KB, later ones one full page).
  t = await listenTestServer({ databases: [{ id: 'big' }], http: { pageBytes: 24_000, inlineDownloadBytes: 1000, inlineChunksBytes: 40_000, slowStartBytes: 1500, slowStartGrowth: 2, rateLimitPerSecond: 0 } });
  const url = (await call('GET', `${t.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/upload`)).text;
  await call('PUT', url, { key: null, body: ownPayload(seed) ?? new Uint8Array() });
  expect((await call('POST', `${t.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: seed.dbVersion() } })).status).toBe(200);
});

afterAll(async () => {
  for (const d of devices) await d.close();
  await t?.close();
});

test('a fresh 1.1.4 device follows growing pages (one reply and across replies) to exactly the central rows', async () => {
  const download = vi.spyOn(t.handler.service, 'download');
  const dev = await openSyncingDevice({ origin: t.origin, databaseId: 'big', ddl: TODOS_DDL, table: 'todos', apiKey: 'TESTKEY123' });
  devices.push(dev);
  const count = await receiveUntil(dev, 'SELECT count(*) FROM todos', BigInt(N), 20);
  expect(count).toBe(BigInt(N));
  const plain = (rs: Array<Record<string, unknown>>): unknown[] => rs.map((r) => ({ id: r['id'], title: r['title'], done: Number(r['done']) }));
  expect(plain(await dev.all(ROWS_SQL))).toEqual(plain(seed.driver.prepare(ROWS_SQL).all() as Array<Record<string, unknown>>));
  // The checks the client made: the first started the ramp at 1.5 KB, later ones continued it (larger budgets).
  const budgets = download.mock.calls.map((c) => (c[4] as DownloadOptions | undefined)?.firstPageBytes);
  download.mockRestore();
  const prebuilt = t.handler.prebuilt?.stats;
  console.info(`native 1.1.4 drain: ${budgets.length} page builds, first-page budgets ${budgets.join(' ')}; prebuilt pages ${JSON.stringify(prebuilt)}`);
  // The server's prediction of each next /check (prebuilt-pages.ts) is the request this client
  // really makes: none was replaced by another request, so its site was never paused.
  expect(prebuilt).toMatchObject({ superseded: 0, paused: 0 });
  expect(prebuilt?.builds).toBeGreaterThan(0);
  expect(budgets[0]).toBe(1500);
  // Every later check resumed from a continuation cursor holding the grown budget (a restart would be 1.5 KB again).
  expect(budgets.length).toBeGreaterThanOrEqual(3);
  expect(budgets.slice(1)).toEqual(budgets.slice(1).map(() => 24_000));
});
