/**
 * Response shapes per generation, built from the clients' observed traces (docs/PROTOCOL.md §P1):
 * G1 (0.8.68), G2a (0.9.99), G2b (0.9.118) and the G3 shapes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listenTestServer } from './sync-fixtures/server.ts';
import type { TestServer } from './sync-fixtures/server.ts';
import { call, insertTodos, newDevice, ownPayload, ROWS_SQL, siteHex } from './sync-fixtures/devices.ts';
import type { Device } from './sync-fixtures/devices.ts';

let t: TestServer & { origin: string };
beforeAll(async () => {
  t = await listenTestServer({ databases: [{ id: 'testdb' }, { id: 'g2adb' }, { id: 'db_test123' }, { id: 'off', enabled: false }] });
});
afterAll(async () => t.close());

/** Puts B's changes on the server so other sites have something to download. */
async function seedFromB(db: string, base: (site: string) => string): Promise<Device> {
  const b = newDevice();
  b.driver.prepare("INSERT INTO todos (id, title, done) VALUES ('b1', 'from B', 0)").run();
  const up = await call('GET', `${base(siteHex(b))}/upload`, { headers: { accept: 'sqlc/plain' } });
  const url = up.headers.get('content-type')?.includes('json') ? String((up.json() as { url: string }).url) : up.text;
  expect((await call('PUT', url, { key: null, body: ownPayload(b) ?? new Uint8Array() })).status).toBe(200);
  expect(db).toBeTruthy();
  return b;
}

describe('G1 (/v1/cloudsync, A.1 trace)', () => {
  const base = (site: string): string => `${t.origin}/v1/cloudsync/testdb.sqlite/${site}`;
  test('upload URL as plain text, PUT, notify with empty body, check empty then plain URL', async () => {
    const a = newDevice();
    const site = siteHex(a);
    a.driver.prepare("INSERT INTO todos (id, title) VALUES ('a1', 'milk')").run();
    const up = await call('GET', `${base(site)}/upload`, { headers: { accept: 'sqlc/plain' } });
    expect(up.status).toBe(200);
    expect(up.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(up.text).toMatch(new RegExp(`^${t.origin}/v2/cloudsync/_artifacts/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    const put = await call('PUT', up.text, { key: null, body: ownPayload(a) ?? new Uint8Array(), headers: { 'content-type': 'application/octet-stream', accept: 'text/plain' } });
    expect([put.status, put.text]).toEqual([200, '']);
    const notify = await call('POST', `${base(site)}/upload`, { json: { url: up.text } });
    expect([notify.status, notify.text]).toEqual([200, '']);
    const nothing = await call('POST', `${base(site)}/0/0/check`, { headers: { accept: 'sqlc/plain' } });
    expect([nothing.status, nothing.text]).toEqual([200, '']);

    const b = newDevice();
    const check = await call('POST', `${base(siteHex(b))}/0/0/check`, { headers: { accept: 'sqlc/plain' } });
    expect(check.status).toBe(200);
    expect(check.headers.get('content-type')).toMatch(/^text\/plain/);
    const pkg = await call('GET', check.text, { key: null });
    expect(pkg.status).toBe(200);
    expect(Buffer.from(pkg.bytes.subarray(0, 4)).toString('latin1')).toBe('CLSY');
    b.applyPayload(pkg.bytes);
    expect(b.driver.prepare(ROWS_SQL).all()).toEqual(a.driver.prepare(ROWS_SQL).all());
  });
});

describe('G2a (/v2/cloudsync/{path}, A.2 / E.3 trace)', () => {
  const base = (site: string): string => `${t.origin}/v2/cloudsync/g2adb.sqlite/${site}`;
  test('plain-text URLs, empty apply body, {"dbVersion","seq"} check', async () => {
    const a = newDevice();
    insertTodos(a, 2, 'g2a');
    const site = siteHex(a);
    const up = await call('GET', `${base(site)}/upload`, { headers: { accept: 'sqlc/plain' } });
    expect(up.text.startsWith('http://')).toBe(true);
    expect(() => JSON.parse(up.text) as unknown).toThrow();
    await call('PUT', up.text, { key: null, body: ownPayload(a) ?? new Uint8Array() });
    const apply = await call('POST', `${base(site)}/apply`, { json: { url: up.text, dbVersionMin: 0, dbVersionMax: 2 } });
    expect([apply.status, apply.text, apply.headers.get('content-length')]).toEqual([200, '', '0']);
    const nothing = await call('POST', `${base(site)}/check`, { json: { dbVersion: 0, seq: 0 } });
    expect([nothing.status, nothing.text]).toEqual([200, '']);
    const other = newDevice();
    const check = await call('POST', `${base(siteHex(other))}/check`, { json: { dbVersion: 0, seq: 0 } });
    expect(check.text).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v2\/cloudsync\/_artifacts\//);
    // multi-segment paths and ?database= name the same database
    const multi = await call('GET', `${t.origin}/v2/cloudsync/some/dir/g2adb.db/${site}/upload`);
    expect(multi.status).toBe(200);
    const q = await call('GET', `${t.origin}/v2/cloudsync/whatever/${site}/upload?database=g2adb`);
    expect(q.status).toBe(200);
  });
});

describe('G2b (/v2/cloudsync/databases/{id}, A.3 trace)', () => {
  const base = (site: string): string => `${t.origin}/v2/cloudsync/databases/db_test123/${site}`;
  test('status, {"url"} upload, SyncStatus apply, {"url"} or empty check', async () => {
    const a = newDevice();
    a.driver.prepare("INSERT INTO todos (id, title) VALUES ('a1', 'milk')").run();
    const site = siteHex(a);
    const status = await call('GET', `${base(site)}/status`, { headers: { accept: 'sqlc/plain' } });
    expect(status.json()).toEqual({ lastOptimisticVersion: 0, lastConfirmedVersion: 0, gaps: [] });
    const up = await call('GET', `${base(site)}/upload`);
    expect(up.headers.get('content-type')).toBe('application/json');
    const { url } = up.json() as { url: string };
    expect(Object.keys(up.json() as object)).toEqual(['url']);
    await call('PUT', url, { key: null, body: ownPayload(a) ?? new Uint8Array() });
    const v = a.dbVersion();
    const apply = await call('POST', `${base(site)}/apply`, { json: { url, dbVersionMin: 1, dbVersionMax: v } });
    expect(apply.json()).toEqual({ lastOptimisticVersion: v, lastConfirmedVersion: v, gaps: [] });
    const nothing = await call('POST', `${base(site)}/check`, { json: { dbVersion: 0, seq: 0 } });
    expect([nothing.status, nothing.text]).toEqual([200, '']);
    const b = newDevice();
    const check = await call('POST', `${base(siteHex(b))}/check`, { json: { dbVersion: 0, seq: 0 } });
    expect(Object.keys(check.json() as object)).toEqual(['url']);
    const pkg = await call('GET', (check.json() as { url: string }).url, { key: null });
    expect(b.applyPayload(pkg.bytes).applied).toBeGreaterThan(0);
    expect(b.driver.prepare(ROWS_SQL).all()).toEqual(a.driver.prepare(ROWS_SQL).all());
  });
});

describe('G3 (X-CloudSync-Version, A.4 shapes)', () => {
  const base = (site: string): string => `${t.origin}/v2/cloudsync/databases/db_test123/${site}`;
  const g3 = { 'x-cloudsync-version': '1.1.4' };
  const caps = { ...g3, 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };
  test('inline base64 apply → SyncStatus; check → inline payload with watermark, then empty', async () => {
    const a = newDevice();
    a.driver.prepare("INSERT INTO todos (id, title) VALUES ('g3a', 'inline')").run();
    const v = a.dbVersion();
    const blob = Buffer.from(ownPayload(a) ?? new Uint8Array()).toString('base64');
    const apply = await call('POST', `${base(siteHex(a))}/apply`, { json: { blob, dbVersionMin: 1, dbVersionMax: v }, headers: g3 });
    expect(apply.json()).toEqual({ lastOptimisticVersion: v, lastConfirmedVersion: v, gaps: [] });

    const b = newDevice();
    const check = await call('POST', `${base(siteHex(b))}/check`, { json: { dbVersion: 0, seq: 0, cursor: 0 }, headers: caps });
    const data = (check.json() as { data: { payload: string; watermark: number; final: boolean } }).data;
    expect(Object.keys(data).sort()).toEqual(['final', 'payload', 'watermark']);
    expect(data.final).toBe(true);
    b.applyPayload(new Uint8Array(Buffer.from(data.payload, 'base64')));
    expect(b.driver.prepare("SELECT title FROM todos WHERE id = 'g3a'").all()).toEqual([{ title: 'inline' }]);
    const again = await call('POST', `${base(siteHex(b))}/check`, { json: { dbVersion: data.watermark, seq: 0, cursor: 0 }, headers: caps });
    expect([again.status, again.text]).toEqual([200, '']);
  });

  test('a refused payload is reported in failures.apply with unchanged versions', async () => {
    const a = newDevice();
    const before = await call('GET', `${base(siteHex(a))}/status`, { headers: g3 });
    const apply = await call('POST', `${base(siteHex(a))}/apply`, { json: { blob: Buffer.from('CLSYgarbage').toString('base64'), dbVersionMin: 1, dbVersionMax: 3 }, headers: g3 });
    expect(apply.status).toBe(200);
    const body = apply.json() as { lastOptimisticVersion: number; failures: { apply: Record<string, unknown> } };
    expect(body.lastOptimisticVersion).toBe((before.json() as { lastOptimisticVersion: number }).lastOptimisticVersion);
    expect(body.failures.apply).toMatchObject({ code: 'invalid_payload', retryable: false });
    expect(typeof body.failures.apply['failedAt']).toBe('string');
  });
});

describe('common', () => {
  test('CORS preflight and headers', async () => {
    const r = await call('OPTIONS', `${t.origin}/v2/cloudsync/databases/db_test123/${'0'.repeat(32)}/check`, { key: null, headers: { origin: 'http://app', 'access-control-request-method': 'POST' } });
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-methods')).toContain('PUT');
    expect(r.headers.get('access-control-allow-headers')).toContain('x-cloudsync-capabilities');
    const s = await call('GET', `${t.origin}/v2/cloudsync/databases/db_test123/${'0'.repeat(32)}/status`);
    expect(s.headers.get('access-control-allow-origin')).toBe('*');
  });

  test('errors: 401 without detail, 404 unknown database, 403 disabled, 400 bad site, 404/405 routes', async () => {
    const site = '0'.repeat(32);
    for (const key of [null, 'WRONG', '']) {
      const r = await call('GET', `${t.origin}/v2/cloudsync/databases/db_test123/${site}/status`, { key });
      expect([r.status, r.statusText]).toEqual([401, 'Unauthorized']);
      expect(r.json()).toEqual({ errors: [{ status: '401', code: 'unauthorized', title: 'Unauthorized' }] });
    }
    const missing = await call('GET', `${t.origin}/v2/cloudsync/databases/nope/${site}/status`);
    expect([missing.status, (missing.json() as { errors: Array<{ code: string }> }).errors[0]?.code]).toEqual([404, 'database_not_found']);
    const off = await call('GET', `${t.origin}/v2/cloudsync/off.sqlite/${site}/upload`);
    expect([off.status, (off.json() as { errors: Array<{ code: string }> }).errors[0]?.code]).toEqual([403, 'sync_disabled']);
    const bad = await call('GET', `${t.origin}/v2/cloudsync/testdb.sqlite/not-a-site/upload`);
    expect([bad.status, (bad.json() as { errors: Array<{ code: string }> }).errors[0]?.code]).toEqual([400, 'invalid_site_id']);
    expect((await call('GET', `${t.origin}/v2/cloudsync/databases/db_test123/${site}/apply`)).status).toBe(405);
    expect((await call('GET', `${t.origin}/v2/cloudsync/databases/db_test123/${site}/bogus`)).status).toBe(404);
    expect((await call('GET', `${t.origin}/elsewhere`)).status).toBe(404);
  });

  test('push tokens are registered', async () => {
    const body = { expoToken: 'ExponentPushToken[abc]', deviceId: 'dev1', siteId: 'AB'.repeat(16), platform: 'ios' };
    const r = await call('PUT', `${t.origin}/v2/cloudsync/databases/db_test123/notifications/tokens`, { json: body });
    expect(r.status).toBe(200);
    const ev = t.events.find((e) => e.hook === 'registerPushToken');
    expect(ev?.args[0]).toBe('db_test123');
    expect(ev?.args[1]).toMatchObject({ expoToken: 'ExponentPushToken[abc]', siteId: 'ab'.repeat(16), platform: 'ios' });
    const bad = await call('PUT', `${t.origin}/v2/cloudsync/databases/db_test123/notifications/tokens`, { json: { expoToken: 'x' } });
    expect(bad.status).toBe(400);
  });

  test('devices and traffic are recorded, merges announced', async () => {
    const b = await seedFromB('testdb', (s) => `${t.origin}/v2/cloudsync/testdb.sqlite/${s}`);
    const hooks = new Set(t.events.map((e) => e.hook));
    expect(hooks.has('recordDevice')).toBe(true);
    expect(hooks.has('recordTraffic')).toBe(true);
    expect(hooks.has('onChangesMerged')).toBe(true);
    const dev = t.events.find((e) => e.hook === 'recordDevice' && (e.args[1] as { siteId: string }).siteId === siteHex(b));
    expect(dev?.args[1]).toMatchObject({ generation: 'G2a', clientVersion: 'G2a' });
  });
});
