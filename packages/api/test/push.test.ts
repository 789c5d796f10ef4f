/**
 * Expo push (docs/PROTOCOL.md §P2) through the real app with a loopback server standing in for
 * Expo: token registration over HTTP, one silent push per other device after a burst of merges
 * (never to the origin), batches of ≤ 100, Bearer access token, retry on 5xx / 429, and
 * `removeDevice` deleting the device's tokens.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import { http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

interface Received { headers: IncomingHttpHeaders; messages: Array<{ to: string; data: unknown; _contentAvailable: boolean; priority: string }> }

let expo: Server;
let received: Received[] = [];
let failNext: number[] = [];
let t: RunningApp;
let db: { databaseId: string; apiKey: string };

beforeAll(async () => {
  expo = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = failNext.shift();
      if (status !== undefined) return void res.writeHead(status).end('try later');
      const messages = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['messages'];
      received.push({ headers: req.headers, messages });
      const data = messages.map((m) => (m.to.includes('gone') ? { status: 'error', message: 'gone', details: { error: 'DeviceNotRegistered' } } : { status: 'ok', id: 'x' }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data }));
    });
  });
  await new Promise<void>((ok) => expo.listen(0, '127.0.0.1', ok));
  t = await startApp({ expoPushUrl: `http://127.0.0.1:${(expo.address() as AddressInfo).port}/--/api/v2/push/send`, pushDebounceMs: 60_000, pushBackoffMs: 10 }); // bursts are coalesced deterministically; settle() flushes
  db = await setupDatabase(t);
  await t.gql('mutation($d: ID!) { setExpoAccessToken(databaseId: $d, token: "expo-access-token-123") }', { d: db.databaseId });
});
afterAll(async () => {
  await t.dispose();
  await new Promise<void>((ok) => expo.close(() => ok()));
});
beforeEach(() => {
  received = [];
  failNext = [];
});

async function register(d: TestDevice, token: string): Promise<void> {
  const r = await http('PUT', `${t.origin}/v2/cloudsync/databases/${db.databaseId}/notifications/tokens`, db.apiKey, { expoToken: token, deviceId: `dev-${token}`, siteId: d.site, platform: 'ios' });
  expect(r.status).toBe(200);
}

const settle = async (): Promise<void> => {
  await new Promise((r) => setTimeout(r, 150));
  await t.app.dataPlane.push.flushAll();
};
const recipients = (): string[] => received.flatMap((r) => r.messages.map((m) => m.to)).sort();

test('a burst of merges from one device sends one silent push to every other device, never to the origin', async () => {
  const a = new TestDevice(t, db.databaseId, db.apiKey);
  const b = new TestDevice(t, db.databaseId, db.apiKey);
  const c = new TestDevice(t, db.databaseId, db.apiKey);
  await register(a, 'ExponentPushToken[aaa]');
  await register(b, 'ExponentPushToken[bbb]');
  await register(c, 'ExponentPushToken[ccc]');
  for (let i = 0; i < 3; i++) {
    a.exec('INSERT INTO todos (id, title) VALUES (?, ?)', `p${i}`, 'x');
    expect((await a.upload()).status).toBe(200);
  }
  await settle();
  expect(recipients()).toEqual(['ExponentPushToken[bbb]', 'ExponentPushToken[ccc]']);
  expect(received).toHaveLength(1);
  expect(received[0]?.headers['authorization']).toBe('Bearer expo-access-token-123');
  expect(received[0]?.messages[0]).toEqual({ to: 'ExponentPushToken[bbb]', data: { cloudSyncEvent: 'check' }, _contentAvailable: true, priority: 'high' });

  // Merges from two origins in one burst: everyone has a change from someone else.
  received = [];
  a.exec("INSERT INTO todos (id, title) VALUES ('q1', 'x')");
  b.exec("INSERT INTO todos (id, title) VALUES ('q2', 'x')");
  await a.upload();
  await b.upload();
  await settle();
  expect(recipients()).toEqual(['ExponentPushToken[aaa]', 'ExponentPushToken[bbb]', 'ExponentPushToken[ccc]']);

  // A re-upload that changes nothing sends nothing.
  received = [];
  a.sent = 0;
  await a.upload();
  await settle();
  expect(received).toHaveLength(0);
});

test('retried on 5xx and 429; batches of at most 100; DeviceNotRegistered tokens are dropped; removeDevice deletes tokens', async () => {
  const origin = new TestDevice(t, db.databaseId, db.apiKey);
  const many = Array.from({ length: 150 }, () => new TestDevice(t, db.databaseId, db.apiKey));
  await Promise.all(many.map((d, i) => register(d, `ExponentPushToken[m${String(i).padStart(3, '0')}]`)));
  const gone = new TestDevice(t, db.databaseId, db.apiKey);
  await register(gone, 'ExponentPushToken[gone]');
  failNext = [503, 429];
  origin.exec("INSERT INTO todos (id, title) VALUES ('r1', 'x')");
  await origin.upload();
  await settle();
  expect(received.every((r) => r.messages.length <= 100)).toBe(true);
  expect(recipients()).toHaveLength(3 + 150 + 1);
  expect(new Set(recipients()).size).toBe(154);
  const tokens = (await t.app.services.push.listPushTokens(db.databaseId)).map((x) => x.expoToken);
  expect(tokens).not.toContain('ExponentPushToken[gone]');

  const first = many[0];
  if (first === undefined) throw new Error('no device');
  await first.download();
  for (let i = 0; i < 40 && (await t.app.services.devices.getDevice(db.databaseId, first.site)) === null; i++) await new Promise((r) => setTimeout(r, 25));
  await t.gql('mutation($d: ID!, $s: String!) { removeDevice(databaseId: $d, siteId: $s) }', { d: db.databaseId, s: first.site });
  const after = (await t.app.services.push.listPushTokens(db.databaseId)).map((x) => x.expoToken);
  expect(after).not.toContain('ExponentPushToken[m000]');
});
