/**
 * Schema-hash stamps of a live stream (live-changes.ts): a stamp that is due soon after a delivery
 * is renewed off the delivery path, right after the fan-out, so the next event's page uses the
 * renewed stamp without a read of its own; a stamp that is not due soon is left alone, and one
 * that expired anyway (no delivery renewed it) is still read again before its next page.
 */
import { afterEach, expect, test, vi } from 'vitest';
import type { Central } from '../central.ts';
import type { Cursor } from '../download-pages.ts';
import type { Principal } from '../sync-deps.ts';
import type { DownloadResult, SyncService } from '../sync.service.ts';
import type { ChangeHub } from './change-hub.ts';
import { liveChanges } from './live-changes.ts';
import type { ChangesBatch } from './live-changes.ts';

afterEach(() => {
  vi.restoreAllMocks();
});

const principal: Principal = { kind: 'apiKey', userId: null, claims: {} };
const SITE = 'ab'.repeat(16);

/** One database whose head moves by one version per event; every read returns the rest of the feed as one page. */
function fixture() {
  let head = 1;
  let now = 0;
  vi.spyOn(Date, 'now').mockImplementation(() => now);
  // Stamps live exactly half of their TTL (stampUntil's random part at its minimum): 500 ms.
  vi.spyOn(Math, 'random').mockReturnValue(0);
  const stampReads: number[] = [];
  const hashes: bigint[] = [];
  const engine = { dbVersion: () => head, changes: () => [] };
  const synchronous = {
    id: 'db',
    engine,
    stampNow: (): bigint => {
      stampReads.push(now);
      return BigInt(stampReads.length);
    },
  };
  const db = { id: 'db', synchronous } as unknown as Central;
  const sync = {
    download: (_db: unknown, _site: string, after: Cursor, _p: Principal, opts: { schemaHash: bigint }): Promise<DownloadResult> => {
      hashes.push(opts.schemaHash);
      const pages = after.dbVersion < head ? [{ to: { dbVersion: head, seq: 0 }, rows: 1, payload: new Uint8Array([head]) }] : [];
      return Promise.resolve({ pages, complete: true, watermark: head, schemaHash: opts.schemaHash } as unknown as DownloadResult);
    },
  } as unknown as SyncService;
  let listener: (ev: { originSiteId: string; dbVersion: number; tables: string[] }) => void = () => undefined;
  const hub = {
    listen: (_id: string, l: typeof listener) => {
      listener = l;
      return () => undefined;
    },
  } as unknown as ChangeHub;
  const batches: ChangesBatch[] = [];
  let delivered = (): void => undefined;
  const stream = liveChanges({ sync, hub, db, site: SITE, principal, after: { dbVersion: 0, seq: 0 }, pageBytes: 1000 });
  stream.attach({
    ready: () => true,
    write: (b) => {
      batches.push(b);
      delivered();
    },
    end: () => undefined,
  });
  return {
    stampReads,
    hashes,
    batches,
    at(ms: number): void {
      now = ms;
    },
    /** The next delivery. */
    delivery: (): Promise<void> => new Promise((resolve) => (delivered = resolve)),
    /** After the immediates queued so far (renewals run in one, queued by the delivery: immediates run in order). */
    queued: (): Promise<void> => new Promise((resolve) => setImmediate(resolve)),
    /** A merge committed: the head moves and the hub announces it. */
    merge(): void {
      head++;
      listener({ originSiteId: 'cd'.repeat(16), dbVersion: head, tables: ['t'] });
    },
    close: () => stream.return(),
  };
}

test('a stamp due soon after a delivery is renewed after it, and the next event reads none', async () => {
  const f = fixture();
  const first = f.delivery();
  f.merge();
  await first;
  // The replay's page read the first stamp (at 0, due at 500); not due soon after the delivery.
  expect(f.stampReads).toEqual([0]);

  f.at(450);
  const second = f.delivery();
  f.merge();
  await second;
  // Delivered at 450 with the stamp due at 500: renewed after the delivery (due at 950), not in it.
  expect(f.stampReads).toEqual([0]);
  await f.queued();
  expect(f.stampReads).toEqual([0, 450]);

  f.at(600);
  const third = f.delivery();
  f.merge();
  await third;
  // Past the first stamp's end: the event's page uses the renewed stamp, read before the event.
  expect(f.stampReads).toEqual([0, 450]);
  expect(f.hashes.at(-1)).toBe(2n);
  expect(f.batches).toHaveLength(3);
  await f.close();
});

test('a stamp that expired between deliveries is read again before the next page', async () => {
  const f = fixture();
  const first = f.delivery();
  f.merge();
  await first;
  expect(f.stampReads).toEqual([0]);
  // No delivery while it was due soon: nothing renewed it, so the event reads it itself.
  f.at(700);
  const second = f.delivery();
  f.merge();
  await second;
  expect(f.stampReads).toEqual([0, 700]);
  // Delivered at 700, due at 1,200: not renewed.
  await f.queued();
  expect(f.stampReads).toEqual([0, 700]);
  expect(f.hashes.at(-1)).toBe(2n);
  await f.close();
});
