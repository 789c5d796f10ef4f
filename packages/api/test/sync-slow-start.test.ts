/**
 * Slow-start pages over HTTP (docs/PROTOCOL.md "Packages"): a G3 drain from the durable cursor
 * starts with a small page and the pages grow ×growth up to `pageBytes`, across `/check` calls
 * (the continuation cursor carries the budget) and within one multi-chunk reply; every change
 * arrives exactly once, in (db_version, seq) order. Row-cursor generations keep full pages.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { decodePayload } from '@offsync/core';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';

const N = 600;
const PAGE = 24_000;
const FIRST = 1_500;
const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };

let t: TestServer & { origin: string };
let off: TestServer & { origin: string };
let seed: Device;

async function seedInto(s: TestServer & { origin: string }): Promise<void> {
  const url = (await call('GET', `${s.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/upload`)).text;
  await call('PUT', url, { key: null, body: ownPayload(seed) ?? new Uint8Array() });
  expect((await call('POST', `${s.origin}/v2/cloudsync/big.sqlite/${siteHex(seed)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: seed.dbVersion() } })).status).toBe(200);
}

beforeAll(async () => {
  seed = newDevice();
  insertTodos(seed, N, 'row', 'a fairly long title to make pages fill up quickly ');
  t = await listenTestServer({ databases: [{ id: 'big' }], http: { pageBytes: PAGE, inlineDownloadBytes: 1000, slowStartBytes: FIRST, slowStartGrowth: 4 } });
  off = await listenTestServer({ databases: [{ id: 'big' }], http: { pageBytes: PAGE, inlineDownloadBytes: 1000, slowStartBytes: 0 } });
  await seedInto(t);
  await seedInto(off);
});
afterAll(async () => {
  await t.close();
  await off.close();
});

interface Chunk {
  payload?: string;
  url?: string;
  cursor: number;
}
interface CheckData {
  chunks?: Chunk[];
  payload?: string;
  final: boolean;
  nextCursor?: number;
  watermark?: number;
}

async function check(origin: string, d: Device, cursor: number, maxChunks: number): Promise<CheckData | undefined> {
  const r = await call('POST', `${origin}/v2/cloudsync/databases/big/${siteHex(d)}/check`, { json: { dbVersion: 0, seq: 0, cursor, maxChunks }, headers: G3 });
  expect(r.status).toBe(200);
  return r.text === '' ? undefined : (r.json() as { data: CheckData }).data;
}

const bytesOf = async (c: { payload?: string; url?: string } | undefined): Promise<Uint8Array> =>
  c?.payload !== undefined ? new Uint8Array(Buffer.from(c.payload, 'base64')) : (await call('GET', c?.url ?? '', { key: null })).bytes;

/** Drains a fresh device through G3 `/check` with `maxChunks`; the changes of each page, in order. */
async function drain(origin: string, maxChunks: number): Promise<{ d: Device; pages: Array<Array<{ key: string; v: number; seq: number }>>; replies: number[] }> {
  const d = newDevice();
  const pages: Array<Array<{ key: string; v: number; seq: number }>> = [];
  const replies: number[] = [];
  let cursor = 0;
  for (;;) {
    const data = await check(origin, d, cursor, maxChunks);
    if (data === undefined) break;
    const chunks = data.chunks ?? [data];
    expect(chunks.length).toBeLessThanOrEqual(maxChunks);
    replies.push(chunks.length);
    for (const c of chunks) {
      const bytes = await bytesOf(c);
      pages.push(decodePayload(bytes).changes.map((ch) => ({ key: `${Buffer.from(ch.pk).toString('hex')}/${ch.col}`, v: ch.dbVersion, seq: ch.seq })));
      d.applyPayload(bytes);
    }
    if (data.final) break;
    expect(data.nextCursor).toBeDefined();
    cursor = data.nextCursor ?? 0;
    expect(replies.length).toBeLessThan(500);
  }
  return { d, pages, replies };
}

/** Every change once, in strictly increasing (db_version, seq) across page boundaries; the device equals the seed. */
function expectExact(r: { d: Device; pages: Array<Array<{ key: string; v: number; seq: number }>> }): void {
  const all = r.pages.flat();
  expect(all).toHaveLength(N * 2); // title + done per row
  expect(new Set(all.map((c) => c.key)).size).toBe(N * 2);
  for (let i = 1; i < r.pages.length; i++) {
    const last = r.pages[i - 1]?.at(-1);
    const first = r.pages[i]?.[0];
    expect(last !== undefined && first !== undefined && (first.v > last.v || (first.v === last.v && first.seq > last.seq))).toBe(true);
  }
  expect(r.d.driver.prepare(ROWS_SQL).all()).toEqual(seed.driver.prepare(ROWS_SQL).all());
}

test('OffSync-style drain (maxChunks 1): the first page is small, each next one ×4 up to pageBytes, exactly once', async () => {
  const r = await drain(t.origin, 1);
  expectExact(r);
  const sizes = r.pages.map((p) => p.length);
  const full = (await drain(off.origin, 1)).pages.map((p) => p.length);
  // Change counts follow the byte budgets 1.5 K, 6 K, 24 K, 24 K…: ×4, ×4, then steady.
  expect(sizes[0]).toBeLessThan((full[0] ?? 0) / 8);
  expect((sizes[1] ?? 0) / (sizes[0] ?? 1)).toBeGreaterThan(3);
  expect((sizes[2] ?? 0) / (sizes[1] ?? 1)).toBeGreaterThan(3);
  // From the third page on: full pages (the same budget as without slow start, ± a few changes of other lengths).
  expect(Math.abs((sizes[3] ?? 0) - (full[0] ?? 0))).toBeLessThanOrEqual((full[0] ?? 0) / 20);
  expect(r.pages.length).toBeGreaterThanOrEqual(full.length + 1);
  expect(r.pages.length).toBeLessThanOrEqual(full.length + 2);
});

test('a 1.x-style drain (maxChunks 16, inline): the ramp within the first reply, full pages after it, exactly once', async () => {
  const r = await drain(t.origin, 16);
  expectExact(r);
  const sizes = r.pages.map((p) => p.length);
  expect(sizes[1] ?? 0).toBeGreaterThan(3 * (sizes[0] ?? 0));
  expect(sizes[2] ?? 0).toBeGreaterThan(3 * (sizes[1] ?? 0));
  expect(r.replies[0]).toBeGreaterThanOrEqual(3);
});

test('G3 with artifact URLs (no inline budget): the same ramp through chunk URLs', async () => {
  const u = await listenTestServer({ databases: [{ id: 'big' }], http: { pageBytes: PAGE, inlineDownloadBytes: 1000, inlineChunksBytes: 0, slowStartBytes: FIRST, slowStartGrowth: 4 } });
  try {
    await seedInto(u);
    const r = await drain(u.origin, 2);
    expectExact(r);
    expect((r.pages[1]?.length ?? 0) / (r.pages[0]?.length ?? 1)).toBeGreaterThan(3);
  } finally {
    await u.close();
  }
});

test('a resumed cursor keeps the grown budget; an unknown one restarts the drain with a small page', async () => {
  const d = newDevice();
  const a = await check(t.origin, d, 0, 1);
  const b = await check(t.origin, d, a?.nextCursor ?? 0, 1);
  const c = await check(t.origin, d, b?.nextCursor ?? 0, 1);
  const count = async (x: CheckData | undefined): Promise<number> => decodePayload(await bytesOf(x?.chunks?.[0])).changes.length;
  const [na, nb, nc] = [await count(a), await count(b), await count(c)];
  // Resuming after page 2 again (a retry, another node): page 3 at its grown budget, the same changes.
  const again = await check(t.origin, d, b?.nextCursor ?? 0, 1);
  expect(await count(again)).toBe(nc);
  expect(nc).toBeGreaterThan(3 * nb);
  expect(nb).toBeGreaterThan(3 * na);
  const restart = await check(t.origin, d, 987_654_321, 1);
  expect(await count(restart)).toBe(na);
});

test('row-cursor generations (G2b) and G3 without slow start keep full first pages', async () => {
  const d = newDevice();
  const g2b = await call('POST', `${t.origin}/v2/cloudsync/databases/big/${siteHex(d)}/check`, { json: { dbVersion: 0, seq: 0 } });
  const g2bPage = decodePayload((await call('GET', (g2b.json() as { url: string }).url, { key: null })).bytes).changes.length;
  const noSlow = await check(off.origin, d, 0, 1);
  const fullG3 = decodePayload(await bytesOf(noSlow?.chunks?.[0])).changes.length;
  const slow = await check(t.origin, d, 0, 1);
  const smallG3 = decodePayload(await bytesOf(slow?.chunks?.[0])).changes.length;
  expect(Math.abs(g2bPage - fullG3)).toBeLessThanOrEqual(2);
  expect(smallG3 * 8).toBeLessThan(fullG3);
});

test('a download that fits one small inline payload is still one reply under slow start', async () => {
  const d = newDevice();
  const tiny = await listenTestServer({ databases: [{ id: 'big' }] }); // defaults: 128 KiB slow start = inlineDownloadBytes
  try {
    const s = newDevice();
    insertTodos(s, 300, 'small', 'short title ');
    const url = (await call('GET', `${tiny.origin}/v2/cloudsync/big.sqlite/${siteHex(s)}/upload`)).text;
    await call('PUT', url, { key: null, body: ownPayload(s) ?? new Uint8Array() });
    await call('POST', `${tiny.origin}/v2/cloudsync/big.sqlite/${siteHex(s)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: s.dbVersion() } });
    const data = await check(tiny.origin, d, 0, 1);
    expect(data?.final).toBe(true);
    expect(data?.payload).toBeDefined();
    expect(decodePayload(await bytesOf(data)).changes).toHaveLength(600);
  } finally {
    await tiny.close();
  }
});
