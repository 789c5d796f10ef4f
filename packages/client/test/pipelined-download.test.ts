/**
 * The pipelined initial download through a fake transport that serves a fixed list of pages the
 * way the server does (continuation cursor per page, one record per reply), counting what is
 * requested, delivered and applied. No timings: the order of requests and applications is
 * observed through the transport and the `progress` events.
 *
 * - pipelining: the request for page j+1 is made while page j is not yet applied;
 * - interrupted on page k (network failure, retried): the retry resumes after page k-1, every page
 *   is delivered and applied exactly once, the device ends identical to the source;
 * - a crash on page k (device closed, file reopened): the new session resumes after page k-1;
 * - a page that fails to apply leaves the resume point on the page before it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openDatabase, SyncNetworkError } from '../src/sync/index.ts';
import type { Cursor, OffSyncDatabase, PageRef, PullBatch, PullRequest, SyncTransport } from '../src/sync/index.ts';
import { device, removeTempDirs, rows, tempPath } from './helpers.ts';

const VERSIONS = 12;
const ROWS_PER_VERSION = 40;
const PAGES = 6;

/** Continuation cursor after page j (the fake's encoding: any number ≥ BASE names "resume at page j+1"). */
const BASE = 1000;
const cursorAfter = (j: number): number => BASE + j + 1;

let source: OffSyncDatabase;
let payloads: Uint8Array[] = [];
let watermark = 0;

beforeAll(() => {
  source = device();
  const ins = source.db.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, ?)');
  for (let v = 0; v < VERSIONS; v++) {
    source.db.transaction(() => {
      for (let i = 0; i < ROWS_PER_VERSION; i++) ins.run(`r${v}_${i}`, `title ${v}/${i}`, i % 2);
    })();
  }
  // Cut the source's feed into pages of equal size, never between two changes of one (db_version, seq).
  const changes = [...source.engine.changes({})];
  expect(changes.length).toBeGreaterThanOrEqual(VERSIONS * ROWS_PER_VERSION);
  const encoders = Array.from({ length: PAGES }, () => source.engine.payloadEncoder());
  const per = Math.ceil(changes.length / PAGES);
  for (const [i, c] of changes.entries()) {
    const prev = changes[i - 1];
    if (i % per === 0 && prev !== undefined) expect([prev.dbVersion, prev.seq]).not.toEqual([c.dbVersion, c.seq]);
    encoders[Math.floor(i / per)]?.add(c);
  }
  payloads = encoders.map((e) => e.finish() ?? new Uint8Array());
  watermark = source.engine.dbVersion();
});

afterAll(async () => {
  await source.close();
  removeTempDirs();
});

interface FakeServer {
  transport: SyncTransport;
  /** Every `check` request, with how many pages the device had applied when it was made. */
  pulls: Array<{ req: PullRequest; appliedBefore: number }>;
  /** Indexes of the pages handed to the device (inline in a reply, or by GET). */
  delivered: number[];
  /** Every page GET, with how many pages the device had applied when it was made. */
  gets: Array<{ page: number; appliedBefore: number }>;
}

/**
 * Serves `payloads` like the G3 server: a reply holds up to `maxChunks` pages after the position
 * named by `cursor` (0 or unknown: from the start), each page with the continuation cursor after
 * it; the last page is final with the watermark. `fail(page)` returning true makes the delivery
 * of that page fail with a network error. `urls`: pages travel as URLs fetched by `download`.
 */
function fakeServer(opts: { applied: () => number; fail?: (page: number) => boolean; urls?: boolean; corrupt?: (page: number) => boolean }): FakeServer {
  const pulls: FakeServer['pulls'] = [];
  const delivered: number[] = [];
  const gets: FakeServer['gets'] = [];
  const bytesOf = (j: number): Uint8Array => {
    const p = payloads[j] as Uint8Array;
    return opts.corrupt?.(j) === true ? p.slice(0, 20) : p;
  };
  const deliver = (j: number): Uint8Array => {
    if (opts.fail?.(j) === true) throw new SyncNetworkError(`connection reset on page ${j}`);
    delivered.push(j);
    return bytesOf(j);
  };
  const transport: SyncTransport = {
    push: () => Promise.reject(new Error('nothing to push')),
    status: () => Promise.resolve(null),
    subscribe: () => ({ close: () => undefined }),
    async pull(req: PullRequest): Promise<PullBatch> {
      pulls.push({ req: { ...req }, appliedBefore: opts.applied() });
      const from = req.cursor >= BASE && req.cursor - BASE < PAGES ? req.cursor - BASE : 0;
      const n = Math.min(req.maxChunks ?? 16, PAGES - from);
      const pages: PageRef[] = [];
      for (let j = from; j < from + n; j++) {
        const page: PageRef = opts.urls === true ? { url: `fake://page/${j}` } : { payload: deliver(j) };
        page.cursor = cursorAfter(j);
        if (j === PAGES - 1) page.watermark = watermark;
        pages.push(page);
      }
      const final = from + n === PAGES;
      const batch: PullBatch = { kind: 'pages', pages, final, nextCursor: cursorAfter(from + n - 1) };
      if (final) batch.watermark = watermark;
      return batch;
    },
    async download(url: string): Promise<Uint8Array> {
      const page = Number(url.slice('fake://page/'.length));
      gets.push({ page, appliedBefore: opts.applied() });
      return deliver(page);
    },
  };
  return { transport, pulls, delivered, gets };
}

/** A fresh device on `transport`, counting applied pages through `progress`. */
function target(transport: () => SyncTransport, path = tempPath(), extra: { maxChunks?: number; maxAttempts?: number } = {}): { d: OffSyncDatabase; applied: number[]; resumeAt: number[]; cursorAt: Cursor[] } {
  const d = device({ path, transport: transport(), retryWait: async () => undefined, ...extra });
  const applied: number[] = [];
  const resumeAt: number[] = [];
  const cursorAt: Cursor[] = [];
  d.on('progress', (p) => {
    applied.push(p.chunks);
    resumeAt.push(d.settings.resumeCursor());
    cursorAt.push(d.settings.cursor());
  });
  return { d, applied, resumeAt, cursorAt };
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const allPages = Array.from({ length: PAGES }, (_, j) => j);

describe.each([
  { name: 'inline pages, one per check', urls: false, maxChunks: undefined },
  { name: 'page URLs, three per check', urls: true, maxChunks: 3 },
])('pipelined download ($name)', ({ urls, maxChunks }) => {
  const extra = maxChunks === undefined ? {} : { maxChunks };

  test('asks for the next page before it applies the current one', async () => {
    let applied = 0;
    const srv = fakeServer({ applied: () => applied, urls });
    const t = target(() => srv.transport, tempPath(), extra);
    t.d.on('progress', () => applied++);
    const r = await t.d.receive();
    expect(r).toMatchObject({ complete: true, chunks: PAGES });
    expect(rows(t.d)).toEqual(rows(source));
    expect(sorted(srv.delivered)).toEqual(allPages);
    // Every check after the first was made before the page preceding it was applied.
    const per = maxChunks ?? 1;
    expect(srv.pulls.map((p) => p.req.cursor)).toEqual(Array.from({ length: PAGES / per }, (_, b) => (b === 0 ? 0 : cursorAfter(b * per - 1))));
    for (const [b, p] of srv.pulls.entries()) if (b > 0) expect(p.appliedBefore).toBe(b * per - 1);
    // A page URL after the first of its batch was fetched while the page before it was not yet applied.
    expect(srv.gets.map((g) => g.page)).toEqual(urls ? allPages : []);
    for (const g of srv.gets) expect(g.appliedBefore).toBe(g.page % per === 0 ? g.page : g.page - 1);
    // The durable cursor moved only with the final page; the resume point followed each page.
    expect(t.cursorAt.slice(0, -1).every((c) => c.dbVersion === 0 && c.seq === 0)).toBe(true);
    expect(t.resumeAt).toEqual([...allPages.slice(0, -1).map(cursorAfter), 0]);
    expect(t.d.settings.cursor()).toEqual({ dbVersion: watermark, seq: 0 });
    await t.d.close();
  });

  test.each([1, 3, 5])('a network failure on page %i: the retry resumes after the last applied page, nothing applied twice or skipped', async (k) => {
    let applied = 0;
    let failed = 0;
    const srv = fakeServer({ applied: () => applied, urls, fail: (j) => j === k && failed++ === 0 });
    const t = target(() => srv.transport, tempPath(), extra);
    t.d.on('progress', () => applied++);
    const errors: unknown[] = [];
    t.d.on('error', (e) => errors.push(e.error));
    const r = await t.d.receive(); // the async API retries the retryable failure
    expect(failed).toBe(2); // failed once, then delivered
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SyncNetworkError);
    expect(r.complete).toBe(true);
    // Each page delivered once and applied once, across both runs.
    expect(srv.delivered).toEqual(allPages);
    expect(applied).toBe(PAGES);
    // The retry's first check resumed at the continuation cursor of page k-1.
    const resumed = srv.pulls.find((p) => p.appliedBefore === k && p.req.cursor === cursorAfter(k - 1) && p.req.dbVersion === 0);
    expect(resumed).toBeDefined();
    expect(srv.pulls.filter((p) => p.req.cursor === 0)).toHaveLength(1);
    expect(rows(t.d)).toEqual(rows(source));
    expect(t.d.settings.cursor()).toEqual({ dbVersion: watermark, seq: 0 });
    expect(t.d.settings.resumeCursor()).toBe(0);
    await t.d.close();
  });

  test('a crash on page 4: the reopened database resumes after page 3 and ends identical', async () => {
    const path = tempPath();
    let applied = 0;
    const down = fakeServer({ applied: () => applied, urls, fail: (j) => j === 4 });
    const a = target(() => down.transport, path, { ...extra, maxAttempts: 1 });
    a.d.on('progress', () => applied++);
    a.d.on('error', () => undefined);
    await expect(a.d.receive()).rejects.toBeInstanceOf(SyncNetworkError);
    expect(applied).toBe(4);
    expect(a.d.settings.cursor()).toEqual({ dbVersion: 0, seq: 0 });
    expect(a.d.settings.resumeCursor()).toBe(cursorAfter(3));
    await a.d.close();

    // "Restart": a new process opens the same file; the server still knows the cursor.
    const up = fakeServer({ applied: () => applied });
    const b = openDatabase(path, { transport: up.transport, ...extra });
    b.on('progress', () => applied++);
    const r = await b.receive();
    expect(r).toMatchObject({ complete: true, chunks: PAGES - 4 });
    expect(up.pulls[0]?.req).toMatchObject({ dbVersion: 0, seq: 0, cursor: cursorAfter(3) });
    expect([...down.delivered.filter((j) => j < 4), ...up.delivered]).toEqual(allPages);
    expect(applied).toBe(PAGES);
    expect(rows(b)).toEqual(rows(source));
    expect(b.settings.cursor()).toEqual({ dbVersion: watermark, seq: 0 });
    await b.close();
  });
});

test('a page that fails to apply keeps the resume point on the page before it; the next receive applies it', async () => {
  let applied = 0;
  let corrupted = 0;
  const srv = fakeServer({ applied: () => applied, corrupt: (j) => j === 2 && corrupted++ === 0 });
  const t = target(() => srv.transport);
  t.d.on('progress', () => applied++);
  const first = await t.d.receive();
  expect(first.error).toBeDefined();
  expect(first).toMatchObject({ complete: false, chunks: 2 });
  expect(t.d.settings.resumeCursor()).toBe(cursorAfter(1));
  expect(t.d.settings.cursor()).toEqual({ dbVersion: 0, seq: 0 });
  const second = await t.d.receive();
  expect(second).toMatchObject({ complete: true, chunks: PAGES - 2 });
  expect(srv.pulls.filter((p) => p.req.cursor === cursorAfter(1))).toHaveLength(2); // page 2 asked for again, not page 0
  expect(applied).toBe(PAGES);
  expect(rows(t.d)).toEqual(rows(source));
});

test('an unknown continuation cursor (expired on the server) restarts at the durable cursor: re-sent, never skipped', async () => {
  const path = tempPath();
  let applied = 0;
  const down = fakeServer({ applied: () => applied, fail: (j) => j === 3 });
  const a = target(() => down.transport, path, { maxAttempts: 1 });
  a.d.on('progress', () => applied++);
  a.d.on('error', () => undefined);
  await expect(a.d.receive()).rejects.toBeInstanceOf(SyncNetworkError);
  await a.d.close();
  // A server that lost the record answers the stored cursor like cursor 0 (its own cursors work).
  const lost = fakeServer({ applied: () => applied });
  const pull = lost.transport.pull.bind(lost.transport);
  const stale = cursorAfter(2);
  let first = true;
  lost.transport.pull = (req) => {
    const known = !(first && req.cursor === stale);
    first = false;
    return pull(known ? req : { ...req, cursor: 0 });
  };
  const b = openDatabase(path, { transport: lost.transport });
  expect(b.settings.resumeCursor()).toBe(cursorAfter(2));
  const r = await b.receive();
  expect(r).toMatchObject({ complete: true, chunks: PAGES });
  expect(lost.delivered).toEqual(allPages);
  expect(rows(b)).toEqual(rows(source));
  await b.close();
});
