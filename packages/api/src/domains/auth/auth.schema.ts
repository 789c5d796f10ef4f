import { builder } from '../../builder.ts';
import { JwtMethod } from './auth.service.ts';

const JwtMethodEnum = builder.enumType('JwtMethod', { values: Object.values(JwtMethod) });

const ApiKeyRef = builder.prismaObject('ApiKey', {
  description: 'Database API key (bypasses RLS). The secret is only shown by createApiKey',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    prefix: t.exposeString('prefix'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
  }),
});

const AccessTokenRef = builder.prismaObject('AccessToken', {
  description: 'Access token of one user. The token is only shown by createAccessToken',
  fields: (t) => ({
    id: t.exposeID('id'),
    userId: t.exposeString('userId'),
    name: t.exposeString('name'),
    attributes: t.field({ type: 'JSON', resolve: (a) => JSON.parse(a.attributes) as unknown }),
    prefix: t.exposeString('prefix'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
  }),
});

type JwtProviderView = { configured: boolean; method: 'HS256' | 'JWKS' | null; issuer: string | null; audience: string | null; jwksUri: string | null; updatedAt: Date | null };
const JwtProviderRef = builder.objectRef<JwtProviderView>('JwtProvider').implement({
  description: 'JWT verification settings. The HS256 secret is write-only',
  fields: (t) => ({
    configured: t.exposeBoolean('configured'),
    method: t.field({ type: JwtMethodEnum, nullable: true, resolve: (p) => p.method }),
    issuer: t.exposeString('issuer', { nullable: true }),
    audience: t.exposeString('audience', { nullable: true }),
    jwksUri: t.exposeString('jwksUri', { nullable: true }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', nullable: true }),
  }),
});

const DatabaseAuthRef = builder.objectRef<{ databaseId: string }>('DatabaseAuth').implement({
  fields: (t) => ({
    apiKeys: t.field({
      type: [ApiKeyRef],
      args: { includeRevoked: t.arg.boolean({ defaultValue: false, description: 'Also list revoked keys (revokedAt set)' }) },
      resolve: (a, x, ctx) => ctx.services.auth.listApiKeys(a.databaseId, { includeRevoked: x.includeRevoked === true }),
    }),
    accessTokens: t.field({
      type: [AccessTokenRef],
      args: { includeRevoked: t.arg.boolean({ defaultValue: false, description: 'Also list revoked tokens (revokedAt set)' }) },
      resolve: (a, x, ctx) => ctx.services.auth.listAccessTokens(a.databaseId, { includeRevoked: x.includeRevoked === true }),
    }),
    jwtProvider: t.field({
      type: JwtProviderRef,
      resolve: async (a, _x, ctx): Promise<JwtProviderView> => {
        const p = await ctx.services.auth.getJwtProvider(a.databaseId);
        if (p === null) return { configured: false, method: null, issuer: null, audience: null, jwksUri: null, updatedAt: null };
        return { configured: true, method: p.method === 'JWKS' ? 'JWKS' : 'HS256', issuer: p.issuer, audience: p.audience, jwksUri: p.jwksUri, updatedAt: p.updatedAt };
      },
    }),
  }),
});

builder.prismaObjectFields('Database', (t) => ({
  auth: t.field({ type: DatabaseAuthRef, resolve: (d) => ({ databaseId: d.id }) }),
}));

const CreateApiKeyPayload = builder.objectRef<{ apiKey: { id: string }; secret: string }>('CreateApiKeyPayload').implement({
  fields: (t) => ({
    apiKey: t.field({ type: ApiKeyRef, resolve: (p) => p.apiKey as never }),
    secret: t.exposeString('secret', { description: 'Shown once; only its hash is stored' }),
  }),
});

const CreateAccessTokenPayload = builder.objectRef<{ accessToken: { id: string }; secret: string }>('CreateAccessTokenPayload').implement({
  fields: (t) => ({
    accessToken: t.field({ type: AccessTokenRef, resolve: (p) => p.accessToken as never }),
    token: t.string({ description: 'Shown once; only its hash is stored', resolve: (p) => p.secret }),
  }),
});

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreateApiKeyPayload,
    args: { databaseId: t.arg.id({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.auth.createApiKey(String(a.databaseId), a.name),
  }),
  revokeApiKey: t.field({
    type: ApiKeyRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.auth.revokeApiKey(String(a.id)),
  }),
  createAccessToken: t.field({
    type: CreateAccessTokenPayload,
    args: {
      databaseId: t.arg.id({ required: true }),
      userId: t.arg.string({ required: true }),
      name: t.arg.string({ required: true }),
      attributes: t.arg({ type: 'JSON' }),
      expiresAt: t.arg({ type: 'DateTime' }),
    },
    resolve: (_r, a, ctx) => ctx.services.auth.createAccessToken(String(a.databaseId), { userId: a.userId, name: a.name, attributes: a.attributes ?? {}, expiresAt: a.expiresAt ?? null }),
  }),
  revokeAccessToken: t.field({
    type: AccessTokenRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.auth.revokeAccessToken(String(a.id)),
  }),
  configureJwtProvider: t.field({
    type: JwtProviderRef,
    description: 'HS256 with a shared secret (write-only), or JWKS with issuer + jwksUri (+ audience)',
    args: {
      databaseId: t.arg.id({ required: true }),
      method: t.arg({ type: JwtMethodEnum, required: true }),
      secret: t.arg.string(), issuer: t.arg.string(), audience: t.arg.string(), jwksUri: t.arg.string(),
    },
    resolve: async (_r, a, ctx) => {
      const p = await ctx.services.auth.configureJwtProvider(String(a.databaseId), { method: a.method, secret: a.secret ?? null, issuer: a.issuer ?? null, audience: a.audience ?? null, jwksUri: a.jwksUri ?? null });
      return { configured: true, method: p.method === 'JWKS' ? ('JWKS' as const) : ('HS256' as const), issuer: p.issuer, audience: p.audience, jwksUri: p.jwksUri, updatedAt: p.updatedAt };
    },
  }),
  removeJwtProvider: t.boolean({
    args: { databaseId: t.arg.id({ required: true }) },
    resolve: (_r, a, ctx) => ctx.services.auth.removeJwtProvider(String(a.databaseId)),
  }),
}));
