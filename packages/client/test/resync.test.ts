/**
 * Resync after `resync_required` (src/sync/resync.ts; docs/PROTOCOL.md "Compaction and the resync
 * horizon"), against the real sync HTTP handler: a device is away while the others delete rows
 * and the server compacts their tombstones; back, its download is refused with 410
 * resync_required (and, in the second test, its upload too), so it keeps its offline edits,
 * clears its synced state, downloads from 0 and writes the edits again: it ends identical to the
 * server and its offline edits reach the server and the other device.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '@offsync/api/sync';
import type { SyncService } from '@offsync/api/sync';
import type { OffSyncDatabase, ResyncResult } from '../src/sync/index.ts';
import { createSyncServer, listen } from './fixtures/sync-server.ts';
import type { SyncServer } from './fixtures/sync-server.ts';
import { device, removeTempDirs, rows, until } from './helpers.ts';

let srv: SyncServer;
let url: string;

beforeAll(async () => {
  srv = createSyncServer({ databaseId: 'db_resync' });
  url = `http://127.0.0.1:${await listen(srv.server)}`;
});
afterAll(async () => {
  await srv.close();
  removeTempDirs();
});

/** The central engine (open: the devices synced through the handler). */
function centralEngine(): NonNullable<ReturnType<SyncService['databases']['peek']>> {
  const e = srv.handler.service.databases.peek(srv.databaseId);
  if (e === undefined) throw new Error('central database not open');
  return e;
}

/** a deletes and re-inserts while `away` is gone; both a's acknowledgements pass it; the server compacts. */
async function churnAndCompact(a: OffSyncDatabase, tag: string): Promise<void> {
  a.db.prepare('DELETE FROM todos WHERE id IN (?, ?)').run(`${tag}1`, `${tag}2`);
  await a.sync();
  a.db.prepare("INSERT INTO todos (id, title) VALUES (?, 'again')").run(`${tag}2`);
  // A download only moves a's cursor when it brings something: another device writes once.
  const other = device({ serverUrl: url, databaseId: srv.databaseId });
  other.db.prepare("INSERT INTO todos (id, title) VALUES (?, 'tick')").run(`${tag}-tick`);
  await other.sync();
  await other.close();
  await a.sync();
  // Compaction as the server plans it (api compaction.ts), up to what a acknowledged; the device
  // that was away is past the horizon.
  const upTo = (await a.status()).cursor.dbVersion;
  const r = centralEngine().compact({ upTo });
  expect(r.rows).toBeGreaterThan(0);
}

function watch(d: OffSyncDatabase): ResyncResult[] {
  const seen: ResyncResult[] = [];
  d.on('resync', (r) => seen.push(r));
  return seen;
}

test('a download refused with 410 resync_required: the device downloads from 0, keeps its offline edits and sends them', async () => {
  const a = device({ serverUrl: url, databaseId: srv.databaseId });
  const away = device({ serverUrl: url, databaseId: srv.databaseId });
  try {
    a.db.exec("INSERT INTO todos (id, title) VALUES ('p1', 'one'), ('p2', 'two'), ('p3', 'three'), ('p4', 'four')");
    await a.sync();
    await away.sync();
    expect(rows(away)).toEqual(rows(a));
    const aResyncs = watch(a);
    const oldSite = away.siteId;
    await churnAndCompact(a, 'p');
    // Offline edits of the device that was away: an update, an insert and a delete.
    away.db.exec("UPDATE todos SET title = 'edited offline' WHERE id = 'p3'; INSERT INTO todos (id, title) VALUES ('away-new', 'offline insert'); DELETE FROM todos WHERE id = 'p4'");
    const resyncs = watch(away);
    const r = await away.receive();
    expect(r.complete).toBe(true);
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]).toMatchObject({ saved: 3, restored: 3, complete: true });
    // A new site: the server leaves a site's own changes out of its downloads.
    expect(away.siteId).not.toBe(oldSite);
    // The forgotten deletion is gone with the rest of the old state; the edits are back, pending.
    expect(rows(away).map((x) => x['id'])).toEqual(['away-new', 'p-tick', 'p2', 'p3']);
    expect(rows(away).find((x) => x['id'] === 'p2')?.['title']).toBe('again');
    expect((await away.status()).pendingLocal).toBe(true);
    await away.sync();
    await a.sync();
    const expected = [
      { id: 'away-new', title: 'offline insert', done: 0 },
      { id: 'p-tick', title: 'tick', done: 0 },
      { id: 'p2', title: 'again', done: 0 },
      { id: 'p3', title: 'edited offline', done: 0 },
    ];
    expect(srv.central()).toEqual(expected);
    expect(rows(away)).toEqual(expected);
    expect(rows(a)).toEqual(expected);
    // And it syncs on normally.
    a.db.exec("UPDATE todos SET done = 1 WHERE id = 'away-new'");
    await a.sync();
    await away.sync();
    expect(rows(away)).toEqual(rows(a));
    expect(resyncs).toHaveLength(1);
    expect(aResyncs).toEqual([]);
  } finally {
    await a.close();
    await away.close();
  }
}, 120_000);

test('an upload refused with resync_required (as the compaction upload guard does): sync() resyncs, then sends the kept edits', async () => {
  const service = srv.handler.service;
  const a = device({ serverUrl: url, databaseId: srv.databaseId });
  const away = device({ serverUrl: url, databaseId: srv.databaseId });
  const site = away.siteId; // (the device takes a new one when it resyncs)
  // The upload guard of api's installCompaction reads the device cursors the control plane
  // records (trackDeviceSyncState), which this standalone server does not run: the same refusal,
  // with the same error, for the site whose cursor is below the floor.
  let belowFloor = false;
  const upload = service.upload.bind(service);
  service.upload = (...args) => {
    if (belowFloor && args[1].toLowerCase() === site) return Promise.reject(new SyncError('resync_required', 'This device must download from version 0 before uploading.'));
    return upload(...args);
  };
  try {
    a.db.exec("INSERT INTO todos (id, title) VALUES ('q1', 'one'), ('q2', 'two'), ('q3', 'three')");
    await a.sync();
    await away.sync();
    const aResyncs = watch(a);
    await churnAndCompact(a, 'q');
    belowFloor = true;
    away.db.exec("UPDATE todos SET title = 'away edit' WHERE id = 'q3'; INSERT INTO todos (id, title, done) VALUES ('q9', 'away insert', 1)");
    const resyncs = watch(away);
    const errors: unknown[] = [];
    away.on('error', (e) => errors.push(e.error));
    const r = await away.sync();
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]).toMatchObject({ saved: 2, restored: 2, complete: true });
    expect(away.siteId).not.toBe(site);
    expect(r.send.status).toBe('synced');
    expect(r.send.lastFailure).toBeUndefined();
    expect(r.receive.complete).toBe(true);
    expect(errors).toEqual([]);
    const central = srv.central().filter((x) => String(x['id']).startsWith('q'));
    expect(central).toEqual([
      { id: 'q-tick', title: 'tick', done: 0 },
      { id: 'q2', title: 'again', done: 0 },
      { id: 'q3', title: 'away edit', done: 0 },
      { id: 'q9', title: 'away insert', done: 1 },
    ]);
    expect(rows(away)).toEqual(srv.central());
    await a.sync();
    expect(rows(a)).toEqual(srv.central());
    expect(aResyncs).toEqual([]);
  } finally {
    service.upload = upload;
    await a.close();
    await away.close();
  }
}, 120_000);

test('live mode (polling): a poll refused with resync_required resyncs and the kept edit goes out', async () => {
  const a = device({ serverUrl: url, databaseId: srv.databaseId });
  const away = device({ serverUrl: url, databaseId: srv.databaseId, pollMs: 20 });
  try {
    a.db.exec("INSERT INTO todos (id, title) VALUES ('r1', 'one'), ('r2', 'two'), ('r3', 'three')");
    await a.sync();
    await away.sync();
    await churnAndCompact(a, 'r');
    away.db.exec("UPDATE todos SET title = 'live edit' WHERE id = 'r3'");
    const resynced = new Promise<ResyncResult>((ok) => away.once('resync', ok));
    away.start();
    expect(await resynced).toMatchObject({ complete: true });
    await until(() => srv.central().some((x) => x['id'] === 'r3' && x['title'] === 'live edit'), 60_000);
    await away.stop();
    expect(rows(away)).toEqual(srv.central());
    await a.sync();
    expect(rows(a)).toEqual(srv.central());
  } finally {
    await a.close();
    await away.close();
  }
}, 120_000);
