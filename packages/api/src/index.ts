/**
 * `@offsync/api`: the composition root of the OffSync server and its building blocks — createApp and
 * createServices, configuration and the server key, the control-plane database, pub/sub (in-process or
 * Redis), logging, health and GraphQL limits. Each domain has its own barrel (src/domains/<name>/index.ts;
 * the sync domain is also `@offsync/api/sync`). Tests in test/ import only these (docs/ARCHITECTURE.md).
 */
export { createApp, GRAPHQL_PATH } from './app.ts';
export type { App, AppDeps, AppObservabilityOptions, AppSyncOptions } from './app.ts';
export { loadConfig, loadOrCreateServerKey, ConfigError } from './config.ts';
export type { Config } from './config.ts';
export { createSecretBox, generateSecret, parseServerKey, sha256Hex } from './crypto.ts';
export type { SecretBox } from './crypto.ts';
export { createPrismaClient, parseDatabaseUrl } from './db/prisma.ts';
export type { PrismaClient, DatabaseTarget } from './db/prisma.ts';
export { migrate, quotePgIdent } from './db/migrate.ts';
export { systemClock, silentLogger } from './deps.ts';
export type { Clock, Logger, ServiceDeps } from './deps.ts';
export { ApiError, ApiErrorCode, isApiError } from './errors.ts';
export { createRouter, sendJson } from './http/router.ts';
export type { HttpHandler } from './http/router.ts';
export { createApiPubSub, createRedisApiEventTarget, createRedisPubSub, DeviceEventKind } from './pubsub.ts';
export type { ApiEvents, ApiEventTarget, ApiPubSub, DeviceEventPayload, MetricsChangedPayload, RedisPubSub, RedisPubSubClient, SyncChangesPayload } from './pubsub.ts';
export { createServices } from './services.ts';
export type { Services } from './services.ts';
export { KeyMismatchError, rotateServerKey, verifyServerKey } from './key-rotation.ts';
export { graphqlLimitsPlugin } from './graphql-limits.ts';
export type { IntrospectionMode } from './graphql-limits.ts';
export { loadObservabilityConfig } from './observability/config.ts';
export { createHealth } from './observability/health.ts';
export { createLogger, prettyLine } from './observability/logger.ts';
export { sqliteDatabasePath } from './domains/databases/databases.service.ts';
export { verifyJwt } from './domains/auth/jwt.ts';
export type { JwtVerificationConfig, VerifiedAccessToken } from './domains/auth/auth.service.ts';
export type { RlsConfig, RlsPolicyEntry } from './domains/tables/tables.service.ts';
export { CredentialKind } from './domains/devices/devices.service.ts';
export type { DeviceSeen } from './domains/devices/devices.service.ts';
