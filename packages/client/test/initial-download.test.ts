/** A large initial download: paged check batches, progress events, durable cursor only on the final page. */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createFetchHttp } from '../src/sync/index.ts';
import type { HttpRequest, Progress } from '../src/sync/index.ts';
import { createSyncServer, listen } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { device, removeTempDirs, rows } from './helpers.ts';

let srv: SyncServer;
let url: string;
const N = 6000;

beforeAll(async () => {
  srv = createSyncServer({ http: { pageBytes: 16 * 1024, defaultMaxChunks: 3, inlineDownloadBytes: 8 * 1024 } });
  url = `http://127.0.0.1:${await listen(srv.server)}`;
  // Seed the central database through a device: large uploads go through upload URLs.
  const seed = device({ serverUrl: url, databaseId: srv.databaseId, maxChunkBytes: 256 * 1024 });
  const ins = seed.db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
  seed.db.transaction(() => {
    for (let i = 0; i < N; i++) ins.run(`row${String(i).padStart(6, '0')}`, `title number ${i} ${'x'.repeat(i % 40)}`, i % 2);
  })();
  const r = await seed.send();
  expect(r.status).toBe('synced');
  await seed.close();
});
afterAll(async () => {
  await srv.close();
  removeTempDirs();
});

test('a fresh device downloads everything in pages, with progress events, following nextCursor', async () => {
  const http = createFetchHttp();
  const checks: Array<Record<string, unknown>> = [];
  const fetchLog = async (req: HttpRequest) => {
    if (req.url.endsWith('/check') && req.body !== undefined) checks.push(JSON.parse(Buffer.from(req.body).toString()) as Record<string, unknown>);
    return http(req);
  };
  const b = device({ serverUrl: url, databaseId: srv.databaseId, fetch: fetchLog });
  const progress: Progress[] = [];
  const cursorsDuring: number[] = [];
  b.on('progress', (p) => {
    progress.push(p);
    cursorsDuring.push(b.settings.cursor().dbVersion);
  });
  const r = await b.receive();
  expect(r.complete).toBe(true);
  expect(rows(b)).toHaveLength(N);
  expect(rows(b)).toEqual(srv.central());
  expect(r.chunks).toBeGreaterThan(6);
  expect(progress.length).toBe(r.chunks);
  for (let i = 1; i < progress.length; i++) expect((progress[i] as Progress).rows).toBeGreaterThan((progress[i - 1] as Progress).rows);
  expect(progress.every((p) => p.phase === 'download')).toBe(true);
  // Several check calls: the first with cursor 0, then each with the previous nextCursor, same durable cursor.
  expect(checks.length).toBeGreaterThan(2);
  expect(checks[0]).toMatchObject({ dbVersion: 0, seq: 0, cursor: 0 });
  for (const c of checks.slice(1)) expect(c).toMatchObject({ dbVersion: 0, seq: 0 });
  expect(new Set(checks.map((c) => c['cursor'])).size).toBe(checks.length);
  // Only the final page moved the durable cursor.
  expect(cursorsDuring.slice(0, -1).every((v) => v === 0)).toBe(true);
  expect(b.settings.cursor().dbVersion).toBeGreaterThan(0);
  // Next time: nothing to download.
  const again = await b.receive();
  expect(again).toMatchObject({ rows: 0, complete: true });
  await b.close();
});

test('maxChunks bounds each check batch: a larger value needs fewer check calls', async () => {
  const http = createFetchHttp();
  let checks = 0;
  const c = device({
    serverUrl: url,
    databaseId: srv.databaseId,
    maxChunks: 1000,
    fetch: async (req) => {
      if (req.url.endsWith('/check')) checks++;
      return http(req);
    },
  });
  const r = await c.sync();
  expect(r.receive.complete).toBe(true);
  expect(checks).toBe(1);
  expect(rows(c)).toHaveLength(N);
  await c.close();
});
