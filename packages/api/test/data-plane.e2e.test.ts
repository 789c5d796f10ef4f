/**
 * End to end through the real app: GraphQL control plane → a device uploads over G3 HTTP with an
 * API key → another device downloads it → `devices` and `metrics` show both; refusals.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { centralRows, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

let t: RunningApp;
let db: { databaseId: string; apiKey: string; apiKeyId: string };
beforeAll(async () => {
  t = await startApp();
  db = await setupDatabase(t);
});
afterAll(async () => t.dispose());

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface DeviceRow { siteId: string; credentialKind: string; clientVersion: string | null; schemaHash: string | null; userId: string | null; uploadBytes: number; downloadBytes: number }

test('upload over G3 with an API key, download on another device; devices and metrics show them', async () => {
  const a = new TestDevice(t, db.databaseId, db.apiKey);
  const b = new TestDevice(t, db.databaseId, db.apiKey);
  a.exec("INSERT INTO todos (id, user_id, title) VALUES ('t1', 'u1', 'milk'), ('t2', 'u2', 'eggs')");
  const up = await a.upload();
  expect(up.status).toBe(200);
  const v = a.engine.dbVersion();
  expect(up.body).toMatchObject({ lastOptimisticVersion: v, lastConfirmedVersion: v });
  expect(centralRows(t, db.databaseId)).toEqual(a.rows());

  const down = await b.download();
  expect(down.status).toBe(200);
  expect(b.rows()).toEqual(a.rows());
  // a's own changes are not sent back
  const echo = await a.download();
  expect([echo.status, echo.text]).toEqual([200, '']);

  const q = `query($d: ID!) { database(id: $d) {
    devices { totalCount nodes { siteId credentialKind clientVersion schemaHash userId uploadBytes downloadBytes } }
    metrics(bucket: MINUTE) { uploadBytes downloadBytes requests activeDevices } } }`;
  type R = { database: { devices: { totalCount: number; nodes: DeviceRow[] }; metrics: { uploadBytes: number; downloadBytes: number; activeDevices: number } } };
  const r = await eventually(
    () => t.gql<R>(q, { d: db.databaseId }),
    (v) => v.database.devices.totalCount === 2 && v.database.metrics.downloadBytes > 0 && v.database.metrics.uploadBytes > 0,
  );
  const devices = new Map(r.database.devices.nodes.map((n) => [n.siteId, n]));
  expect(devices.get(a.site)).toMatchObject({ credentialKind: 'API_KEY', clientVersion: '1.1.4', userId: null });
  expect(devices.get(a.site)?.schemaHash).toMatch(/^\d+$/);
  expect(devices.get(a.site)?.uploadBytes).toBeGreaterThan(0);
  expect(devices.get(b.site)?.downloadBytes).toBeGreaterThan(0);
  expect(r.database.metrics.uploadBytes).toBeGreaterThan(0);
});

test('unknown database id → 404; no or unknown credential → 401; revoked key → 401', async () => {
  const site = '0123456789abcdef0123456789abcdef';
  const unknown = await http('POST', `${t.origin}/v2/cloudsync/databases/db_doesnotexist/${site}/check`, db.apiKey, { dbVersion: 0, seq: 0 });
  expect(unknown.status).toBe(404);
  const base = `${t.origin}/v2/cloudsync/databases/${db.databaseId}/${site}/check`;
  expect((await http('POST', base, null, { dbVersion: 0, seq: 0 })).status).toBe(401);
  const bogus = await http('POST', base, 'osk_not-a-real-key', { dbVersion: 0, seq: 0 });
  expect(bogus.status).toBe(401);
  expect(JSON.stringify(bogus.body)).not.toMatch(/revoked|expired|unknown key/i);

  const k = await t.gql<{ createApiKey: { secret: string; apiKey: { id: string } } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "temp") { secret apiKey { id } } }', { d: db.databaseId });
  expect((await http('POST', base, k.createApiKey.secret, { dbVersion: 0, seq: 0 })).status).toBe(200);
  await t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: k.createApiKey.apiKey.id });
  const revoked = await http('POST', base, k.createApiKey.secret, { dbVersion: 0, seq: 0 });
  expect(revoked.status).toBe(401);
  expect(revoked.body).toEqual(bogus.body);
});

test('a key of another database is refused; disabled sync → 403', async () => {
  const other = await setupDatabase(t);
  const site = '0123456789abcdef0123456789abcdef';
  expect((await http('POST', `${t.origin}/v2/cloudsync/databases/${db.databaseId}/${site}/check`, other.apiKey, { dbVersion: 0, seq: 0 })).status).toBe(401);
  await t.gql('mutation($d: ID!) { disableOffSync(databaseId: $d) { id } }', { d: other.databaseId });
  const off = await http('POST', `${t.origin}/v2/cloudsync/databases/${other.databaseId}/${site}/check`, other.apiKey, { dbVersion: 0, seq: 0 });
  expect(off.status).toBe(403);
});

test('GraphQL context carries the same SyncService as the HTTP endpoints', () => {
  expect(t.app.sync).toBe(t.app.syncHttp.service);
});
