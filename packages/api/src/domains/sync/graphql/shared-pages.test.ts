/**
 * Event pages (shared-pages.ts `joinEventPage`): every subscriber an event wakes is handed the page
 * its own key asks for — same visibility, cursor, page size and schema-hash stamp share one build
 * and one result object; any one of them different is another page — whatever order the
 * subscribers join in (the one-entry memo of the previous join never answers for another key).
 */
import { expect, test } from 'vitest';
import type { SynchronousCentral } from '../central.ts';
import type { Cursor } from '../download-pages.ts';
import type { Principal } from '../sync-deps.ts';
import type { DownloadResult, SyncService } from '../sync.service.ts';
import { joinEventPage } from './shared-pages.ts';

const WATERMARK = 50;
const apiKey: Principal = { kind: 'apiKey', userId: null, claims: {} };
const alice: Principal = { kind: 'accessToken', userId: 'alice', claims: { team: 1 } };
const bob: Principal = { kind: 'accessToken', userId: 'bob', claims: { team: 1 } };

/** A download that says what it was asked for (the key of the page), counted. */
function fakeSync(): { sync: SyncService; builds: string[] } {
  const builds: string[] = [];
  const sync = {
    download: (_db: unknown, _site: string, after: Cursor, principal: Principal, opts: { pageBytes: number; schemaHash: bigint }): Promise<DownloadResult> => {
      const key = `${principal.userId ?? '*'}|${after.dbVersion}:${after.seq}|${opts.pageBytes}|${opts.schemaHash}`;
      builds.push(key);
      const payload = new Uint8Array(Buffer.from(key));
      return Promise.resolve({ pages: [{ to: { dbVersion: WATERMARK, seq: 0 }, rows: 1, payload }] as DownloadResult['pages'], complete: true, watermark: WATERMARK, schemaHash: opts.schemaHash });
    },
  } as unknown as SyncService;
  return { sync, builds };
}

const db = { engine: { dbVersion: () => WATERMARK, changes: () => [] } } as unknown as SynchronousCentral;

interface Join {
  principal: Principal;
  after: Cursor;
  pageBytes: number;
  hash: bigint;
}

/** Joins every subscriber to `event` in order; resolves with the key each one's page was built for. */
async function joinAll(sync: SyncService, event: object, joins: Join[]): Promise<{ keys: string[]; results: DownloadResult[] }> {
  const handed = joins.map(
    (j, i) =>
      new Promise<DownloadResult>((resolve, reject) => {
        const site = i.toString(16).padStart(32, '0');
        const joined = joinEventPage(sync, db, site, j.principal, j.after, j.pageBytes, j.hash, event, {
          onSharedPage: (result, error) => (result === null ? reject(error ?? new Error('not shared')) : resolve(result)),
        });
        expect(joined).toBe(true);
      }),
  );
  const results = await Promise.all(handed);
  return { keys: results.map((r) => Buffer.from(r.pages[0]?.payload ?? new Uint8Array()).toString()), results };
}

test('interleaved joins of one event get the page of their own key, one build per key', async () => {
  const { sync, builds } = fakeSync();
  const c = { dbVersion: 40, seq: 3 };
  const base: Join = { principal: apiKey, after: c, pageBytes: 1000, hash: 7n };
  const joins: Join[] = [
    base,
    { ...base, principal: alice },
    { ...base, after: { dbVersion: 40, seq: 3 } }, // equal cursor, another object: the same page
    { ...base, after: { dbVersion: 40, seq: 4 } },
    { ...base, after: { dbVersion: 41, seq: 3 } },
    base,
    { ...base, pageBytes: 2000 },
    { ...base, hash: 8n },
    { ...base, principal: bob },
    { ...base, principal: alice },
    base,
    { ...base, principal: { ...apiKey } }, // another API key principal: same visibility
  ];
  const { keys, results } = await joinAll(sync, {}, joins);
  const expected = joins.map((j) => `${j.principal.kind === 'apiKey' ? '*' : j.principal.userId}|${j.after.dbVersion}:${j.after.seq}|${j.pageBytes}|${j.hash}`);
  expect(keys).toEqual(expected);
  expect(builds.sort()).toEqual([...new Set(expected)].sort());
  // Same key, same result object (what the fast path serialises once).
  for (let i = 0; i < joins.length; i++) for (let k = 0; k < joins.length; k++) if (expected[i] === expected[k]) expect(results[i]).toBe(results[k]);
});

test('another event is another page, even for the same key', async () => {
  const { sync, builds } = fakeSync();
  const j: Join = { principal: apiKey, after: { dbVersion: 40, seq: 3 }, pageBytes: 1000, hash: 7n };
  const first = await joinAll(sync, {}, [j, j]);
  const second = await joinAll(sync, {}, [j]);
  expect(builds).toHaveLength(2);
  expect(first.results[0]).toBe(first.results[1]);
  expect(second.results[0]).not.toBe(first.results[0]);
});

test('the fan-out waits one turn of the event loop: what the settled build queued (the merge reply) runs first', async () => {
  const { sync } = fakeSync();
  const order: string[] = [];
  const j: Join = { principal: apiKey, after: { dbVersion: 40, seq: 3 }, pageBytes: 1000, hash: 7n };
  const event = {};
  const waiters = 300;
  for (let i = 0; i < waiters; i++) {
    joinEventPage(sync, db, i.toString(16).padStart(32, '0'), j.principal, j.after, j.pageBytes, j.hash, event, {
      onSharedPage: (result) => order.push(result === null ? `null ${i}` : `page ${i}`),
    });
  }
  // The build (a resolved promise here) settles within these microtasks; the reply of the merge
  // that published the event is such a microtask chain too.
  for (let k = 0; k < 20; k++) await Promise.resolve();
  order.push('reply');
  await new Promise((resolve) => setImmediate(resolve));
  expect(order[0]).toBe('reply');
  expect(order.slice(1)).toEqual(Array.from({ length: waiters }, (_, i) => `page ${i}`));
  // A subscriber that joins once the page is settled is handed it at once.
  let late: string | undefined;
  joinEventPage(sync, db, 'f'.repeat(32), j.principal, j.after, j.pageBytes, j.hash, event, { onSharedPage: (r) => (late = r === null ? 'null' : 'page') });
  expect(late).toBe('page');
});
