import { randomBytes } from 'node:crypto';
import { expect, test } from 'vitest';
import { ArtifactStore } from '../artifacts.ts';
import type { Principal } from '../sync-deps.ts';
import { CredentialQuotas, quotaKeyOf, rateKeyOf } from './quotas.ts';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

function refusal(fn: () => void): { code: string; status: number; retryAfterSeconds: number | undefined } {
  try {
    fn();
  } catch (e) {
    const err = e as { code: string; status: number; retryAfterSeconds: number | undefined };
    return { code: err.code, status: err.status, retryAfterSeconds: err.retryAfterSeconds };
  }
  throw new Error('expected a refusal');
}

const principal = (credentialId: string): Principal => ({ kind: 'accessToken', userId: credentialId, claims: {}, credentialId });

test('token bucket: the burst passes, the next request gets rate_limited with Retry-After, tokens come back with time', () => {
  const c = clock();
  const q = new CredentialQuotas({ rateLimitPerSecond: 2, rateLimitBurst: 3, maxConcurrentUploadsPerCredential: 0 }, c.now);
  for (let i = 0; i < 3; i++) q.takeRequest('a');
  expect(refusal(() => q.takeRequest('a'))).toEqual({ code: 'rate_limited', status: 429, retryAfterSeconds: 1 });
  q.takeRequest('b'); // another credential has its own bucket
  c.advance(499);
  expect(refusal(() => q.takeRequest('a')).code).toBe('rate_limited');
  c.advance(1); // 500 ms at 2/s = one token
  q.takeRequest('a');
  expect(refusal(() => q.takeRequest('a')).code).toBe('rate_limited');
  c.advance(10_000); // refills to the burst, never beyond
  for (let i = 0; i < 3; i++) q.takeRequest('a');
  expect(refusal(() => q.takeRequest('a')).code).toBe('rate_limited');
});

test('Retry-After covers the wait for a whole token at slow rates', () => {
  const c = clock();
  const q = new CredentialQuotas({ rateLimitPerSecond: 0.2, rateLimitBurst: 1, maxConcurrentUploadsPerCredential: 0 }, c.now);
  q.takeRequest('a');
  expect(refusal(() => q.takeRequest('a')).retryAfterSeconds).toBe(5);
  c.advance(4000);
  expect(refusal(() => q.takeRequest('a')).retryAfterSeconds).toBe(1);
  c.advance(1000);
  q.takeRequest('a');
});

test('buckets are bounded: refilled ones are forgotten, and past the cap the least recently used goes', () => {
  const c = clock();
  const q = new CredentialQuotas({ rateLimitPerSecond: 10, rateLimitBurst: 10, maxConcurrentUploadsPerCredential: 0 }, c.now, { maxTrackedCredentials: 100 });
  for (let i = 0; i < 1000; i++) q.takeRequest(`k${i}`);
  expect(q.stats().buckets).toBeLessThanOrEqual(100);
  c.advance(60_000);
  q.takeRequest('fresh');
  expect(q.stats().buckets).toBe(1);
});

test('keys: users count per credential and database; a shared API key counts per device for rate and uploads, as a whole for pending bytes', () => {
  const user = principal('jwt:u1');
  expect(rateKeyOf('db', user, 'aa')).toBe(rateKeyOf('db', user, 'bb'));
  expect(rateKeyOf('db', user, undefined)).toBe(quotaKeyOf('db', user));
  expect(rateKeyOf('db2', user, 'aa')).not.toBe(rateKeyOf('db', user, 'aa'));
  const key: Principal = { kind: 'apiKey', userId: null, claims: {}, credentialId: 'apiKey:k1' };
  expect(rateKeyOf('db', key, 'aa')).not.toBe(rateKeyOf('db', key, 'bb'));
  expect(rateKeyOf('db', key, 'AA')).toBe(rateKeyOf('db', key, 'aa'));
  expect(rateKeyOf('db', key, undefined)).toBeUndefined();
  expect(quotaKeyOf('db', key)).toBe('db apiKey:k1');
  expect(quotaKeyOf('db', { kind: 'apiKey', userId: null, claims: {} })).toBeUndefined();
});

test('concurrent uploads per credential: the cap refuses with quota_exceeded, release (idempotent) frees a slot', () => {
  const q = new CredentialQuotas({ rateLimitPerSecond: 0, rateLimitBurst: 1, maxConcurrentUploadsPerCredential: 2 });
  const r1 = q.acquireUpload('a');
  q.acquireUpload('a');
  expect(refusal(() => q.acquireUpload('a'))).toEqual({ code: 'quota_exceeded', status: 429, retryAfterSeconds: 1 });
  q.acquireUpload('b');
  r1();
  r1();
  expect(q.stats().uploadsInFlight).toBe(2);
  q.acquireUpload('a');
  expect(refusal(() => q.acquireUpload('a')).code).toBe('quota_exceeded');
});

async function refusalOf(fn: () => Promise<unknown>): Promise<{ code: string; status: number; retryAfterSeconds: number | undefined }> {
  try {
    await fn();
  } catch (e) {
    const err = e as { code: string; status: number; retryAfterSeconds: number | undefined };
    return { code: err.code, status: err.status, retryAfterSeconds: err.retryAfterSeconds };
  }
  throw new Error('expected a refusal');
}

test('pending upload bytes per credential: one credential full does not block another; apply and expiry free it; the global cap stays', async () => {
  const c = clock();
  const store = new ArtifactStore({ secret: randomBytes(32), now: c.now, ttlMs: 30_000, maxPendingBytesPerCredential: 1000, maxPendingBytes: 2500 });
  const a = principal('accessToken:a');
  const b = principal('accessToken:b');
  const token = (url: string) => ArtifactStore.tokenOf(url) ?? '';
  const u1 = await store.issueUpload('http://x', 'db1', 's1', a);
  await store.storeUpload(token(u1), new Uint8Array(600));
  const u2 = await store.issueUpload('http://x', 'db1', 's1', a);
  expect(await refusalOf(() => store.checkUploadFits(token(u2), 500))).toEqual({ code: 'quota_exceeded', status: 429, retryAfterSeconds: 30 });
  expect((await refusalOf(() => store.storeUpload(token(u2), new Uint8Array(500)))).code).toBe('quota_exceeded');
  await store.storeUpload(token(u2), new Uint8Array(400)); // exactly the cap
  expect((await refusalOf(() => store.issueUpload('http://x', 'db1', 's1', a))).code).toBe('quota_exceeded');
  // The same credential id in another database is another tenant.
  expect(quotaKeyOf('db2', a)).not.toBe(quotaKeyOf('db1', a));
  await store.storeUpload(token(await store.issueUpload('http://x', 'db2', 's1', a)), new Uint8Array(900));
  const ub = await store.issueUpload('http://x', 'db1', 's2', b);
  expect(await store.checkUploadFits(token(ub), 600)).toBe(quotaKeyOf('db1', b));
  // The global pool (2500) still applies: 600 + 400 + 900 held, b's 700 does not fit.
  expect((await refusalOf(() => store.storeUpload(token(ub), new Uint8Array(700)))).code).toBe('server_busy');
  await store.storeUpload(token(ub), new Uint8Array(600));
  expect(store.stats().pendingBytes).toBe(2500);
  // Applying frees a's bytes at once.
  await store.takeUpload(u1, 'db1', 's1');
  await store.storeUpload(token(await store.issueUpload('http://x', 'db1', 's1', a)), new Uint8Array(500));
  // Expiry frees them too.
  c.advance(30_001);
  expect(await store.issueUpload('http://x', 'db1', 's1', a)).toContain('/_artifacts/');
  expect(await store.readStats()).toEqual({ pendingBytes: 0, pendingUploads: 0 });
});
