/**
 * Tombstone compaction decided by the server (src/domains/sync/compaction.ts): two devices churn
 * and both acknowledge, compaction at their min acknowledged version shrinks the metadata; a
 * third device away beyond the resync horizon (fake clock) gets 410 resync_required on download
 * and upload (its backlog estimate still answers and says it must resync), then a fresh download
 * from 0 converges.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeBacklogs, readDeviceStates, trackDeviceSyncState } from '../src/domains/devices/index.ts';
import { installCompaction } from '../src/domains/sync/index.ts';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';

const DAY = 86_400_000;
// Starts at the real time: the site registry stamps first claims with it.
let clock = Date.now();
let t: TestServer & { origin: string };
const DB = 'compactdb';
// The control plane's device registry, as recordDeviceSeen keeps it: every call stamps lastSyncAt.
const lastSync = new Map<string, number>();
const prisma = {
  device: { findMany: () => Promise.resolve([...lastSync].map(([siteId, at]) => ({ siteId, lastSyncAt: new Date(at) }))) },
  database: { findMany: () => Promise.resolve([{ id: DB }]) },
} as unknown as Parameters<typeof installCompaction>[1];

beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: DB }], http: { now: () => clock } });
  trackDeviceSyncState(t.handler.service, { now: () => clock });
  installCompaction(t.handler.service, prisma, { now: () => clock, horizonMs: 30 * DAY });
});
afterAll(async () => t.close());

const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-chunks' };
const base = (d: Device): string => `${t.origin}/v2/cloudsync/databases/${DB}/${siteHex(d)}`;

interface Peer {
  d: Device;
  sent: number;
  /** Server watermark downloaded through. */
  cursor: number;
}

async function upload(p: Peer): Promise<{ status: number; text: string }> {
  lastSync.set(siteHex(p.d), clock);
  const payload = ownPayload(p.d, p.sent);
  const v = p.d.dbVersion();
  if (payload === null) return { status: 200, text: '' };
  const r = await call('POST', `${base(p.d)}/apply`, { headers: G3, json: { blob: Buffer.from(payload).toString('base64'), dbVersionMin: p.sent + 1, dbVersionMax: v } });
  if (r.status === 200) p.sent = v;
  return r;
}

async function download(p: Peer): Promise<{ status: number; text: string }> {
  lastSync.set(siteHex(p.d), clock);
  const r = await call('POST', `${base(p.d)}/check`, { headers: G3, json: { dbVersion: p.cursor, seq: 0, cursor: 0 } });
  if (r.status !== 200) return r;
  if (r.text !== '') {
    const data = (r.json() as { data: { payload: string; watermark: number; final: boolean } }).data;
    expect(data.final).toBe(true);
    p.d.applyPayload(new Uint8Array(Buffer.from(data.payload, 'base64')));
    p.cursor = data.watermark;
  }
  return r;
}

async function sync(p: Peer): Promise<void> {
  expect((await upload(p)).status).toBe(200);
  expect((await download(p)).status).toBe(200);
}

const central = () => t.handler.service.databases.peek(DB);
function metadataBytes(): number {
  const e = central();
  if (e === undefined) throw new Error('central database not open');
  let sum = 0;
  for (const r of e.driver.prepare('SELECT name, sum(payload) AS p FROM dbstat GROUP BY name').all()) {
    if (/__crdt_|^offsync_tombstones$/.test(String(r['name']))) sum += Number(r['p']);
  }
  return sum;
}
const codeOf = (r: { text: string }): string | undefined => (JSON.parse(r.text) as { errors: Array<{ code: string }> }).errors[0]?.code;

describe('compaction decided by the devices’ acknowledgements', () => {
  test('churn, acknowledgements, compaction; a device past the horizon must resync from 0', async () => {
    const a: Peer = { d: newDevice(), sent: 0, cursor: 0 };
    const b: Peer = { d: newDevice(), sent: 0, cursor: 0 };
    const away: Peer = { d: newDevice(), sent: 0, cursor: 0 };
    insertTodos(a.d, 5, 'keep');
    await sync(a);
    await sync(b);
    await sync(away);
    expect((await download(away)).status).toBe(200); // its cursor now is the watermark it holds
    const awayCursor = away.cursor;
    // Ten rounds of insert/delete churn between a and b.
    for (let round = 0; round < 10; round++) {
      insertTodos(a.d, 20, `r${round}-`);
      await sync(a);
      await sync(b);
      b.d.driver.prepare("DELETE FROM todos WHERE id LIKE ?").run(`r${round}-%`);
      await sync(b);
      await sync(a);
    }
    // Both acknowledge everything (their next check carries the last watermark).
    await sync(a);
    await sync(b);
    const compaction = installCompaction(t.handler.service, prisma, { now: () => clock, horizonMs: 30 * DAY });
    // Within the horizon, the absent device holds compaction back at what it acknowledged.
    const held = await compaction.compact(DB);
    expect(held.upTo).toBe(awayCursor);
    expect(held.rows).toBe(0);
    const before = metadataBytes();
    // 31 days later only a and b have been seen since: the absent device is past the horizon.
    clock += 31 * DAY;
    // A device's acknowledgement is the cursor of its next check; b's own deletions never move
    // its cursor, so a writes once more and both check twice.
    insertTodos(a.d, 1, 'keep-late');
    for (let i = 0; i < 2; i++) {
      await sync(a);
      await sync(b);
    }
    const r = await compaction.compact(DB);
    expect(r.devicesPastHorizon).toBe(1);
    expect(r.upTo).toBeGreaterThan(awayCursor);
    expect(r.rows).toBe(200);
    expect(metadataBytes()).toBeLessThan(before / 3);
    // The Device.backlog estimate (devices.schema.ts) still answers for a device below the floor,
    // and says it must resync; a device above it is counted exactly.
    const e = central();
    if (e === undefined) throw new Error('central database not open');
    const sites = [away, a].map((p) => siteHex(p.d));
    const states = readDeviceStates(e, sites);
    const backlogs = computeBacklogs(e, sites.map((siteId) => ({ siteId, cursorDbVersion: states.get(siteId)?.cursor?.dbVersion ?? 0 })));
    expect(backlogs.get(siteHex(away.d))).toMatchObject({ cursorDbVersion: awayCursor, resyncRequired: true, exact: false });
    expect(backlogs.get(siteHex(away.d))?.changes).toBeGreaterThan(0);
    expect(backlogs.get(siteHex(a.d))).toMatchObject({ resyncRequired: false, exact: true });
    // The absent device comes back: its download and its upload are refused, nothing applied.
    away.d.driver.exec("INSERT INTO todos (id, title) VALUES ('away-1', 'offline write')");
    const down = await download(away);
    expect(down.status).toBe(410);
    expect(codeOf(down)).toBe('resync_required');
    // G3 reports a refused apply inside a 200 SyncStatus (docs/PROTOCOL.md "Response shapes").
    const up = await upload(away);
    expect(up.status).toBe(200);
    expect((JSON.parse(up.text) as { failures?: { apply?: { code: string } } }).failures?.apply?.code).toBe('resync_required');
    expect(central()?.driver.prepare("SELECT count(*) AS n FROM todos WHERE id = 'away-1'").all()[0]?.['n']).toBe(0n);
    // Reset (a fresh device downloads from 0): it converges with the others.
    const fresh: Peer = { d: newDevice(), sent: 0, cursor: 0 };
    expect((await download(fresh)).status).toBe(200);
    const rows = a.d.driver.prepare(ROWS_SQL).all();
    expect(rows).toHaveLength(6);
    expect(fresh.d.driver.prepare(ROWS_SQL).all()).toEqual(rows);
    expect(b.d.driver.prepare(ROWS_SQL).all()).toEqual(rows);
    expect(central()?.driver.prepare(ROWS_SQL).all()).toEqual(rows);
    // And syncs on normally: its write reaches the others.
    fresh.d.driver.exec("UPDATE todos SET title = 'after resync' WHERE id = 'keep000000'");
    await sync(fresh);
    await sync(a);
    expect(a.d.driver.prepare("SELECT title FROM todos WHERE id = 'keep000000'").all()[0]?.['title']).toBe('after resync');
  }, 120_000);
});
