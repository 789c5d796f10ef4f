/** JWT verification for the data plane (jose): HS256 shared secret or a remote JWKS. */
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyOptions } from 'jose';
import type { JwtVerificationConfig } from './auth.service.ts';

const jwksCache = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

/** Verifies `token` and returns its claims; throws a jose error when invalid. `exp` is required. */
export async function verifyJwt(config: JwtVerificationConfig, token: string): Promise<JWTPayload> {
  const options: JWTVerifyOptions = { requiredClaims: ['exp'] };
  if (config.issuer) options.issuer = config.issuer;
  if (config.audience) options.audience = config.audience;
  if (config.method === 'HS256') {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(config.secret), { ...options, algorithms: ['HS256'] });
    return payload;
  }
  let jwks = jwksCache.get(config.jwksUri);
  if (jwks === undefined) {
    jwks = createRemoteJWKSet(new URL(config.jwksUri));
    jwksCache.set(config.jwksUri, jwks);
  }
  const { payload } = await jwtVerify(token, jwks, { ...options, requiredClaims: ['exp', 'iss'] });
  return payload;
}
