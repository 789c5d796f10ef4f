/**
 * `close()` while a sync is in progress: the run stops before its next request, what it applied
 * stays applied with its cursor saved, the connections close only after the run has ended, and
 * every call made meanwhile or afterwards rejects with SyncError `closed`. Driven through a fake
 * transport whose replies the test releases by hand (no timings).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openDatabase, SyncError, SyncNetworkError } from '../src/sync/index.ts';
import type { ErrorEvent, OffSyncDatabase, PullBatch, PullRequest, SyncTransport } from '../src/sync/index.ts';
import { device, removeTempDirs, rows, tempPath } from './helpers.ts';

const PAGES = 4;
const BASE = 1000;

let source: OffSyncDatabase;
let payloads: Uint8Array[] = [];

beforeAll(() => {
  source = device();
  const ins = source.db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
  for (let v = 0; v < PAGES; v++) source.db.transaction(() => {
    for (let i = 0; i < 25; i++) ins.run(`r${v}_${i}`, `title ${v}/${i}`, i % 2);
  })();
  // 25 rows a page, cut between db_versions (never inside one (db_version, seq)).
  const encoders = Array.from({ length: PAGES }, () => source.engine.payloadEncoder());
  const versions: number[] = [];
  for (const c of source.engine.changes({})) {
    if (versions.at(-1) !== c.dbVersion) versions.push(c.dbVersion);
    encoders[Math.floor((versions.length - 1) / 25)]?.add(c);
  }
  expect(versions).toHaveLength(PAGES * 25);
  payloads = encoders.map((e) => e.finish() ?? new Uint8Array());
  expect(payloads).toHaveLength(PAGES);
});

afterAll(async () => {
  await source.close();
  removeTempDirs();
});

interface Held {
  transport: SyncTransport;
  /** Pull requests waiting for the test to release them. */
  waiting: Array<{ req: PullRequest; release: () => void }>;
  /** Resolves when the next pull request arrives. */
  nextPull: () => Promise<void>;
}

/** Serves one page per pull (cursor BASE + j = "after page j"), each reply held until released. */
function heldServer(): Held {
  const waiting: Held['waiting'] = [];
  let arrived: (() => void) | undefined;
  const transport: SyncTransport = {
    push: () => Promise.reject(new Error('nothing to push')),
    status: () => Promise.resolve(null),
    subscribe: () => ({ close: () => undefined }),
    download: () => Promise.reject(new Error('no page URLs')),
    pull(req: PullRequest): Promise<PullBatch> {
      const j = req.cursor >= BASE ? req.cursor - BASE + 1 : 0;
      return new Promise((resolve) => {
        const release = (): void => {
          const final = j === PAGES - 1;
          resolve({ kind: 'pages', pages: [{ payload: payloads[j] as Uint8Array, cursor: BASE + j }], final, nextCursor: BASE + j, ...(final ? { watermark: source.engine.dbVersion() } : {}) });
        };
        waiting.push({ req, release });
        arrived?.();
      });
    },
  };
  const nextPull = (): Promise<void> => new Promise((r) => (arrived = r));
  return { transport, waiting, nextPull };
}

test('close() during a download waits for the run, which stops at its next request with what it applied kept', async () => {
  const path = tempPath();
  const s = heldServer();
  const d = device({ path, transport: s.transport, maxChunks: 1 });
  const errors: ErrorEvent[] = [];
  d.on('error', (e) => errors.push(e));

  let pulled = s.nextPull();
  const run = d.sync();
  const outcome = run.then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await pulled;
  pulled = s.nextPull();
  s.waiting[0]?.release(); // page 0 arrives and is applied
  await pulled; // the run asked for page 1 (or prefetched it) before close
  let closed = false;
  const closing = d.close().then(() => (closed = true));
  // The database stays open while the run holds a reply: releasing it must not hit a closed connection.
  expect(d.db.open).toBe(true);
  for (const w of s.waiting.slice(1)) w.release();
  await closing;
  expect(closed).toBe(true);
  expect(d.db.open).toBe(false);

  const e = await outcome;
  expect(e).toBeInstanceOf(SyncError);
  expect((e as SyncError).code).toBe('closed');
  expect(errors).toEqual([]); // closing is not a failure to report

  // Nothing past page 2 was requested: the run stopped at the request after the one in flight.
  expect(s.waiting.length).toBeLessThanOrEqual(3);
  // What was applied is kept, and the next session resumes after it.
  const again = openDatabase(path, { transport: heldServer().transport });
  const applied = rows(again);
  expect(applied.length).toBeGreaterThanOrEqual(25);
  expect(applied.length % 25).toBe(0);
  expect(applied.length).toBeLessThan(PAGES * 25);
  expect(again.settings.resumeCursor()).toBe(BASE + applied.length / 25 - 1);
  await again.close();
});

test('sync() and status() on a closed database reject with SyncError closed; close() is idempotent', async () => {
  const d = device({ transport: heldServer().transport });
  const first = d.close();
  expect(d.close()).toBe(first);
  await first;
  for (const call of [() => d.sync(), () => d.receive(), () => d.status()]) {
    const e = await call().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SyncError);
    expect((e as SyncError).code).toBe('closed');
  }
});

test('close() cuts a retry backoff short instead of waiting it out', async () => {
  let calls = 0;
  let failed: (() => void) | undefined;
  const firstFailure = new Promise<void>((r) => (failed = r));
  const transport: SyncTransport = {
    ...heldServer().transport,
    pull: () => {
      calls++;
      failed?.();
      return Promise.reject(new SyncNetworkError('connection refused'));
    },
  };
  // A one-hour backoff: the test can only finish if close() aborts the wait.
  const d = device({ transport, baseMs: 3_600_000, maxMs: 3_600_000, maxAttempts: 5 });
  const outcome = d.sync().then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await firstFailure;
  await d.close();
  const e = await outcome;
  expect((e as SyncError).code).toBe('closed');
  expect(calls).toBe(1);
});
