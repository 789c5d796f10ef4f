/**
 * Sync authentication through the real app: access tokens (revoked, expired) and JWTs verified
 * with jose against a JWKS served on loopback (RS256) — `alg: none`, expired, wrong audience,
 * wrong issuer and wrong key are all a bare 401.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { JWK } from 'jose';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createAccessToken, http, setupDatabase, startApp } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

type Key = Awaited<ReturnType<typeof generateKeyPair>>;
let t: RunningApp;
let db: { databaseId: string; apiKey: string };
let jwks: Server;
let issuer: string;
let good: Key;
let other: Key;

beforeAll(async () => {
  good = await generateKeyPair('RS256');
  other = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(good.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
  await new Promise<void>((ok) => jwks.listen(0, '127.0.0.1', ok));
  issuer = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
  t = await startApp();
  db = await setupDatabase(t);
  await t.gql('mutation($d: ID!, $u: String!, $i: String!) { configureJwtProvider(databaseId: $d, method: JWKS, jwksUri: $u, issuer: $i, audience: "sync") { method } }', {
    d: db.databaseId, u: `${issuer}/.well-known/jwks.json`, i: issuer,
  });
});
afterAll(async () => {
  await t.dispose();
  await new Promise<void>((ok) => jwks.close(() => ok()));
});

const site = 'fedcba9876543210fedcba9876543210';
/** A site id belongs to its first user (docs/PROTOCOL.md "Device identity"): other users pass their own `s`. */
const check = (credential: string | null, s = site) => http('POST', `${t.origin}/v2/cloudsync/databases/${db.databaseId}/${s}/check`, credential, { dbVersion: 0, seq: 0 });

function jwt(opts: { key?: Key; iss?: string; aud?: string; exp?: number | string; sub?: string } = {}): Promise<string> {
  const s = new SignJWT({ role: 'user' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(opts.iss ?? issuer).setAudience(opts.aud ?? 'sync').setExpirationTime(opts.exp ?? '5m');
  if (opts.sub !== '') s.setSubject(opts.sub ?? 'user-1');
  return s.sign((opts.key ?? good).privateKey);
}

test('a valid JWKS-verified JWT is accepted and the device is recorded as a JWT user', async () => {
  expect((await check(await jwt())).status).toBe(200);
  let dev = await t.app.services.devices.getDevice(db.databaseId, site);
  for (let i = 0; i < 40 && dev === null; i++) {
    await new Promise((r) => setTimeout(r, 25));
    dev = await t.app.services.devices.getDevice(db.databaseId, site);
  }
  expect(dev).toMatchObject({ credentialKind: 'JWT', userId: 'user-1' });
});

test('alg none, expired, wrong audience, wrong issuer, wrong key, no sub, garbage → 401 with the same bare body', async () => {
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: 'user-1', iss: issuer, aud: 'sync', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
  const bodies: string[] = [];
  for (const credential of [
    `${header}.${payload}.`,
    await jwt({ exp: Math.floor(Date.now() / 1000) - 120 }),
    await jwt({ aud: 'someone-else' }),
    await jwt({ iss: 'https://evil.example' }),
    await jwt({ key: other }),
    await jwt({ sub: '' }),
    'a.b.c',
  ]) {
    const r = await check(credential);
    expect(r.status).toBe(401);
    bodies.push(r.text);
  }
  expect(new Set(bodies).size).toBe(1);
});

test('access tokens: valid, revoked and expired', async () => {
  const token = await createAccessToken(t, db.databaseId, 'u-9');
  const site9 = '09090909090909090909090909090909';
  expect((await check(token, site9)).status).toBe(200);
  const list = await t.gql<{ database: { auth: { accessTokens: Array<{ id: string; userId: string }> } } }>('query($d: ID!) { database(id: $d) { auth { accessTokens { id userId } } } }', { d: db.databaseId });
  const id = list.database.auth.accessTokens.find((a) => a.userId === 'u-9')?.id;
  await t.gql('mutation($id: ID!) { revokeAccessToken(id: $id) { id } }', { id });
  expect((await check(token, site9)).status).toBe(401);

  const soon = new Date(Date.now() + 1500).toISOString();
  const r = await t.gql<{ createAccessToken: { token: string } }>('mutation($d: ID!, $e: DateTime) { createAccessToken(databaseId: $d, userId: "u-10", name: "short", expiresAt: $e) { token } }', { d: db.databaseId, e: soon });
  const site10 = '10101010101010101010101010101010';
  expect((await check(r.createAccessToken.token, site10)).status).toBe(200);
  await new Promise((ok) => setTimeout(ok, 1600));
  expect((await check(r.createAccessToken.token, site10)).status).toBe(401);
});

test('access-token claims follow auth_json(): user_id, name, attributes, created_at, expires_at', async () => {
  const token = await createAccessToken(t, db.databaseId, 'u-11', { team: 'blue' });
  const p = await t.app.dataPlane.deps.authenticate(db.databaseId, token);
  expect(p).toMatchObject({ kind: 'accessToken', userId: 'u-11', claims: { user_id: 'u-11', name: 't', attributes: { team: 'blue' }, expires_at: null } });
  expect(typeof p?.claims['created_at']).toBe('string');
  expect(await t.app.dataPlane.deps.authenticate(db.databaseId, db.apiKey)).toMatchObject({ kind: 'apiKey', userId: null, claims: {}, credentialId: expect.stringMatching(/^apiKey:/) });
});

test('a secret is looked up where its prefix says: a token costs no API-key query, a key no access-token query; others both', async () => {
  const auth = t.app.services.auth;
  const keys = vi.spyOn(auth, 'verifyApiKey');
  const tokens = vi.spyOn(auth, 'verifyAccessToken');
  try {
    const authenticate = (credential: string) => t.app.dataPlane.deps.authenticate(db.databaseId, credential);
    const token = await createAccessToken(t, db.databaseId, 'u-12');
    expect(token.startsWith('ost_')).toBe(true);
    expect(await authenticate(token)).toMatchObject({ kind: 'accessToken', userId: 'u-12' });
    const { secret } = await auth.createApiKey(db.databaseId, 'prefix');
    expect(secret.startsWith('osk_')).toBe(true);
    expect(await authenticate(secret)).toMatchObject({ kind: 'apiKey' });
    expect([keys.mock.calls.length, tokens.mock.calls.length]).toEqual([1, 1]);
    // Unknown secrets of either shape are refused after one look-up; a secret of neither shape is looked up in both.
    expect(await authenticate(`osk_${'x'.repeat(43)}`)).toBeNull();
    expect(await authenticate(`ost_${'x'.repeat(43)}`)).toBeNull();
    expect([keys.mock.calls.length, tokens.mock.calls.length]).toEqual([2, 2]);
    expect(await authenticate('not-a-prefixed-secret')).toBeNull();
    expect([keys.mock.calls.length, tokens.mock.calls.length]).toEqual([3, 3]);
  } finally {
    keys.mockRestore();
    tokens.mockRestore();
  }
});
