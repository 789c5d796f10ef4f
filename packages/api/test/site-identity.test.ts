/**
 * Device identity (docs/PROTOCOL.md "Device identity") through the real app: a site id belongs to
 * the principal that first used it (`user:<userId>` for access tokens and JWTs, one `apiKey`
 * principal for API keys and the admin key). Another principal is refused with 403
 * `site_forbidden` on every call — HTTP status / check / upload URL / apply / push-token
 * registration and the GraphQL sync fields — and nothing of the owner's changes: not its
 * SyncStatus, device record, push tokens or rows. Upload windows must agree with the payload.
 */
import Database from 'better-sqlite3';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { CentralDatabases, allowAllSyncDeps, SyncService } from '../src/domains/sync/index.ts';
import { centralRows, createAccessToken, http, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { Reply, RunningApp } from './data-plane-fixtures.ts';

const HS_SECRET = 'an-hs256-shared-secret-of-32-chars!!';
let t: RunningApp;
let db: { databaseId: string; apiKey: string };
let alice: string;
let alice2: string;
let bob: string;

beforeAll(async () => {
  t = await startApp();
  db = await setupDatabase(t);
  await t.gql('mutation($d: ID!, $s: String!) { configureJwtProvider(databaseId: $d, method: HS256, secret: $s, audience: "offsync-test") { method } }', { d: db.databaseId, s: HS_SECRET });
  alice = await createAccessToken(t, db.databaseId, 'alice');
  alice2 = await createAccessToken(t, db.databaseId, 'alice');
  bob = await createAccessToken(t, db.databaseId, 'bob');
});
afterAll(async () => t.dispose());

const url = (site: string, call: string): string => `${t.origin}/v2/cloudsync/databases/${db.databaseId}/${site}/${call}`;
const codeOf = (r: Reply): string | undefined => (r.body['errors'] as Array<{ code: string }> | undefined)?.[0]?.code;
/** The site's SyncStatus read in the server (no request: a request would update the device record). */
const peerStatus = (site: string) => t.app.sync.status(db.databaseId, site);
const statusOf = async (credential: string, site: string): Promise<Record<string, unknown>> => (await http('GET', url(site, 'status'), credential)).body;
const registerToken = (credential: string, siteId: string, expoToken: string): Promise<Reply> =>
  http('PUT', `${t.origin}/v2/cloudsync/databases/${db.databaseId}/notifications/tokens`, credential, { expoToken, deviceId: 'phone', siteId, platform: 'ios' });
const tokensOf = async (site: string): Promise<string[]> => (await t.app.services.push.listPushTokens(db.databaseId)).filter((p) => p.siteId === site).map((p) => p.expoToken);
const device = (site: string) => t.app.services.devices.getDevice(db.databaseId, site);

function jwt(sub: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setAudience('offsync-test').setExpirationTime('5m').sign(new TextEncoder().encode(HS_SECRET));
}

/** A device of `credential` with two committed changes (db_versions 1 and 2) uploaded. */
async function deviceWithUpload(credential: string): Promise<TestDevice> {
  const d = new TestDevice(t, db.databaseId, credential);
  d.exec("INSERT INTO todos (id, title) VALUES (?, 'one')", `${d.site.slice(0, 8)}-1`);
  d.exec("INSERT INTO todos (id, title) VALUES (?, 'two')", `${d.site.slice(0, 8)}-2`);
  const r = await d.upload();
  expect([r.status, r.body['failures']]).toEqual([200, undefined]);
  return d;
}

/**
 * Device records and traffic are written by fire-and-forget hooks: a request of `credential` on
 * its own fresh site, awaited until that device is recorded, lets the hooks queued before it land.
 */
async function hooksSettled(credential: string): Promise<void> {
  const d = new TestDevice(t, db.databaseId, credential);
  expect((await http('GET', d.url('status'), credential)).status).toBe(200);
  await vi.waitFor(async () => expect(await device(d.site)).not.toBeNull(), { timeout: 5000, interval: 10 });
}

describe('HTTP protocol', () => {
  test("another user's site: upload URL, apply, status, check and push-token registration → 403 site_forbidden; nothing of the owner changes", async () => {
    const a = await deviceWithUpload(alice);
    expect((await registerToken(alice, a.site, 'ExponentPushToken[alice-phone]')).status).toBe(200);
    await hooksSettled(alice);
    expect(await device(a.site)).toMatchObject({ userId: 'alice', credentialKind: 'ACCESS_TOKEN' });
    const before = { status: await peerStatus(a.site), device: await device(a.site), tokens: await tokensOf(a.site), rows: centralRows(t, db.databaseId) };
    expect(before.status).toEqual({ lastOptimisticVersion: 2, lastConfirmedVersion: 2, gaps: [] });
    expect(before.tokens).toEqual(['ExponentPushToken[alice-phone]']);

    // Bob's own payload, announced for alice's site with the window of the issue (1..1000000).
    const b = new TestDevice(t, db.databaseId, bob);
    b.exec("INSERT INTO todos (id, title) VALUES ('bob-1', 'spoof')");
    const blob = Buffer.from(b.engine.encodeChanges(b.engine.changes({ localOnly: true })) ?? new Uint8Array()).toString('base64');
    const attempts: Reply[] = [
      await http('GET', url(a.site, 'upload'), bob),
      await http('POST', url(a.site, 'apply'), bob, { blob, dbVersionMin: 1, dbVersionMax: 1_000_000 }),
      await http('POST', url(a.site, 'apply'), bob, { url: `${t.origin}/v2/cloudsync/artifacts/whatever`, dbVersionMin: 1, dbVersionMax: 1_000_000 }),
      await http('GET', url(a.site, 'status'), bob),
      await http('POST', url(a.site, 'check'), bob, { dbVersion: 0, seq: 0, cursor: 0 }),
      await registerToken(bob, a.site, 'ExponentPushToken[bob-phone]'),
      await registerToken(bob, a.site.toUpperCase(), 'ExponentPushToken[bob-phone-2]'),
    ];
    for (const r of attempts) {
      expect([r.status, codeOf(r)]).toEqual([403, 'site_forbidden']);
      // The refusal reveals nothing of the site's bookkeeping.
      expect(r.body['lastOptimisticVersion']).toBeUndefined();
    }
    await hooksSettled(bob);

    expect(await peerStatus(a.site)).toEqual(before.status);
    expect(await device(a.site)).toEqual(before.device);
    expect((await device(a.site))?.userId).toBe('alice');
    expect(await tokensOf(a.site)).toEqual(['ExponentPushToken[alice-phone]']);
    expect(centralRows(t, db.databaseId)).toEqual(before.rows);
    expect((centralRows(t, db.databaseId) as Array<{ id: string }>).map((r) => r.id)).not.toContain('bob-1');

    // The owner goes on normally: its next change is counted from where it really is.
    a.exec("INSERT INTO todos (id, title) VALUES (?, 'three')", `${a.site.slice(0, 8)}-3`);
    const next = await a.upload();
    expect([next.status, next.body['lastOptimisticVersion']]).toEqual([200, 3]);
  });

  test('the API-key principal and a token user cannot share a site, in either order', async () => {
    const k = await deviceWithUpload(db.apiKey);
    for (const cred of [alice, await jwt('alice')]) {
      const r = await http('POST', url(k.site, 'check'), cred, { dbVersion: 0, seq: 0, cursor: 0 });
      expect([r.status, codeOf(r)]).toEqual([403, 'site_forbidden']);
    }
    const a = await deviceWithUpload(alice);
    const r = await http('POST', url(a.site, 'apply'), db.apiKey, { blob: 'AAAA', dbVersionMin: 1, dbVersionMax: 1_000_000 });
    expect([r.status, codeOf(r)]).toEqual([403, 'site_forbidden']);
    expect(await statusOf(alice, a.site)).toEqual({ lastOptimisticVersion: 2, lastConfirmedVersion: 2, gaps: [] });
    // A second API key of the database is the same trusted principal.
    const k2 = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "second") { secret } }', { d: db.databaseId });
    expect(await statusOf(k2.createApiKey.secret, k.site)).toEqual({ lastOptimisticVersion: 2, lastConfirmedVersion: 2, gaps: [] });
  });

  test('one user with two access tokens and a JWT (same user id) uses the same site', async () => {
    const a = await deviceWithUpload(alice);
    a.credential = alice2;
    a.exec("INSERT INTO todos (id, title) VALUES (?, 'from token 2')", `${a.site.slice(0, 8)}-t2`);
    const second = await a.upload();
    expect([second.status, second.body['lastOptimisticVersion'], second.body['failures']]).toEqual([200, 3, undefined]);
    a.credential = await jwt('alice');
    expect((await a.download()).status).toBe(200);
    expect((await registerToken(a.credential, a.site, 'ExponentPushToken[alice-tablet]')).status).toBe(200);
    expect(await tokensOf(a.site)).toEqual(['ExponentPushToken[alice-tablet]']);
    expect(await statusOf(alice, a.site)).toEqual({ lastOptimisticVersion: 3, lastConfirmedVersion: 3, gaps: [] });
  });

  test('the owner is kept in the central database: another process over the same file refuses too', async () => {
    const a = await deviceWithUpload(alice);
    const file = new Database(sqliteDatabasePath(t.dataDir, db.databaseId), { readonly: true });
    try {
      const row = file.prepare('SELECT owner FROM offsync_site_owners WHERE site_id = ?').get(Buffer.from(a.site, 'hex')) as { owner: string } | undefined;
      expect(row).toEqual({ owner: 'user:alice' });
    } finally {
      file.close();
    }
    // A second SyncService with its own connection to the file (as another server process).
    const path = sqliteDatabasePath(t.dataDir, db.databaseId);
    const other = new CentralDatabases(() => ({ path, enabled: true, schemaHashMode: 'strict' }));
    try {
      const service = new SyncService(allowAllSyncDeps({ resolveDatabase: () => ({ path, enabled: true, schemaHashMode: 'strict' }) }), other);
      const central = await other.get(db.databaseId);
      expect(() => service.claimSite(central, a.site, { kind: 'accessToken', userId: 'bob', claims: {} })).toThrow(expect.objectContaining({ code: 'site_forbidden', status: 403 }));
      expect(service.claimSite(central, a.site.toUpperCase(), { kind: 'jwt', userId: 'alice', claims: {} })).toBe(a.site);
      expect(() => service.claimSite(central, a.site, { kind: 'apiKey', userId: null, claims: {} })).toThrow(expect.objectContaining({ code: 'site_forbidden' }));
    } finally {
      other.dispose();
    }
  });
});

describe('upload windows', () => {
  test('a window the payload contradicts, or an insane one, is refused with nothing recorded', async () => {
    const a = await deviceWithUpload(alice);
    a.exec("INSERT INTO todos (id, title) VALUES (?, 'v3')", `${a.site.slice(0, 8)}-3`);
    a.exec("INSERT INTO todos (id, title) VALUES (?, 'v4')", `${a.site.slice(0, 8)}-4`);
    const blob = Buffer.from(a.engine.encodeChanges(a.engine.changes({ localOnly: true, after: { dbVersion: 2, seq: Number.MAX_SAFE_INTEGER } })) ?? new Uint8Array()).toString('base64');
    const before = { status: await peerStatus(a.site), rows: centralRows(t, db.databaseId) };
    for (const [min, max] of [
      [3, 3], // the payload holds db_version 4, beyond the window
      [3, 2 ** 48 + 1], // beyond 2^48
      [5, 4], // min > max
    ] as const) {
      const r = await http('POST', url(a.site, 'apply'), alice, { blob, dbVersionMin: min, dbVersionMax: max });
      expect([r.status, codeOf(r)]).toEqual([400, 'invalid_request']);
    }
    expect(await peerStatus(a.site)).toEqual(before.status);
    expect(centralRows(t, db.databaseId)).toEqual(before.rows);
    // The consistent window is accepted (a window may extend beyond the payload's last change).
    const ok = await http('POST', url(a.site, 'apply'), alice, { blob, dbVersionMin: 3, dbVersionMax: 5 });
    expect([ok.status, ok.body['lastOptimisticVersion'], ok.body['failures']]).toEqual([200, 5, undefined]);
  });
});

describe('GraphQL sync fields', () => {
  const PUSH = 'mutation($db: ID!, $site: String!, $p: String!, $min: Int, $max: Int) { pushChanges(databaseId: $db, siteId: $site, payload: $p, dbVersionMin: $min, dbVersionMax: $max) { lastOptimisticVersion failures { code } } }';
  const PULL = 'query($db: ID!, $site: String!) { pullChanges(databaseId: $db, siteId: $site) { changes } }';
  const CHANGES = 'subscription($db: ID!, $site: String!) { changes(databaseId: $db, siteId: $site) { changes final } }';
  type Errors = Array<{ extensions?: { code?: string; syncCode?: string } }>;

  /** A GraphQL request with `credential`; subscriptions over SSE, returning the first event. */
  async function gqlAs(credential: string, query: string, variables: Record<string, unknown>): Promise<{ data?: Record<string, unknown> | null; errors?: Errors }> {
    const sse = query.startsWith('subscription');
    const res = await t.app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}`, ...(sse ? { accept: 'text/event-stream' } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    if (!sse) return (await res.json()) as { data?: Record<string, unknown> | null; errors?: Errors };
    const reader = res.body?.getReader();
    let text = '';
    for (;;) {
      const chunk = await reader?.read();
      if (chunk === undefined || chunk.done) break;
      text += Buffer.from(chunk.value).toString('utf8');
      const m = /data: (\{.*\})\n/.exec(text);
      if (m?.[1] !== undefined) {
        await reader?.cancel();
        return JSON.parse(m[1]) as { data?: Record<string, unknown> | null; errors?: Errors };
      }
    }
    throw new Error(`no event in ${JSON.stringify(text)}`);
  }

  const forbidden = (r: { errors?: Errors }): unknown => r.errors?.map((e) => [e.extensions?.code, e.extensions?.syncCode]);

  test("pushChanges, pullChanges and changes on another principal's site are FORBIDDEN (site_forbidden), the admin key included", async () => {
    const a = await deviceWithUpload(alice);
    await hooksSettled(alice);
    const before = { status: await peerStatus(a.site), device: await device(a.site) };
    expect(before.device).toMatchObject({ userId: 'alice' });
    const blob = Buffer.from(a.engine.encodeChanges(a.engine.changes({ localOnly: true })) ?? new Uint8Array()).toString('base64');
    const vars = { db: db.databaseId, site: a.site, p: blob, min: 1, max: 1_000_000 };
    for (const credential of [bob, t.adminKey, db.apiKey]) {
      expect(forbidden(await gqlAs(credential, PUSH, vars))).toEqual([['FORBIDDEN', 'site_forbidden']]);
      expect(forbidden(await gqlAs(credential, PULL, vars))).toEqual([['FORBIDDEN', 'site_forbidden']]);
      expect(forbidden(await gqlAs(credential, CHANGES, vars))).toEqual([['FORBIDDEN', 'site_forbidden']]);
    }
    await hooksSettled(bob);
    expect(await peerStatus(a.site)).toEqual(before.status);
    expect(await device(a.site)).toEqual(before.device);

    // The owner itself, over GraphQL: allowed; a window the payload contradicts is VALIDATION_FAILED.
    expect((await gqlAs(alice, PULL, vars)).data).toEqual({ pullChanges: { changes: expect.any(Number) } });
    const bad = await gqlAs(alice, PUSH, { ...vars, min: 1, max: 1 });
    expect(bad.errors?.map((e) => [e.extensions?.code, e.extensions?.syncCode])).toEqual([['VALIDATION_FAILED', 'invalid_request']]);
    expect(await peerStatus(a.site)).toEqual(before.status);
    expect((await gqlAs(alice2, PUSH, { ...vars, min: 1, max: 2 })).data).toEqual({ pushChanges: { lastOptimisticVersion: 2, failures: [] } });

    // The admin key and API keys are one principal: a site first used by the admin key is theirs.
    const adminSite = 'ad000000000000000000000000000001';
    expect((await gqlAs(t.adminKey, PULL, { db: db.databaseId, site: adminSite })).data).toEqual({ pullChanges: { changes: expect.any(Number) } });
    expect(await statusOf(db.apiKey, adminSite)).toEqual({ lastOptimisticVersion: 0, lastConfirmedVersion: 0, gaps: [] });
    expect(forbidden(await gqlAs(alice, PULL, { db: db.databaseId, site: adminSite }))).toEqual([['FORBIDDEN', 'site_forbidden']]);
  });
});
