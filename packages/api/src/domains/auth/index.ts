/** The auth domain: control-plane credentials (API keys, access tokens), JWT providers and JWT verification. */
export { createAuthService, JwtMethod } from './auth.service.ts';
export type { AuthService, CredentialsChangedListener, JwtProviderInput, JwtVerificationConfig, VerifiedAccessToken } from './auth.service.ts';
export { verifyJwt } from './jwt.ts';
