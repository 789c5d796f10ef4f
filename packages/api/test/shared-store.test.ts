/**
 * The shared sync store (domains/sync/shared-store.ts) on each implementation — this process's
 * memory, Redis through the in-process fake (test/fake-redis.ts), and a real Redis when
 * TEST_REDIS_URL is set — and single use of artifact URLs across nodes: several ArtifactStores
 * (nodes) on one store racing for the same PUT, `apply` and download GET.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { ArtifactStore, createRedisSharedStore, MemorySharedStore, RedisSharedStore } from '../src/domains/sync/index.ts';
import type { SharedStore, Principal } from '../src/domains/sync/index.ts';
import { FakeRedisBroker } from './fake-redis.ts';

const REDIS_URL = process.env['TEST_REDIS_URL'] || undefined;
const prefix = `offsync-test-${randomBytes(6).toString('hex')}:`;

/** A factory of stores that share state (the "nodes" of one deployment). */
type Backend = [name: string, node: () => Promise<SharedStore>];
const broker = new FakeRedisBroker();
const memory = new MemorySharedStore();
const backends: Backend[] = [
  ['memory', async () => memory],
  ['fake Redis', async () => new RedisSharedStore(broker.client(), { prefix })],
];
if (REDIS_URL !== undefined) backends.push(['Redis', () => createRedisSharedStore({ url: REDIS_URL, prefix })]);

const opened: SharedStore[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
  if (REDIS_URL !== undefined) {
    const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  }
});

const principal: Principal = { kind: 'apiKey', userId: null, claims: {}, credentialId: 'apiKey:k1' };
const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e));

describe.each(backends)('%s', (_name, node) => {
  const nodes = async (n: number): Promise<SharedStore[]> => {
    const list = await Promise.all(Array.from({ length: n }, node));
    opened.push(...list.filter((s) => s !== memory));
    return list;
  };
  const k = (s: string): string => `${randomBytes(4).toString('hex')}:${s}`;

  test('set / get / take / delete; setIfAbsent and take are single-winner across nodes; TTL', async () => {
    const [a, b, c] = await nodes(3);
    if (a === undefined || b === undefined || c === undefined) throw new Error('nodes');
    const key = k('v');
    await a.set(key, new Uint8Array([1, 2, 3]), 60_000);
    expect([...((await b.get(key)) ?? [])]).toEqual([1, 2, 3]);
    const claim = k('claim');
    expect((await Promise.all([a, b, c, a, b, c].map((s) => s.setIfAbsent(claim, 'x', 60_000)))).filter(Boolean)).toHaveLength(1);
    const taken = await Promise.all([a, b, c].map((s) => s.take(key)));
    expect(taken.filter((t) => t !== undefined)).toHaveLength(1);
    expect(await a.get(key)).toBeUndefined();
    await b.set(key, 'again', 60_000);
    await c.delete(key);
    expect(await a.get(key)).toBeUndefined();
    const brief = k('brief');
    await a.set(brief, 'x', 30);
    await new Promise((r) => setTimeout(r, 80));
    expect(await b.get(brief)).toBeUndefined();
  });

  test('lists and ledgers are shared; expired ledger members do not count', async () => {
    const [a, b] = await nodes(2);
    if (a === undefined || b === undefined) throw new Error('nodes');
    const list = k('list');
    expect(await a.append(list, new Uint8Array([1]), 60_000)).toBe(1);
    expect(await b.append(list, new Uint8Array([2]), 60_000)).toBe(2);
    expect((await a.list(list)).map((x) => [...x])).toEqual([[1], [2]]);
    expect([...((await b.item(list, 1)) ?? [])]).toEqual([2]);
    expect(await b.length(list)).toBe(2);
    const ledger = k('ledger');
    const now = Date.now();
    await a.ledgerSet(ledger, 'm1', 100, now + 60_000);
    await b.ledgerSet(ledger, 'm2', 50, now + 30_000);
    await b.ledgerSet(ledger, 'old', 999, now - 1);
    expect(await a.ledgerRead(ledger, now)).toEqual({ bytes: 150, members: 2, oldestExpiry: now + 30_000 });
    await a.ledgerSet(ledger, 'm2', 70, now + 30_000); // overwrite
    await b.ledgerRemove(ledger, 'm1');
    expect(await b.ledgerRead(ledger, now)).toEqual({ bytes: 70, members: 1, oldestExpiry: now + 30_000 });
  });

  test('artifact URLs across nodes: one PUT wins, one apply takes the bytes, one GET opens a download; the rest get 410', async () => {
    const stores = await nodes(3);
    const secret = randomBytes(32);
    const [n1, n2, n3] = stores.map((store) => new ArtifactStore({ secret, store }));
    if (n1 === undefined || n2 === undefined || n3 === undefined) throw new Error('nodes');
    const url = await n1.issueUpload('http://lb', 'db1', 's1', principal);
    const token = ArtifactStore.tokenOf(url) ?? '';
    expect(await n2.checkUploadFits(token, 10)).toBe('db1 apiKey:k1 s1');
    const puts = await Promise.all([n2, n3, n1].map((n, i) => codeOf(n.storeUpload(token, new Uint8Array(10).fill(i)))));
    expect(puts.sort()).toEqual(['artifact_used', 'artifact_used', 'ok']);
    expect((await n1.readStats()).pendingBytes).toBe(10);
    const takes = await Promise.all([n3, n1, n2].map((n) => n.takeUpload(url, 'db1', 's1').then((b) => b.length, (e: { code: string }) => e.code)));
    expect(takes.sort()).toEqual([10, 'artifact_used', 'artifact_used']);
    expect(await codeOf(n2.storeUpload(token, new Uint8Array(1)))).toBe('artifact_used'); // no PUT after use
    expect((await n3.readStats()).pendingBytes).toBe(0);

    const dl = await n2.issueDownload('http://lb', { db: 'db1', site: 's1', from: [0, 0], to: [5, 1], h: '0' }, principal);
    const dtoken = ArtifactStore.tokenOf(dl) ?? '';
    const opens = await Promise.all([n1, n2, n3].map((n) => n.openDownload(dtoken).then((o) => o.principal.credentialId, (e: { code: string }) => e.code)));
    expect(opens.sort()).toEqual(['apiKey:k1', 'artifact_used', 'artifact_used']);
  });
});
