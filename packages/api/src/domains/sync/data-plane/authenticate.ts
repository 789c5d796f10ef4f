/**
 * `authenticate`: the Bearer credential of a sync request → {@link Principal}, tried as
 *
 * 1. an API key of the database (full access, RLS bypassed),
 * 2. an access token minted by `createAccessToken` (claims like SQLite Cloud's `auth_json()`:
 *    `{ user_id, name, attributes, created_at, expires_at }`),
 * 3. a JWT verified with jose against the database's provider (HS256 secret or JWKS; `exp`
 *    required, `iss` / `aud` checked when configured; `sub` = user id; claims = the payload),
 * 4. on POSTGRES databases, `<db-user>:<password>` (the form SQLite Cloud's quickstart uses),
 *    checked by PostgreSQL itself — a login to the database as that user — and
 *    remembered for `dbLoginTtlMs` as a salted hash; a trusted principal like an API key (RLS
 *    bypassed).
 *
 * Anything else — unknown, revoked, expired, forged, `alg: none`, wrong key / issuer /
 * audience — is null, and the handler answers 401 without saying which check failed. An unknown
 * database id throws `database_not_found` first (404), as SQLite Cloud does.
 *
 * Verified credentials are cached for at most 1 s (credential-cache.ts): revocations in this
 * process take effect at once, in other processes within the TTL.
 */
import { verifyJwt } from '../../auth/jwt.ts';
import { ACCESS_TOKEN_PREFIX, API_KEY_PREFIX } from '../../auth/auth.service.ts';
import type { Services } from '../../../services.ts';
import type { DatabaseTarget, Principal } from '../sync-deps.ts';
import { SyncError } from '../sync-errors.ts';
import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { connectPg } from '../../databases/connection.ts';
import type { PgCentralSettings } from '../pg-central.ts';
import { createCredentialCache } from './credential-cache.ts';
import type { CredentialCache } from './credential-cache.ts';

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/** `SyncDeps.authenticate`: with `target` (resolved once for the request) the database is not looked up again. */
export type Authenticate = (databaseId: string, credential: string | undefined, target?: DatabaseTarget) => Promise<Principal | null>;

export interface AuthenticatorOptions {
  /** Lifetime of a cached verified credential (default and maximum 1000 ms; 0 = no cache). */
  ttlMs?: number;
  /** Clock of the cache (default the services' clock). */
  now?: () => number;
  /** How long a PostgreSQL login that succeeded is remembered (default 30 s; 0 = log in every time). */
  dbLoginTtlMs?: number;
  /** Checks a PostgreSQL login (default: connect with those credentials, session_user must be the user). */
  checkDbLogin?: (settings: PgCentralSettings) => Promise<boolean>;
}

export function createAuthenticator(
  services: Services,
  resolve: (databaseId: string) => Promise<DatabaseTarget | undefined>,
  onError: (message: string, error: unknown) => void,
  options: AuthenticatorOptions = {},
): Authenticate & { readonly cache: CredentialCache } {
  const cache = createCredentialCache({ ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }), now: options.now ?? (() => services.deps.clock.now()) });
  services.auth.onCredentialsChanged((change) => cache.invalidate(change));
  const now = options.now ?? (() => services.deps.clock.now());
  const logins = createDbLogins(options.dbLoginTtlMs ?? 30_000, now, options.checkDbLogin ?? checkPgLogin);
  const authenticate: Authenticate = async (databaseId, credential, resolved) => {
    const target = resolved ?? (await resolve(databaseId));
    if (target === undefined) throw new SyncError('database_not_found', `No database ${databaseId}`);
    if (credential === undefined || credential === '' || credential.length > 16_384) return null;
    return cache.get(databaseId, credential, async () => {
      const p = await verifyCredential(services, databaseId, credential, onError);
      if (p !== null || target.postgres === undefined) return p;
      return logins.verify(databaseId, target.postgres, credential);
    });
  };
  return Object.assign(authenticate, { cache });
}

async function verifyCredential(services: Services, databaseId: string, credential: string, onError: (m: string, e: unknown) => void): Promise<Principal | null> {
  if (JWT_SHAPE.test(credential)) return verifyJwtCredential(services, databaseId, credential, onError);

  // The secret's prefix says which table holds it (one control-plane query, not two, for a
  // token); a secret with neither prefix is looked up in both, as it always was.
  if (!credential.startsWith(`${ACCESS_TOKEN_PREFIX}_`)) {
    const key = await services.auth.verifyApiKey(databaseId, credential);
    if (key !== null) return { kind: 'apiKey', userId: null, claims: {}, credentialId: `apiKey:${key.id}` };
    if (credential.startsWith(`${API_KEY_PREFIX}_`)) return null;
  }
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

/**
 * A PostgreSQL login: connects with the credentials and checks the session really is that user
 * (a server or proxy that maps or ignores the user name does not count), 5 s timeout.
 */
async function checkPgLogin(s: PgCentralSettings): Promise<boolean> {
  let client: pg.Client | undefined;
  try {
    client = await connectPg(s);
    const r = await client.query<{ u: string }>('SELECT session_user::text AS u');
    return r.rows[0]?.u === s.user;
  } catch {
    return false;
  } finally {
    await client?.end().catch(() => {});
  }
}

const DB_USER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * `<db-user>:<password>` credentials of POSTGRES databases. A login that succeeded is remembered
 * (salted SHA-256 of database, user and password — never the password) for `ttlMs`; failures are
 * not remembered, so a changed password takes effect at once for new logins and within `ttlMs`
 * for remembered ones.
 */
function createDbLogins(ttlMs: number, now: () => number, check: (s: PgCentralSettings) => Promise<boolean>) {
  const salt = randomBytes(16);
  const ok = new Map<string, number>();
  return {
    async verify(databaseId: string, target: PgCentralSettings, credential: string): Promise<Principal | null> {
      const at = credential.indexOf(':');
      if (at <= 0) return null;
      const user = credential.slice(0, at);
      const password = credential.slice(at + 1);
      if (!DB_USER.test(user) || password === '') return null;
      const key = createHash('sha256').update(salt).update(`${databaseId}\0${user}\0${password}`).digest('base64');
      const principal: Principal = { kind: 'apiKey', userId: null, claims: {}, credentialId: `dbUser:${user}` };
      const until = ok.get(key);
      if (until !== undefined && until > now()) return principal;
      ok.delete(key);
      if (!(await check({ ...target, user, password }))) return null;
      if (ttlMs > 0) {
        if (ok.size > 10_000) ok.clear();
        ok.set(key, now() + ttlMs);
      }
      return principal;
    },
  };
}
