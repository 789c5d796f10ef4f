/** Admin keys, database API keys, access tokens (stored as SHA-256 hashes) and JWT provider settings. */
import type { ServiceDeps } from '../../deps.ts';
import { generateId, generateSecret, sha256Hex } from '../../crypto.ts';
import { ApiError } from '../../errors.ts';
import { validateName, validateSecret, validateText, validateUrl } from '../../validation.ts';
import type { DatabasesService } from '../databases/databases.service.ts';

/** What an API key's secret starts with (`osk_…`). */
export const API_KEY_PREFIX = 'osk';
/** What an access token's secret starts with (`ost_…`). */
export const ACCESS_TOKEN_PREFIX = 'ost';

export const JwtMethod = { HS256: 'HS256', JWKS: 'JWKS' } as const;
export type JwtMethod = (typeof JwtMethod)[keyof typeof JwtMethod];

export interface VerifiedAccessToken {
  id: string;
  userId: string;
  name: string;
  attributes: Record<string, unknown>;
  createdAt: Date;
  expiresAt: Date | null;
}

export type JwtVerificationConfig =
  | { method: 'HS256'; secret: string; issuer: string | null; audience: string | null }
  | { method: 'JWKS'; jwksUri: string; issuer: string; audience: string | null };

export interface JwtProviderInput { method: JwtMethod; secret?: string | null; issuer?: string | null; audience?: string | null; jwksUri?: string | null }

/**
 * Told when credentials of a database stop being valid (revocation, JWT provider change), so
 * caches of verified credentials (data-plane/credential-cache.ts) drop them at once; `hash` is
 * the SHA-256 hex of the revoked secret, absent = every credential of the database.
 */
export type CredentialsChangedListener = (change: { databaseId: string; hash?: string }) => void;

/** `lastUsedAt` of an API key is written at most this often (and never awaited by a request). */
export const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/**
 * A credential found NOT to be an admin key is not looked up again for this long (real time, ms):
 * every GraphQL request asks first whether its Bearer is the admin key, and device credentials
 * never are. Only refusals are remembered — a revoked or rotated admin key (CLI, another process)
 * stops working at once — and keys created in this process clear them; a key created by another
 * process is accepted at most this long after a refusal of the same secret.
 */
export const NOT_ADMIN_CACHE_MS = 1000;
const NOT_ADMIN_ENTRIES = 10_000;

/** Visible prefix kept for listing (`osk_AbCd…`); the rest is never stored. */
const displayPrefix = (secret: string) => `${secret.slice(0, 8)}…`;

export function createAuthService(deps: ServiceDeps, databases: DatabasesService) {
  const { prisma, secretBox } = deps;
  const now = () => new Date(deps.clock.now());
  const listeners = new Set<CredentialsChangedListener>();
  const changed = (change: { databaseId: string; hash?: string }): void => {
    for (const l of listeners) {
      try {
        l(change);
      } catch (e) {
        deps.logger.error('auth: credentials-changed listener failed', { error: e instanceof Error ? e.message : String(e) });
      }
    }
  };
  /** SHA-256 of a secret that is no admin key → when that was found (performance.now(); oldest first; bounded). */
  const notAdmin = new Map<string, number>();
  /** API key id → clock of its last `lastUsedAt` write (least recently written first; bounded). */
  const lastUsedWrites = new Map<string, number>();
  const touchApiKey = (id: string): void => {
    const t = deps.clock.now();
    const last = lastUsedWrites.get(id);
    if (last !== undefined && t >= last && t - last < LAST_USED_WRITE_INTERVAL_MS) return;
    lastUsedWrites.delete(id);
    lastUsedWrites.set(id, t);
    if (lastUsedWrites.size > 10_000) lastUsedWrites.delete(lastUsedWrites.keys().next().value ?? id);
    // Fire and forget: a slow or locked control plane must not hold the request (updateMany: a key
    // deleted meanwhile is not an error).
    prisma.apiKey.updateMany({ where: { id }, data: { lastUsedAt: new Date(t) } }).then(
      () => {},
      (e: unknown) => deps.logger.error('auth: lastUsedAt update failed', { apiKeyId: id, error: e instanceof Error ? e.message : String(e) }),
    );
  };

  const service = {
    /** Subscribes to revocations and JWT provider changes (this process); returns the unsubscribe function. */
    onCredentialsChanged(listener: CredentialsChangedListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    /** First start: creates an admin key and returns it (print once). Configured key: stores its hash. */
    async ensureAdminKey(configured?: string | null): Promise<string | null> {
      notAdmin.clear();
      if (configured) {
        const hash = sha256Hex(validateSecret('OFFSYNC_ADMIN_KEY', configured, 16));
        await prisma.adminKey.upsert({ where: { hash }, create: { id: generateId('adm', 12), hash, createdAt: now() }, update: {} });
        return null;
      }
      if ((await prisma.adminKey.count()) > 0) return null;
      const secret = generateSecret('osa');
      await prisma.adminKey.create({ data: { id: generateId('adm', 12), hash: sha256Hex(secret), createdAt: now() } });
      return secret;
    },
    async verifyAdminKey(secret: string): Promise<string | null> {
      const hash = sha256Hex(secret);
      const refused = notAdmin.get(hash);
      const t = performance.now();
      if (refused !== undefined && t - refused < NOT_ADMIN_CACHE_MS) return null;
      const row = await prisma.adminKey.findUnique({ where: { hash } });
      if (row !== null) return row.id;
      notAdmin.delete(hash);
      notAdmin.set(hash, t);
      if (notAdmin.size > NOT_ADMIN_ENTRIES) notAdmin.delete(notAdmin.keys().next().value ?? hash);
      return null;
    },

    /** Active keys; with `includeRevoked` also the revoked ones (their `revokedAt` set). */
    listApiKeys(databaseId: string, opts: { includeRevoked?: boolean } = {}) {
      return prisma.apiKey.findMany({ where: { databaseId, ...(opts.includeRevoked === true ? {} : { revokedAt: null }) }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    },
    async createApiKey(databaseId: string, name: string) {
      await databases.getDatabase(databaseId);
      const secret = generateSecret(API_KEY_PREFIX);
      const apiKey = await prisma.apiKey.create({
        data: { id: generateId('key', 16), databaseId, name: validateName('name', name), prefix: displayPrefix(secret), hash: sha256Hex(secret), createdAt: now() },
      });
      return { apiKey, secret };
    },
    async revokeApiKey(id: string) {
      const key = await prisma.apiKey.findUnique({ where: { id } });
      if (key === null) throw new ApiError('NOT_FOUND', `API key ${id} not found`, { details: { apiKeyId: id } });
      if (key.revokedAt) return key;
      const revoked = await prisma.apiKey.update({ where: { id }, data: { revokedAt: now() } });
      // Live `changes` subscriptions of this key end now (domains/sync/graphql/live-sessions.ts).
      deps.pubsub.publish('syncAccessEnded', key.databaseId, { databaseId: key.databaseId, reason: 'CREDENTIAL_REVOKED', credentialId: `apiKey:${id}`, at: now().toISOString() });
      changed({ databaseId: key.databaseId, hash: key.hash });
      return revoked;
    },
    /**
     * For the data plane: the key's id and name when `secret` is a live API key of this database.
     * Records `lastUsedAt` at most once a minute per key, without waiting for the write.
     */
    async verifyApiKey(databaseId: string, secret: string): Promise<{ id: string; name: string } | null> {
      const key = await prisma.apiKey.findUnique({ where: { hash: sha256Hex(secret) } });
      if (key === null || key.databaseId !== databaseId || key.revokedAt !== null) return null;
      touchApiKey(key.id);
      return { id: key.id, name: key.name };
    },

    /** Active tokens; with `includeRevoked` also the revoked ones (their `revokedAt` set). */
    listAccessTokens(databaseId: string, opts: { includeRevoked?: boolean } = {}) {
      return prisma.accessToken.findMany({ where: { databaseId, ...(opts.includeRevoked === true ? {} : { revokedAt: null }) }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    },
    async createAccessToken(databaseId: string, input: { userId: string; name: string; attributes?: unknown; expiresAt?: Date | null }) {
      await databases.getDatabase(databaseId);
      const userId = validateText('userId', input.userId, 256);
      if (userId === '') throw new ApiError('VALIDATION_FAILED', 'userId: must not be empty', { details: { field: 'userId' } });
      const attributes = input.attributes ?? {};
      if (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes)) {
        throw new ApiError('VALIDATION_FAILED', 'attributes: must be a JSON object', { details: { field: 'attributes' } });
      }
      const json = JSON.stringify(attributes);
      if (json.length > 8192) throw new ApiError('VALIDATION_FAILED', 'attributes: too large', { details: { field: 'attributes' } });
      if (input.expiresAt && input.expiresAt.getTime() <= deps.clock.now()) {
        throw new ApiError('VALIDATION_FAILED', 'expiresAt: must be in the future', { details: { field: 'expiresAt' } });
      }
      const secret = generateSecret(ACCESS_TOKEN_PREFIX);
      const accessToken = await prisma.accessToken.create({
        data: {
          id: generateId('tok', 16), databaseId, userId, name: validateText('name', input.name, 128), attributes: json,
          prefix: displayPrefix(secret), hash: sha256Hex(secret), createdAt: now(), expiresAt: input.expiresAt ?? null,
        },
      });
      return { accessToken, secret };
    },
    async revokeAccessToken(id: string) {
      const tok = await prisma.accessToken.findUnique({ where: { id } });
      if (tok === null) throw new ApiError('NOT_FOUND', `Access token ${id} not found`, { details: { accessTokenId: id } });
      if (tok.revokedAt) return tok;
      const revoked = await prisma.accessToken.update({ where: { id }, data: { revokedAt: now() } });
      deps.pubsub.publish('syncAccessEnded', tok.databaseId, { databaseId: tok.databaseId, reason: 'CREDENTIAL_REVOKED', credentialId: `accessToken:${id}`, at: now().toISOString() });
      changed({ databaseId: tok.databaseId, hash: tok.hash });
      return revoked;
    },
    /**
     * For the re-validation of live subscriptions: which of these API key / access token ids are
     * still valid for `databaseId` (not revoked, not expired). Reads only (no `lastUsedAt` write).
     */
    async validCredentialIds(databaseId: string, ids: { apiKeys: readonly string[]; accessTokens: readonly string[] }): Promise<Set<string>> {
      const out = new Set<string>();
      if (ids.apiKeys.length > 0) {
        const keys = await prisma.apiKey.findMany({ where: { id: { in: [...ids.apiKeys] }, databaseId, revokedAt: null }, select: { id: true } });
        for (const k of keys) out.add(k.id);
      }
      if (ids.accessTokens.length > 0) {
        const toks = await prisma.accessToken.findMany({ where: { id: { in: [...ids.accessTokens] }, databaseId, revokedAt: null }, select: { id: true, expiresAt: true } });
        for (const t of toks) if (t.expiresAt === null || t.expiresAt.getTime() > deps.clock.now()) out.add(t.id);
      }
      return out;
    },
    /** For the data plane: the token's identity, or null when unknown, revoked, expired or of another database. */
    async verifyAccessToken(databaseId: string, secret: string): Promise<VerifiedAccessToken | null> {
      const tok = await prisma.accessToken.findUnique({ where: { hash: sha256Hex(secret) } });
      if (tok === null || tok.databaseId !== databaseId || tok.revokedAt !== null) return null;
      if (tok.expiresAt !== null && tok.expiresAt.getTime() <= deps.clock.now()) return null;
      return { id: tok.id, userId: tok.userId, name: tok.name, attributes: JSON.parse(tok.attributes) as Record<string, unknown>, createdAt: tok.createdAt, expiresAt: tok.expiresAt };
    },

    async getJwtProvider(databaseId: string) {
      return prisma.jwtProvider.findUnique({ where: { databaseId } });
    },
    async configureJwtProvider(databaseId: string, input: JwtProviderInput) {
      await databases.getDatabase(databaseId);
      const issuer = input.issuer ? validateText('issuer', input.issuer, 512) : null;
      const audience = input.audience ? validateText('audience', input.audience, 512) : null;
      let data;
      if (input.method === 'HS256') {
        if (!input.secret) throw new ApiError('VALIDATION_FAILED', 'secret: HS256 needs a shared secret', { details: { field: 'secret' } });
        data = { method: 'HS256', secretEnc: secretBox.encrypt(validateSecret('secret', input.secret, 32)), issuer, audience, jwksUri: null };
      } else if (input.method === 'JWKS') {
        if (!input.jwksUri || !issuer) throw new ApiError('VALIDATION_FAILED', 'jwksUri and issuer: JWKS needs both', { details: { field: input.jwksUri ? 'issuer' : 'jwksUri' } });
        data = { method: 'JWKS', secretEnc: null, issuer, audience, jwksUri: validateUrl('jwksUri', input.jwksUri, { requireHttps: true }) };
      } else {
        throw new ApiError('VALIDATION_FAILED', 'method: must be HS256 or JWKS', { details: { field: 'method' } });
      }
      const provider = await prisma.jwtProvider.upsert({ where: { databaseId }, create: { databaseId, ...data }, update: data });
      changed({ databaseId });
      return provider;
    },
    async removeJwtProvider(databaseId: string): Promise<boolean> {
      await databases.getDatabase(databaseId);
      const removed = (await prisma.jwtProvider.deleteMany({ where: { databaseId } })).count > 0;
      changed({ databaseId });
      return removed;
    },
    /** For the data plane: how to verify JWTs of this database (secret decrypted), or null. */
    async getJwtVerificationConfig(databaseId: string): Promise<JwtVerificationConfig | null> {
      const p = await prisma.jwtProvider.findUnique({ where: { databaseId } });
      if (p === null) return null;
      if (p.method === 'HS256' && p.secretEnc !== null) return { method: 'HS256', secret: secretBox.decrypt(p.secretEnc), issuer: p.issuer, audience: p.audience };
      if (p.method === 'JWKS' && p.jwksUri !== null && p.issuer !== null) return { method: 'JWKS', jwksUri: p.jwksUri, issuer: p.issuer, audience: p.audience };
      return null;
    },
  };
  return service;
}
export type AuthService = ReturnType<typeof createAuthService>;
