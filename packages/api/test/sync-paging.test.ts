/**
 * Large downloads: pages cut at a (small, configured) page size, G1/G2a/G2b cursors from the
 * last row, G3 chunk batches with cursors, nextCursor and watermark. A client following them
 * receives every change exactly once.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodePayload } from '@offsync/core';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';

let t: TestServer & { origin: string };
let seed: Device;
let expected = 0;
const N = 400;

beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: 'big' }], http: { pageBytes: 4000, inlineDownloadBytes: 1000, inlineChunksBytes: 0 } });
  seed = newDevice();
  insertTodos(seed, N, 'row', 'a fairly long title to make pages fill up quickly ');
  const url = (await call('GET', `${t.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/upload`)).text;
  await call('PUT', url, { key: null, body: ownPayload(seed) ?? new Uint8Array() });
  expect((await call('POST', `${t.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: seed.dbVersion() } })).status).toBe(200);
  expected = N * 2; // title + done per row
});
afterAll(async () => t.close());

function keysOf(bytes: Uint8Array): string[] {
  return decodePayload(bytes).changes.map((c) => `${Buffer.from(c.pk).toString('hex')}/${c.col}`);
}

test('G2b: pages of ≈ pageBytes, last-row cursor, every change exactly once', async () => {
  const d = newDevice();
  const base = `${t.origin}/v2/cloudsync/databases/big/${siteHex(d)}`;
  let cursor = { dbVersion: 0, seq: 0 };
  const seen: string[] = [];
  let pages = 0;
  for (;;) {
    const r = await call('POST', `${base}/check`, { json: cursor });
    if (r.text === '') break;
    const pkg = await call('GET', (r.json() as { url: string }).url, { key: null });
    seen.push(...keysOf(pkg.bytes));
    const applied = d.applyPayload(pkg.bytes);
    cursor = applied.last ?? cursor;
    pages++;
    expect(pages).toBeLessThan(200);
  }
  expect(pages).toBeGreaterThanOrEqual(2);
  expect(seen).toHaveLength(expected);
  expect(new Set(seen).size).toBe(expected);
  expect(d.driver.prepare(ROWS_SQL).all()).toEqual(seed.driver.prepare(ROWS_SQL).all());
});

/** Drains a G3 download through `/check` batches of ≤ 2 chunks; returns the change keys seen. */
async function drainG3(origin: string, d: Device, expectInline: boolean): Promise<{ seen: string[]; batches: number; chunks: number; durable: { dbVersion: number; seq: number } }> {
  const base = `${origin}/v2/cloudsync/databases/big/${siteHex(d)}`;
  const headers = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
  let durable = { dbVersion: 0, seq: 0 };
  let cursor = 0;
  const seen: string[] = [];
  let batches = 0;
  let chunks = 0;
  for (;;) {
    const r = await call('POST', `${base}/check`, { json: { ...durable, cursor, maxChunks: 2 }, headers });
    expect(r.status).toBe(200);
    if (r.text === '') break;
    const data = (r.json() as { data: { chunks?: Array<{ url?: string; payload?: string; cursor: number }>; payload?: string; final: boolean; nextCursor: number; watermark?: number } }).data;
    batches++;
    const pkgs: Uint8Array[] = [];
    if (data.payload !== undefined) pkgs.push(new Uint8Array(Buffer.from(data.payload, 'base64'))); // small final remainder, inline
    else {
      expect(data.chunks?.length).toBeGreaterThan(0);
      expect(data.chunks?.length).toBeLessThanOrEqual(2);
      for (const c of data.chunks ?? []) {
        expect(c.payload !== undefined).toBe(expectInline);
        pkgs.push(c.payload !== undefined ? new Uint8Array(Buffer.from(c.payload, 'base64')) : (await call('GET', c.url ?? '', { key: null })).bytes);
      }
    }
    for (const bytes of pkgs) {
      seen.push(...keysOf(bytes));
      d.applyPayload(bytes);
      chunks++;
    }
    if (data.final) {
      expect(typeof data.watermark).toBe('number');
      durable = { dbVersion: data.watermark ?? 0, seq: 0 };
      cursor = 0;
    } else {
      expect(data.watermark).toBeUndefined();
      cursor = data.nextCursor;
    }
    expect(batches).toBeLessThan(200);
  }
  return { seen, batches, chunks, durable };
}

test('G3: chunk batches respect maxChunks, nextCursor resumes, watermark ends the drain', async () => {
  const d = newDevice();
  const headers = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
  const base = `${t.origin}/v2/cloudsync/databases/big/${siteHex(d)}`;
  const { seen, batches, chunks, durable } = await drainG3(t.origin, d, false);
  expect(batches).toBeGreaterThanOrEqual(2);
  expect(chunks).toBeGreaterThanOrEqual(3);
  expect(seen).toHaveLength(expected);
  expect(new Set(seen).size).toBe(expected);
  expect(d.driver.prepare(ROWS_SQL).all()).toEqual(seed.driver.prepare(ROWS_SQL).all());

  // New changes after the watermark arrive on the next check, and only those.
  const e = newDevice();
  e.driver.prepare("INSERT INTO todos (id, title) VALUES ('late', 'after watermark')").run();
  const url = (await call('GET', `${t.origin}/v2/cloudsync/big.sqlite/${siteHex(e)}/upload`)).text;
  await call('PUT', url, { key: null, body: ownPayload(e) ?? new Uint8Array() });
  await call('POST', `${t.origin}/v2/cloudsync/big.sqlite/${siteHex(e)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: e.dbVersion() } });
  const next = await call('POST', `${base}/check`, { json: { ...durable, cursor: 0 }, headers });
  const data = (next.json() as { data: { payload: string; final: boolean } }).data;
  expect(data.final).toBe(true);
  expect(keysOf(new Uint8Array(Buffer.from(data.payload, 'base64')))).toHaveLength(2);
});

test('G3 with an inline budget: the same drain with chunk payloads in the reply (one pass, no artifact GET)', async () => {
  const ti = await listenTestServer({ databases: [{ id: 'big' }], http: { pageBytes: 4000, inlineDownloadBytes: 1000, inlineChunksBytes: 8000 } });
  try {
    const seedUrl = (await call('GET', `${ti.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/upload`)).text;
    await call('PUT', seedUrl, { key: null, body: ownPayload(seed) ?? new Uint8Array() });
    await call('POST', `${ti.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/apply`, { json: { url: seedUrl, dbVersionMin: 0, dbVersionMax: seed.dbVersion() } });
    const d = newDevice();
    const { seen, batches } = await drainG3(ti.origin, d, true);
    expect(batches).toBeGreaterThanOrEqual(2);
    expect(seen).toHaveLength(expected);
    expect(new Set(seen).size).toBe(expected);
    expect(d.driver.prepare(ROWS_SQL).all()).toEqual(seed.driver.prepare(ROWS_SQL).all());
  } finally {
    await ti.close();
  }
});

test('an unknown or stale G3 cursor restarts from the durable cursor (re-sends, never skips)', async () => {
  const d = newDevice();
  const base = `${t.origin}/v2/cloudsync/databases/big/${siteHex(d)}`;
  const headers = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-chunks' };
  const a = await call('POST', `${base}/check`, { json: { dbVersion: 0, seq: 0, cursor: 0, maxChunks: 1 }, headers });
  const b = await call('POST', `${base}/check`, { json: { dbVersion: 0, seq: 0, cursor: 987654, maxChunks: 1 }, headers });
  const first = (x: typeof a): string => {
    const url = (x.json() as { data: { chunks: Array<{ url: string }> } }).data.chunks[0]?.url ?? '';
    return JSON.parse(Buffer.from(new URL(url).pathname.split('/').pop()?.split('.')[0] ?? '', 'base64url').toString()).from.join(',');
  };
  expect(first(b)).toBe(first(a));
});
