import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestContext, providers, stopEmbeddedPg } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';
import { sha256Hex } from '../../crypto.ts';
import { verifyJwt } from './jwt.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('auth on %s', (provider) => {
  let ctx: TestContext;
  let databaseId: string;
  let otherDatabaseId: string;
  beforeAll(async () => {
    ctx = await createTestContext(provider);
    const p = await ctx.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'a' })).id;
    otherDatabaseId = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'b' })).id;
  });
  afterAll(async () => { await ctx.dispose(); });

  test('admin key: created once, only its hash stored', async () => {
    const key = await ctx.services.auth.ensureAdminKey();
    expect(key).toMatch(/^osa_/);
    expect(await ctx.services.auth.ensureAdminKey()).toBeNull();
    expect(await ctx.services.auth.verifyAdminKey(key ?? '')).not.toBeNull();
    expect(await ctx.services.auth.verifyAdminKey('osa_wrong')).toBeNull();
    const rows = await ctx.deps.prisma.adminKey.findMany();
    expect(JSON.stringify(rows)).not.toContain(key);
    expect(await ctx.services.auth.ensureAdminKey('configured-admin-key-123')).toBeNull();
    expect(await ctx.services.auth.verifyAdminKey('configured-admin-key-123')).not.toBeNull();
  });

  test('admin key check: a refused secret is not looked up again (briefly); revoked keys stop at once, new ones work at once', async () => {
    const { auth } = ctx.services;
    const lookups = vi.spyOn(ctx.deps.prisma.adminKey, 'findUnique');
    try {
      const device = 'osk_not-an-admin-key-at-all';
      expect(await auth.verifyAdminKey(device)).toBeNull();
      expect(await auth.verifyAdminKey(device)).toBeNull();
      expect(lookups).toHaveBeenCalledTimes(1); // the refusal was remembered
      // A key this process creates from a secret it refused a moment ago works at once.
      expect(await auth.ensureAdminKey(device)).toBeNull();
      expect(await auth.verifyAdminKey(device)).not.toBeNull();
      // Admin keys are never remembered as valid: one deleted behind the service's back (CLI) is refused at once.
      await ctx.deps.prisma.adminKey.delete({ where: { hash: sha256Hex(device) } });
      expect(await auth.verifyAdminKey(device)).toBeNull();
      expect(lookups).toHaveBeenCalledTimes(3);
    } finally {
      lookups.mockRestore();
    }
  });

  test('API keys: hashed, verified per database, revocable', async () => {
    const { auth } = ctx.services;
    const { apiKey, secret } = await auth.createApiKey(databaseId, 'server');
    expect(secret).toMatch(/^osk_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(await ctx.deps.prisma.apiKey.findMany())).not.toContain(secret);
    expect(await auth.verifyApiKey(databaseId, secret)).toEqual({ id: apiKey.id, name: 'server' });
    expect(await auth.verifyApiKey(otherDatabaseId, secret)).toBeNull();
    expect(await auth.listApiKeys(databaseId)).toHaveLength(1);
    await auth.revokeApiKey(apiKey.id);
    expect(await auth.verifyApiKey(databaseId, secret)).toBeNull();
    expect(await auth.listApiKeys(databaseId)).toHaveLength(0);
    await expect(auth.revokeApiKey('key_nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  test('access tokens: identity, expiry, revocation', async () => {
    const { auth } = ctx.services;
    const expiresAt = new Date(ctx.clock.now() + 3_600_000);
    const { accessToken, secret } = await auth.createAccessToken(databaseId, { userId: 'u1', name: 'Ada', attributes: { role: 'admin' }, expiresAt });
    expect(secret).toMatch(/^ost_/);
    expect(await auth.verifyAccessToken(databaseId, secret)).toMatchObject({ userId: 'u1', name: 'Ada', attributes: { role: 'admin' }, expiresAt });
    ctx.clock.advance(3_600_001);
    expect(await auth.verifyAccessToken(databaseId, secret)).toBeNull();
    const t2 = await auth.createAccessToken(databaseId, { userId: 'u2', name: 'Bob' });
    await auth.revokeAccessToken(t2.accessToken.id);
    expect(await auth.verifyAccessToken(databaseId, t2.secret)).toBeNull();
    await expect(auth.createAccessToken(databaseId, { userId: 'u', name: 'x', expiresAt: new Date(0) })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(auth.createAccessToken(databaseId, { userId: 'u', name: 'x', attributes: [1] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(accessToken.hash).not.toBe(secret);
  });

  test('JWT provider: HS256 secret encrypted at rest and usable by the data plane; JWKS validated', async () => {
    const { auth } = ctx.services;
    const secret = 'a-very-long-shared-secret-of-32-chars!!';
    await auth.configureJwtProvider(databaseId, { method: 'HS256', secret, issuer: 'https://issuer.example' });
    const row = await auth.getJwtProvider(databaseId);
    expect(row?.secretEnc).not.toContain(secret);
    const cfg = await auth.getJwtVerificationConfig(databaseId);
    expect(cfg).toEqual({ method: 'HS256', secret, issuer: 'https://issuer.example', audience: null });
    const jwt = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://issuer.example').setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    if (cfg?.method !== 'HS256') throw new Error('no config');
    expect((await verifyJwt(cfg, jwt)).sub).toBe('u1');
    await expect(verifyJwt({ ...cfg, secret: 'another-secret-another-secret-0000' }, jwt)).rejects.toThrow();

    await expect(auth.configureJwtProvider(databaseId, { method: 'HS256', secret: 'short' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(auth.configureJwtProvider(databaseId, { method: 'JWKS', jwksUri: 'http://idp.example/jwks' , issuer: 'x' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await auth.configureJwtProvider(databaseId, { method: 'JWKS', jwksUri: 'https://idp.example/.well-known/jwks.json', issuer: 'https://idp.example', audience: 'app' });
    expect(await auth.getJwtVerificationConfig(databaseId)).toEqual({ method: 'JWKS', jwksUri: 'https://idp.example/.well-known/jwks.json', issuer: 'https://idp.example', audience: 'app' });
    expect(await auth.removeJwtProvider(databaseId)).toBe(true);
    expect(await auth.getJwtVerificationConfig(databaseId)).toBeNull();
  });
});
