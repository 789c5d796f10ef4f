/**
 * `authenticate`: the Bearer credential of a sync request → {@link Principal}, tried as
 *
 * 1. an API key of the database (full access, RLS bypassed),
 * 2. an access token minted by `createAccessToken` (claims like SQLite Cloud's `auth_json()`:
 *    `{ user_id, name, attributes, created_at, expires_at }`),
 * 3. a JWT verified with jose against the database's provider (HS256 secret or JWKS; `exp`
 *    required, `iss` / `aud` checked when configured; `sub` = user id; claims = the payload).
 *
 * Anything else — unknown, revoked, expired, forged, `alg: none`, wrong key / issuer /
 * audience — is null, and the handler answers 401 without saying which check failed. An unknown
 * database id throws `database_not_found` first (404), as SQLite Cloud does.
 *
 * Verified credentials are cached for at most 1 s (credential-cache.ts): revocations in this
 * process take effect at once, in other processes within the TTL.
 */
import { verifyJwt } from '../../auth/jwt.ts';
import type { Services } from '../../../services.ts';
import type { DatabaseTarget, Principal } from '../sync-deps.ts';
import { SyncError } from '../sync-errors.ts';
import { createCredentialCache } from './credential-cache.ts';
import type { CredentialCache } from './credential-cache.ts';

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

export type Authenticate = (databaseId: string, credential: string | undefined) => Promise<Principal | null>;

export interface AuthenticatorOptions {
  /** Lifetime of a cached verified credential (default and maximum 1000 ms; 0 = no cache). */
  ttlMs?: number;
  /** Clock of the cache (default the services' clock). */
  now?: () => number;
}

export function createAuthenticator(
  services: Services,
  resolve: (databaseId: string) => Promise<DatabaseTarget | undefined>,
  onError: (message: string, error: unknown) => void,
  options: AuthenticatorOptions = {},
): Authenticate & { readonly cache: CredentialCache } {
  const cache = createCredentialCache({ ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }), now: options.now ?? (() => services.deps.clock.now()) });
  services.auth.onCredentialsChanged((change) => cache.invalidate(change));
  const authenticate: Authenticate = async (databaseId, credential) => {
    if ((await resolve(databaseId)) === undefined) throw new SyncError('database_not_found', `No database ${databaseId}`);
    if (credential === undefined || credential === '' || credential.length > 16_384) return null;
    return cache.get(databaseId, credential, () => verifyCredential(services, databaseId, credential, onError));
  };
  return Object.assign(authenticate, { cache });
}

async function verifyCredential(services: Services, databaseId: string, credential: string, onError: (m: string, e: unknown) => void): Promise<Principal | null> {
  if (JWT_SHAPE.test(credential)) return verifyJwtCredential(services, databaseId, credential, onError);

  const key = await services.auth.verifyApiKey(databaseId, credential);
  if (key !== null) return { kind: 'apiKey', userId: null, claims: {}, credentialId: `apiKey:${key.id}` };

  const token = await services.auth.verifyAccessToken(databaseId, credential);
  if (token === null) return null;
  return accessTokenPrincipal(token);
}

/** The principal of an access token (also used by the RLS preview, domains/tables/rls-preview.ts). */
export function accessTokenPrincipal(token: { id: string; userId: string; name: string; attributes: Record<string, unknown>; createdAt: Date; expiresAt: Date | null }): Principal {
  return {
    kind: 'accessToken',
    userId: token.userId,
    credentialId: `accessToken:${token.id}`,
    ...(token.expiresAt === null ? {} : { expiresAt: token.expiresAt.getTime() }),
    claims: {
      user_id: token.userId,
      name: token.name,
      attributes: token.attributes,
      created_at: token.createdAt.toISOString(),
      expires_at: token.expiresAt === null ? null : token.expiresAt.toISOString(),
    },
  };
}

async function verifyJwtCredential(services: Services, databaseId: string, jwt: string, onError: (m: string, e: unknown) => void): Promise<Principal | null> {
  const config = await services.auth.getJwtVerificationConfig(databaseId);
  if (config === null) return null;
  try {
    const claims = await verifyJwt(config, jwt);
    if (typeof claims.sub !== 'string' || claims.sub === '') return null;
    return { kind: 'jwt', userId: claims.sub, claims: { ...claims }, credentialId: `jwt:${claims.sub}`, ...(typeof claims.exp === 'number' ? { expiresAt: claims.exp * 1000 } : {}) };
  } catch (e) {
    // Invalid tokens are the caller's problem (401); an unreachable JWKS endpoint is ours to log.
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '';
    if (code === 'ERR_JWKS_TIMEOUT' || (code === '' && !(e instanceof TypeError))) onError('sync: JWT verification failed', e);
    return null;
  }
}
