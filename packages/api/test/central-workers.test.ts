/**
 * Work off the event loop (issue 9, item 3; docs/ARCHITECTURE.md "Work off the event loop"): SQLite
 * merges and long downloads run in central worker threads, so other requests are answered while a
 * large merge runs, and a worker that dies fails only its own job (retryable, nothing applied).
 * Ordering, not timing: the other requests must COMPLETE while the big upload is still pending,
 * which cannot happen when the merge holds the main thread.
 */
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { centralRows, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

let t: RunningApp;
let db: { databaseId: string; apiKey: string };

beforeAll(async () => {
  t = await startApp({ rateLimitPerSecond: 0 });
  db = await setupDatabase(t);
});
afterAll(async () => t?.dispose());

/** A device holding `n` fresh rows, ready to upload them in one inline G3 apply. */
function bigDevice(n: number): TestDevice {
  const d = new TestDevice(t, db.databaseId, db.apiKey);
  const ins = d.engine.driver.prepare('INSERT INTO todos (id, user_id, title) VALUES (?, ?, ?)');
  d.engine.driver.transaction(() => {
    for (let i = 0; i < n; i++) ins.run(`big-${d.site.slice(-8)}-${i}`, 'u1', `title ${i} ${'x'.repeat(40)}`);
  });
  return d;
}

/** Resolves once a job is in a central worker (checked on every turn of the event loop, no fixed delay). */
async function mergeStarted(): Promise<void> {
  const workers = t.app.syncHttp.service.workers;
  expect(workers).toBeDefined();
  while ((workers?.inFlight() ?? 0) === 0) await new Promise((r) => setImmediate(r));
}

test('while a large merge runs, /status and GraphQL are answered before it finishes', async () => {
  const big = bigDevice(100_000);
  let uploadDone = false;
  const upload = big.upload().then((r) => {
    uploadDone = true;
    return r;
  });
  const other = new TestDevice(t, db.databaseId, db.apiKey);
  await mergeStarted();
  const status = await http('GET', other.url('status'), db.apiKey);
  const gql = await t.gql<{ database: { id: string } }>('query($d: ID!) { database(id: $d) { id } }', { d: db.databaseId });
  const answeredDuringMerge = !uploadDone;
  const up = await upload;
  expect(status.status).toBe(200);
  expect(gql.database.id).toBe(db.databaseId);
  expect(up.status).toBe(200);
  expect(up.body).toMatchObject({ lastOptimisticVersion: big.engine.dbVersion() });
  expect(answeredDuringMerge).toBe(true);
  expect(centralRows(t, db.databaseId).length).toBe(100_000);
});

test('a central worker that dies mid-merge fails only that upload (503 server_busy, nothing applied); the next upload works', async () => {
  const d = bigDevice(60_000);
  const before = centralRows(t, db.databaseId).length;
  const pending = d.upload();
  // Kill every central worker thread of this process while the merge runs.
  await mergeStarted();
  const workers = t.app.syncHttp.service.workers?.threads() ?? [];
  expect(workers.length).toBeGreaterThan(0);
  await Promise.all(workers.map((w) => w.terminate()));
  const r = await pending;
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ failures: { apply: { code: 'server_busy', retryable: true } } });
  expect(centralRows(t, db.databaseId).length).toBe(before);
  // The device re-sends (its window was not acknowledged): a new worker merges it.
  const again = await d.upload();
  expect(again.body).not.toHaveProperty('failures');
  expect(centralRows(t, db.databaseId).length).toBe(before + 60_000);
});

test('a download with thousands of entries left is built in a central worker even within one version; one at the head on the main thread', async () => {
  const workers = t.app.syncHttp.service.workers;
  expect(workers).toBeDefined();
  if (workers === undefined) return;
  const central = t.app.sync.databases.peek(db.databaseId);
  const before = central?.dbVersion() ?? 0;
  // A client that stamps a whole transaction with one version (as SQLite Sync's do): 6,000 rows in
  // one device version, one central version; the version distance alone says "short".
  const d = bigDevice(6000);
  const changes = [...d.engine.changes({ localOnly: true })].map((c, i) => ({ ...c, dbVersion: 1, seq: i }));
  const payload = d.engine.encodeChanges(changes);
  expect(payload).not.toBeNull();
  const up = await http('POST', d.url('apply'), db.apiKey, { blob: Buffer.from(payload ?? new Uint8Array()).toString('base64'), dbVersionMin: 1, dbVersionMax: 1 });
  expect(up.status).toBe(200);
  expect(up.body).not.toHaveProperty('failures');
  const head = central?.dbVersion() ?? 0;
  expect(head - before).toBeLessThan(10);
  const run = vi.spyOn(workers, 'run');
  try {
    const behind = new TestDevice(t, db.databaseId, db.apiKey);
    behind.cursor = { dbVersion: before, seq: 0 };
    expect((await behind.download()).status).toBe(200);
    expect(run.mock.calls.map(([job]) => job.kind)).toContain('scan');
    run.mockClear();
    const current = new TestDevice(t, db.databaseId, db.apiKey);
    current.cursor = { dbVersion: head, seq: 0 };
    expect((await current.download()).status).toBe(200);
    expect(run.mock.calls.map(([job]) => job.kind)).not.toContain('scan');
  } finally {
    run.mockRestore();
  }
});
