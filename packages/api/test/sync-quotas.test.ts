/**
 * Quotas per credential over HTTP (docs/PROTOCOL.md "Quotas"): request rate (429 + Retry-After,
 * fake clock), pending upload bytes, concurrent uploads — one tenant cannot block another.
 */
import { request } from 'node:http';
import { afterEach, expect, test, vi } from 'vitest';
import type { AppSyncOptions } from '../src/index.ts';
import { openReplica } from '@offsync/core/testing';
import { createAccessToken, G3, http, setupDatabase, startApp, TODOS_RLS_DDL } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';
import { manualClock, siteId } from './helpers.ts';

let running: RunningApp | undefined;
afterEach(async () => {
  await running?.dispose();
  running = undefined;
});

async function start(sync: AppSyncOptions) {
  const clock = manualClock();
  const t = await startApp({ now: clock.now, ...sync }, {}, { clock });
  running = t;
  const db = await setupDatabase(t);
  return { t, clock, ...db, url: (site: string, call: string) => `${t.origin}/v2/cloudsync/databases/${db.databaseId}/${site}/${call}` };
}

async function put(url: string, bytes: number): Promise<{ status: number; retryAfter: string | null; code: unknown }> {
  const r = await fetch(url, { method: 'PUT', body: Buffer.alloc(bytes, 7) });
  const body = (await r.json().catch(() => ({}))) as { errors?: Array<{ code: string }> };
  return { status: r.status, retryAfter: r.headers.get('retry-after'), code: body.errors?.[0]?.code };
}

async function status(url: string, credential: string): Promise<{ status: number; retryAfter: string | null; code: unknown }> {
  const r = await fetch(url, { headers: { ...G3, authorization: `Bearer ${credential}` } });
  const body = (await r.json()) as { errors?: Array<{ code: string }> };
  return { status: r.status, retryAfter: r.headers.get('retry-after'), code: body.errors?.[0]?.code };
}

test('request rate: after the burst 429 rate_limited with Retry-After; other credentials unaffected; the bucket refills', async () => {
  const s = await start({ rateLimitPerSecond: 2, rateLimitBurst: 3 });
  const token = await createAccessToken(s.t, s.databaseId, 'u-1');
  const siteA = siteId();
  const siteB = siteId();
  for (let i = 0; i < 3; i++) expect((await status(s.url(siteA, 'status'), s.apiKey)).status).toBe(200);
  expect(await status(s.url(siteA, 'status'), s.apiKey)).toEqual({ status: 429, retryAfter: '1', code: 'rate_limited' });
  // Uploads are refused the same way (before the body is read), and so are push-token registrations.
  const apply = await http('POST', s.url(siteA, 'apply'), s.apiKey, { blob: '', dbVersionMin: 1, dbVersionMax: 1 });
  expect(apply.status).toBe(429);
  // Another credential has its own bucket; so has another device sharing the API key (fleets share keys).
  expect((await status(s.url(siteB, 'status'), token)).status).toBe(200);
  expect((await status(s.url(siteId(), 'status'), s.apiKey)).status).toBe(200);
  // A user's credential is one bucket whatever the site.
  expect((await status(s.url(siteB, 'status'), token)).status).toBe(200);
  expect((await status(s.url(siteB, 'status'), token)).status).toBe(200);
  expect((await status(s.url(siteId(), 'status'), token)).code).toBe('rate_limited');
  s.clock.advance(500); // 2/s: one token back
  expect((await status(s.url(siteA, 'status'), s.apiKey)).status).toBe(200);
  expect((await status(s.url(siteA, 'status'), s.apiKey)).status).toBe(429);
  s.clock.advance(60_000);
  for (let i = 0; i < 3; i++) expect((await status(s.url(siteA, 'status'), s.apiKey)).status).toBe(200);
  // Refused credentials are not counted against anybody: 401 stays 401.
  expect((await status(s.url(siteA, 'status'), 'osk_not-a-key')).status).toBe(401);
});

test('pending upload bytes per credential: one credential at its cap cannot block another credential\'s upload URL', async () => {
  const s = await start({ rateLimitPerSecond: 0, maxPendingUploadBytesPerCredential: 1000 });
  const other = await createAccessToken(s.t, s.databaseId, 'u-2');
  const siteA = siteId();
  const siteB = siteId();
  const urlOf = async (site: string, credential: string) => {
    const r = await http('GET', s.url(site, 'upload'), credential);
    return r;
  };
  const a1 = await urlOf(siteA, s.apiKey);
  expect(a1.status).toBe(200);
  expect((await put(String(a1.body['url']), 800)).status).toBe(200);
  const a2 = await urlOf(siteA, s.apiKey);
  expect(await put(String(a2.body['url']), 800)).toMatchObject({ status: 429, code: 'quota_exceeded' });
  expect((await put(String(a2.body['url']), 200)).status).toBe(200);
  // Full: no further upload URL for this credential; Retry-After until its oldest upload expires (≤ 60 s).
  const refused = await fetch(s.url(siteA, 'upload'), { headers: { ...G3, authorization: `Bearer ${s.apiKey}` } });
  expect(refused.status).toBe(429);
  expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
  // Pending bytes count for the API key as a whole: another device of the key is refused too.
  expect((await urlOf(siteId(), s.apiKey)).status).toBe(429);
  // Another credential uploads normally.
  const b = await urlOf(siteB, other);
  expect(b.status).toBe(200);
  expect((await put(String(b.body['url']), 900)).status).toBe(200);
  // Applying (even a payload refused as invalid) frees the first credential's bytes.
  const applied = await http('POST', s.url(siteA, 'apply'), s.apiKey, { url: a1.body['url'], dbVersionMin: 1, dbVersionMax: 1 });
  expect(applied.status).toBe(200);
  expect((await urlOf(siteA, s.apiKey)).status).toBe(200);
});

test('concurrent uploads per credential: a PUT in flight holds the slot; the same credential gets 429, another does not', async () => {
  const s = await start({ rateLimitPerSecond: 0, maxConcurrentUploadsPerCredential: 1 });
  const other = await createAccessToken(s.t, s.databaseId, 'u-3');
  const siteA = siteId();
  const siteB = siteId();
  const u1 = String((await http('GET', s.url(siteA, 'upload'), s.apiKey)).body['url']);
  const u2 = String((await http('GET', s.url(siteA, 'upload'), s.apiKey)).body['url']);
  const ub = String((await http('GET', s.url(siteB, 'upload'), other)).body['url']);

  // A slow PUT: headers and part of the body sent, the rest held back.
  const slow = request(u1, { method: 'PUT', headers: { 'content-length': '1000' } });
  const slowDone = new Promise<number>((ok, fail) => {
    slow.on('response', (r) => {
      r.resume();
      ok(r.statusCode ?? 0);
    });
    slow.on('error', fail);
  });
  slow.write(Buffer.alloc(10));
  await vi.waitFor(() => expect(s.t.app.syncHttp.quotas.stats().uploadsInFlight).toBe(1), { timeout: 10_000 });

  expect(await put(u2, 100)).toEqual({ status: 429, retryAfter: '1', code: 'quota_exceeded' });
  const apply = await http('POST', s.url(siteA, 'apply'), s.apiKey, { url: u2, dbVersionMin: 1, dbVersionMax: 1 });
  expect(apply).toMatchObject({ status: 429 });
  expect((await put(ub, 100)).status).toBe(200);
  // Another device sharing the API key has its own upload slots.
  const uc = String((await http('GET', s.url(siteId(), 'upload'), s.apiKey)).body['url']);
  expect((await put(uc, 100)).status).toBe(200);

  slow.end(Buffer.alloc(990));
  expect(await slowDone).toBe(200);
  await vi.waitFor(() => expect(s.t.app.syncHttp.quotas.stats().uploadsInFlight).toBe(0), { timeout: 10_000 });
  // The refused slot was not used up: it takes the upload now.
  expect((await put(u2, 100)).status).toBe(200);
});

test('the chunks of an open G3 batch are not charged to the request rate (a 429 mid-batch would make the client re-send it whole)', async () => {
  const s = await start({ rateLimitPerSecond: 1, rateLimitBurst: 2 });
  const dev = openReplica(TODOS_RLS_DDL, ['todos']);
  for (let i = 0; i < 12; i++) dev.driver.prepare("INSERT INTO todos (id, user_id, title) VALUES (?, 'k', ?)").run(`r${i}`, 'x'.repeat(50));
  const site = Buffer.from(dev.siteId).toString('hex');
  const all = [...dev.changes({ localOnly: true })];
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 5) chunks.push(dev.encodeChanges(all.slice(i, i + 5)) as Uint8Array);
  expect(chunks.length).toBeGreaterThan(4);
  const v = dev.dbVersion();
  const batchId = 'b-rate-1';
  const replies = [];
  for (const [i, c] of chunks.entries()) {
    replies.push(await http('POST', s.url(site, 'apply'), s.apiKey, { blob: Buffer.from(c).toString('base64'), dbVersionMin: 1, dbVersionMax: v, batchId, chunkIndex: i, isFinal: i === chunks.length - 1 }));
  }
  expect(replies.map((r) => r.status)).toEqual(chunks.map(() => 200));
  expect(replies.at(-1)?.body['lastOptimisticVersion']).toBe(v);
  // Outside a batch the rate applies again.
  expect((await status(s.url(site, 'status'), s.apiKey)).status).toBe(200);
  expect((await status(s.url(site, 'status'), s.apiKey)).code).toBe('rate_limited');
});
