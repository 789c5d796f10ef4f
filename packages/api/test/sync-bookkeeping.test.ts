/**
 * Upload bookkeeping (windows, optimistic/confirmed, idempotence) and bad input: each refused
 * clearly, with nothing changed in the central database or in the site's bookkeeping.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { listenTestServer, TODOS_DDL } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';
import { coverage } from '../src/domains/sync/index.ts';

let clock = Date.now();
let t: TestServer & { origin: string };
beforeAll(async () => {
  t = await listenTestServer({
    databases: [{ id: 'strictdb' }, { id: 'lenientdb', schemaHashMode: 'lenient' }],
    http: { maxUploadBytes: 64 * 1024, maxJsonBodyBytes: 4096, maxInlineBodyBytes: 8192, now: () => clock },
  });
});
afterAll(async () => t.close());

const g2a = (db: string, site: string): string => `${t.origin}/v2/cloudsync/${db}.sqlite/${site}`;
const g2b = (db: string, site: string): string => `${t.origin}/v2/cloudsync/databases/${db}/${site}`;

async function uploadUrl(db: string, site: string): Promise<string> {
  return (await call('GET', `${g2a(db, site)}/upload`)).text;
}

/** Upload through G2a; returns the apply reply. */
async function upload(db: string, d: Device | string, payload: Uint8Array | string, window?: [number, number]) {
  const site = typeof d === 'string' ? d : siteHex(d);
  const url = await uploadUrl(db, site);
  const put = await call('PUT', url, { key: null, body: payload });
  if (put.status !== 200) return put;
  return call('POST', `${g2a(db, site)}/apply`, { json: { url, ...(window ? { dbVersionMin: window[0], dbVersionMax: window[1] } : {}) } });
}

async function status(db: string, site: string): Promise<unknown> {
  return (await call('GET', `${g2b(db, site)}/status`)).json();
}

function centralRows(db: string): unknown[] {
  const e = t.handler.service.databases.peek(db) ?? openSyncDatabase(t.pathOf(db));
  return e.driver.prepare('SELECT id, title, done FROM todos ORDER BY id').all();
}

const codeOf = (r: { json(): unknown }): string | undefined => (r.json() as { errors: Array<{ code: string }> }).errors[0]?.code;

describe('windows and versions', () => {
  test('coverage of windows (G2a exclusive min, G2b inclusive min, gaps)', () => {
    expect(coverage([{ dbVersionMin: 0, dbVersionMax: 2 }, { dbVersionMin: 2, dbVersionMax: 4 }]).covered).toBe(4);
    expect(coverage([{ dbVersionMin: 1, dbVersionMax: 3 }, { dbVersionMin: 4, dbVersionMax: 9 }]).covered).toBe(9);
    expect(coverage([{ dbVersionMin: 1, dbVersionMax: 3 }, { dbVersionMin: 6, dbVersionMax: 9 }])).toEqual({ covered: 3, gaps: [{ dbVersionMin: 4, dbVersionMax: 5 }] });
    expect(coverage([{ dbVersionMin: 6, dbVersionMax: 9 }, { dbVersionMin: 1, dbVersionMax: 3 }, { dbVersionMin: 4, dbVersionMax: 5 }]).covered).toBe(9);
  });

  test('G2a windows accumulate; a gap holds optimistic back; re-upload is idempotent', async () => {
    const a = newDevice();
    const site = siteHex(a);
    insertTodos(a, 2, 'w'); // db_versions 1 and 2: the window [0, 2] covers the payload
    const p1 = ownPayload(a) ?? new Uint8Array();
    expect((await upload('strictdb', a, p1, [0, 2])).status).toBe(200);
    expect(await status('strictdb', site)).toEqual({ lastOptimisticVersion: 2, lastConfirmedVersion: 2, gaps: [] });
    const rows = centralRows('strictdb');
    expect(rows).toHaveLength(2);
    // same payload again: nothing changes, windows union
    expect((await upload('strictdb', a, p1, [0, 2])).status).toBe(200);
    expect(centralRows('strictdb')).toEqual(rows);
    expect(await status('strictdb', site)).toEqual({ lastOptimisticVersion: 2, lastConfirmedVersion: 2, gaps: [] });
    // a window beyond a hole is accepted but not counted as contiguous
    expect((await upload('strictdb', a, p1, [6, 8])).status).toBe(200);
    expect(await status('strictdb', site)).toEqual({ lastOptimisticVersion: 2, lastConfirmedVersion: 2, gaps: [{ dbVersionMin: 3, dbVersionMax: 5 }] });
    expect((await upload('strictdb', a, p1, [2, 5])).status).toBe(200);
    expect(await status('strictdb', site)).toEqual({ lastOptimisticVersion: 8, lastConfirmedVersion: 8, gaps: [] });
  });
});

describe('bad input is refused whole, nothing changed', () => {
  async function refused(db: string, d: Device, payload: Uint8Array, code: string, httpStatus: number): Promise<void> {
    const before = { rows: centralRows(db), status: await status(db, siteHex(d)) };
    const r = await upload(db, d, payload, [0, 50]);
    expect([r.status, codeOf(r)]).toEqual([httpStatus, code]);
    expect(centralRows(db)).toEqual(before.rows);
    expect(await status(db, siteHex(d))).toEqual(before.status);
  }

  test('truncated, corrupt (checksum), garbage', async () => {
    const a = newDevice();
    insertTodos(a, 5, 'bad');
    const p = ownPayload(a) ?? new Uint8Array();
    await refused('strictdb', a, p.subarray(0, p.length - 7), 'invalid_payload', 400);
    const corrupt = p.slice();
    corrupt[corrupt.length - 3] = (corrupt[corrupt.length - 3] ?? 0) ^ 0xff;
    await refused('strictdb', a, corrupt, 'invalid_payload', 400);
    await refused('strictdb', a, new TextEncoder().encode('hello world, not a payload'), 'invalid_payload', 400);
  });

  test('unknown table; unknown schema hash (strict) vs unknown column (lenient)', async () => {
    const n = openSyncDatabase(':memory:');
    n.driver.exec(TODOS_DDL);
    n.driver.exec("CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL DEFAULT '')");
    n.init('notes');
    n.driver.prepare("INSERT INTO notes (id, body) VALUES ('n1', 'x')").run();
    await refused('lenientdb', n, ownPayload(n) ?? new Uint8Array(), 'unknown_table', 422);

    const wide = openSyncDatabase(':memory:');
    wide.driver.exec("CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, extra TEXT)");
    wide.init('todos');
    wide.driver.prepare("INSERT INTO todos (id, title, extra) VALUES ('x1', 'wide', 'e')").run();
    const p = ownPayload(wide) ?? new Uint8Array();
    await refused('strictdb', wide, p, 'schema_hash_unknown', 422);
    await refused('lenientdb', wide, p, 'unknown_column', 422);
  });

  test('oversized PUT and JSON bodies → 413', async () => {
    const a = newDevice();
    const url = await uploadUrl('strictdb', siteHex(a));
    const big = await call('PUT', url, { key: null, body: new Uint8Array(64 * 1024 + 1) });
    expect([big.status, codeOf(big)]).toEqual([413, 'payload_too_large']);
    const json = await call('POST', `${g2a('strictdb', siteHex(a))}/check`, { json: { dbVersion: 0, seq: 0, pad: 'x'.repeat(5000) } });
    expect(json.status).toBe(413);
    const inline = await call('POST', `${g2b('strictdb', siteHex(a))}/apply`, { json: { blob: 'A'.repeat(9000), dbVersionMin: 1, dbVersionMax: 1 }, headers: { 'x-cloudsync-version': '1.1.4' } });
    expect(inline.status).toBe(413);
  });

  test('replayed, tampered, foreign and expired artifact URLs', async () => {
    const a = newDevice();
    insertTodos(a, 1, 'rep');
    const site = siteHex(a);
    const p = ownPayload(a) ?? new Uint8Array();
    const url = await uploadUrl('strictdb', site);
    expect((await call('PUT', url, { key: null, body: p })).status).toBe(200);
    const replayPut = await call('PUT', url, { key: null, body: p });
    expect([replayPut.status, codeOf(replayPut)]).toEqual([410, 'artifact_used']);
    const other = newDevice();
    const foreign = await call('POST', `${g2a('strictdb', siteHex(other))}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: 1 } });
    expect([foreign.status, codeOf(foreign)]).toEqual([403, 'artifact_mismatch']);
    expect((await call('POST', `${g2a('strictdb', site)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: 1 } })).status).toBe(200);
    const replayApply = await call('POST', `${g2a('strictdb', site)}/apply`, { json: { url, dbVersionMin: 0, dbVersionMax: 1 } });
    expect([replayApply.status, codeOf(replayApply)]).toEqual([410, 'artifact_used']);
    // Any other spelling is refused, even one that decodes to the same signature bytes (last character).
    for (const at of [url.length - 3, url.length - 1]) {
      const tampered = url.slice(0, at) + (url[at] === 'A' ? 'B' : 'A') + url.slice(at + 1);
      expect(codeOf(await call('PUT', tampered, { key: null, body: p }))).toBe('artifact_invalid');
    }

    const check = await call('POST', `${g2a('strictdb', siteHex(other))}/check`, { json: { dbVersion: 0, seq: 0 } });
    expect((await call('GET', check.text, { key: null })).status).toBe(200);
    const replayGet = await call('GET', check.text, { key: null });
    expect([replayGet.status, codeOf(replayGet)]).toEqual([410, 'artifact_used']);

    const late = await uploadUrl('strictdb', site);
    const check2 = await call('POST', `${g2a('strictdb', siteHex(other))}/check`, { json: { dbVersion: 0, seq: 0 } });
    clock += 6 * 60_000;
    try {
      const expiredPut = await call('PUT', late, { key: null, body: p });
      expect([expiredPut.status, codeOf(expiredPut)]).toEqual([410, 'artifact_expired']);
      const expiredGet = await call('GET', check2.text, { key: null });
      expect([expiredGet.status, codeOf(expiredGet)]).toEqual([410, 'artifact_expired']);
    } finally {
      clock -= 6 * 60_000;
    }
  });
});
