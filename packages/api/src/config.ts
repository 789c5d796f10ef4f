/** Server configuration: parsed and validated from an env-like record (only main.ts passes process.env). */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseServerKey } from './crypto.ts';
import type { TrafficRetention } from './deps.ts';
import { DEFAULT_HOUR_RETENTION_DAYS, DEFAULT_MINUTE_RETENTION_DAYS } from './domains/metrics/retention.ts';
import type { IntrospectionMode } from './graphql-limits.ts';
import { parseCorsOrigins } from './http/cors.ts';
import type { CorsOrigins } from './http/cors.ts';
import { ensurePrivateDir } from './domains/sync/central-file.ts';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Undefined → SQLite at `<dataDir>/offsync.db`; `file:…` → SQLite; `postgres://…` → PostgreSQL. */
  databaseUrl: string | undefined;
  /** 32 bytes (OFFSYNC_SECRET_KEY), or null to use OFFSYNC_SECRET_KEY_FILE or `<dataDir>/server.key`. */
  secretKey: Uint8Array | null;
  /** OFFSYNC_SECRET_KEY_FILE: absolute path of the key file, outside DATA_DIR; null when not set. */
  secretKeyFile: string | null;
  /** OFFSYNC_SYNCHRONOUS: `PRAGMA synchronous` of central databases, FULL (default) or NORMAL. */
  centralSynchronous: 'FULL' | 'NORMAL';
  /** When set, this admin key is accepted (its hash is stored) and none is generated. */
  adminKey: string | null;
  expoPushUrl: string;
  billingPeriodStartDay: number;
  /** Base URL devices use (client snippets). */
  publicUrl: string;
  /** OFFSYNC_PUBLIC_URL when set: base of artifact URLs (else each request's own origin). */
  explicitPublicUrl: string | undefined;
  /** OFFSYNC_SCHEMA_HASH_MODE: strict (default) refuses uploads with an unknown schema hash; lenient accepts and remembers it. */
  schemaHashMode: 'strict' | 'lenient';
  /** REDIS_URL (`redis://…` or `rediss://…`): events go through Redis so several processes share them; undefined → in-memory. */
  redisUrl: string | undefined;
  /** OFFSYNC_REDIS_PREFIX: prefix of every Redis channel (default `offsync:`), so deployments can share one Redis. */
  redisPrefix: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function int(env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer between ${min} and ${max}`);
  return n;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const port = int(env, 'PORT', 4000, 0, 65535);
  const host = env['HOST'] || '127.0.0.1';
  // `npm start` at the repository root runs in packages/api; npm passes the caller's directory as
  // INIT_CWD, and relative paths are meant relative to it.
  const base = env['INIT_CWD'] || process.cwd();
  const dataDir = resolve(base, env['DATA_DIR'] || './data');
  let databaseUrl = env['DATABASE_URL'] || undefined;
  if (databaseUrl?.startsWith('file:')) databaseUrl = `file:${resolve(base, databaseUrl.slice('file:'.length))}`;
  if (databaseUrl !== undefined && !/^(file:|postgres(ql)?:\/\/)/.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must start with file:, postgres:// or postgresql://');
  }
  let secretKey: Uint8Array | null = null;
  if (env['OFFSYNC_SECRET_KEY']) {
    try {
      secretKey = parseServerKey(env['OFFSYNC_SECRET_KEY']);
    } catch (e) {
      throw new ConfigError(e instanceof Error ? e.message : String(e));
    }
  }
  const secretKeyFile = env['OFFSYNC_SECRET_KEY_FILE'] ? resolve(base, env['OFFSYNC_SECRET_KEY_FILE']) : null;
  if (secretKeyFile !== null) {
    if (secretKey !== null) throw new ConfigError('Set OFFSYNC_SECRET_KEY or OFFSYNC_SECRET_KEY_FILE, not both');
    const rel = relative(dataDir, secretKeyFile);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) throw new ConfigError('OFFSYNC_SECRET_KEY_FILE must be outside DATA_DIR (the key must not sit next to the secrets it encrypts)');
  }
  const centralSynchronous = (env['OFFSYNC_SYNCHRONOUS'] || 'FULL').toUpperCase();
  if (centralSynchronous !== 'FULL' && centralSynchronous !== 'NORMAL') throw new ConfigError('OFFSYNC_SYNCHRONOUS must be FULL or NORMAL');
  const adminKey = env['OFFSYNC_ADMIN_KEY'] || null;
  if (adminKey !== null && adminKey.length < 16) throw new ConfigError('OFFSYNC_ADMIN_KEY must be at least 16 characters');
  const expoPushUrl = env['EXPO_PUSH_URL'] || 'https://exp.host/--/api/v2/push/send';
  try {
    new URL(expoPushUrl);
  } catch {
    throw new ConfigError('EXPO_PUSH_URL must be a URL');
  }
  const billingPeriodStartDay = int(env, 'BILLING_PERIOD_START_DAY', 1, 1, 28);
  const displayHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const explicitPublicUrl = env['OFFSYNC_PUBLIC_URL'] ? env['OFFSYNC_PUBLIC_URL'].replace(/\/+$/, '') : undefined;
  if (explicitPublicUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(explicitPublicUrl);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ConfigError('OFFSYNC_PUBLIC_URL must be an http(s) URL');
  }
  const publicUrl = explicitPublicUrl ?? `http://${displayHost}:${port}`;
  const mode = (env['OFFSYNC_SCHEMA_HASH_MODE'] || 'strict').toLowerCase();
  if (mode !== 'strict' && mode !== 'lenient') throw new ConfigError('OFFSYNC_SCHEMA_HASH_MODE must be strict or lenient');
  const redisUrl = env['REDIS_URL'] || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) throw new ConfigError('REDIS_URL must start with redis:// or rediss://');
  const redisPrefix = env['OFFSYNC_REDIS_PREFIX'] ?? 'offsync:';
  if (redisPrefix === '' || redisPrefix.length > 64 || /[\s*?[\]]/.test(redisPrefix)) {
    throw new ConfigError('OFFSYNC_REDIS_PREFIX must be 1 to 64 characters without spaces or glob characters (*?[])');
  }
  return { port, host, dataDir, databaseUrl, secretKey, secretKeyFile, centralSynchronous, adminKey, expoPushUrl, billingPeriodStartDay, publicUrl, explicitPublicUrl, schemaHashMode: mode, redisUrl, redisPrefix };
}

export interface ServerKey {
  key: Uint8Array;
  created: boolean;
  /** env: OFFSYNC_SECRET_KEY; file: OFFSYNC_SECRET_KEY_FILE; dataDir: `<dataDir>/server.key`. */
  source: 'env' | 'file' | 'dataDir';
  /** The key file read or created (not for `env`). */
  file?: string;
}

/** Reads a key file (64 hex chars or base64 of 32 bytes); ConfigError names the file. */
export function readServerKeyFile(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the server key file ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return parseServerKey(text);
  } catch (e) {
    throw new ConfigError(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Returns the configured key (OFFSYNC_SECRET_KEY, else OFFSYNC_SECRET_KEY_FILE, which must exist),
 * or reads/creates `<dataDir>/server.key` (32 random bytes, hex, mode 0600; DATA_DIR 0700).
 */
export function loadOrCreateServerKey(config: Pick<Config, 'dataDir' | 'secretKey'> & { secretKeyFile?: string | null }): ServerKey {
  if (config.secretKey !== null) return { key: config.secretKey, created: false, source: 'env' };
  if (config.secretKeyFile != null) return { key: readServerKeyFile(config.secretKeyFile), created: false, source: 'file', file: config.secretKeyFile };
  const file = join(config.dataDir, 'server.key');
  if (existsSync(file)) return { key: readServerKeyFile(file), created: false, source: 'dataDir', file };
  ensurePrivateDir(config.dataDir);
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { key: new Uint8Array(key), created: true, source: 'dataDir', file };
}

/** Per-credential sync quotas and the control-plane busy timeout (docs/PROTOCOL.md "Quotas"). */
export interface LimitsConfig {
  /** OFFSYNC_RATE_LIMIT_PER_SECOND: token-bucket refill per credential (default 20; 0 = off). */
  rateLimitPerSecond: number;
  /** OFFSYNC_RATE_LIMIT_BURST: token-bucket size per credential (default 60). */
  rateLimitBurst: number;
  /** OFFSYNC_MAX_CONCURRENT_UPLOADS: uploads in flight per credential (default 4; 0 = unlimited). */
  maxConcurrentUploadsPerCredential: number;
  /** OFFSYNC_MAX_PENDING_UPLOAD_BYTES: uploaded-but-not-applied bytes per credential (default 64 MiB). */
  maxPendingUploadBytesPerCredential: number;
  /** OFFSYNC_CONTROL_PLANE_BUSY_TIMEOUT_MS: how long a control-plane SQLite write waits for a lock, without blocking (default 5000). */
  controlPlaneBusyTimeoutMs: number;
}

export function loadLimitsConfig(env: Record<string, string | undefined>): LimitsConfig {
  return {
    rateLimitPerSecond: int(env, 'OFFSYNC_RATE_LIMIT_PER_SECOND', 20, 0, 1_000_000),
    rateLimitBurst: int(env, 'OFFSYNC_RATE_LIMIT_BURST', 60, 1, 1_000_000),
    maxConcurrentUploadsPerCredential: int(env, 'OFFSYNC_MAX_CONCURRENT_UPLOADS', 4, 0, 10_000),
    maxPendingUploadBytesPerCredential: int(env, 'OFFSYNC_MAX_PENDING_UPLOAD_BYTES', 64 * 1024 * 1024, 1024, 2 ** 40),
    controlPlaneBusyTimeoutMs: int(env, 'OFFSYNC_CONTROL_PLANE_BUSY_TIMEOUT_MS', 5000, 0, 600_000),
  };
}

/** Retention of each central database's conflict log (docs/CONTROL-PLANE.md "Conflict log"). */
export interface ConflictLogConfig {
  /** OFFSYNC_CONFLICT_LOG_MAX_ENTRIES: newest entries kept per database (default 100,000). */
  maxEntries: number;
  /** OFFSYNC_CONFLICT_LOG_MAX_AGE_DAYS: days an entry is kept (default 30), here in ms. */
  maxAgeMs: number;
}

export function loadConflictLogConfig(env: Record<string, string | undefined>): ConflictLogConfig {
  return {
    maxEntries: int(env, 'OFFSYNC_CONFLICT_LOG_MAX_ENTRIES', 100_000, 1, 100_000_000),
    maxAgeMs: int(env, 'OFFSYNC_CONFLICT_LOG_MAX_AGE_DAYS', 30, 1, 36_500) * 86_400_000,
  };
}

/** Browser and GraphQL exposure (issue 9, point 4; docs/CONTROL-PLANE.md "Security model"). */
export interface HttpSecurityConfig {
  /**
   * OFFSYNC_CORS_ORIGINS: origins (comma list, `*` = any) allowed by CORS on `/graphql` and, unless
   * OFFSYNC_SYNC_CORS_ORIGINS is set, on the sync endpoints. Unset: `/graphql` same-origin only.
   */
  graphqlCorsOrigins: CorsOrigins | undefined;
  /** OFFSYNC_SYNC_CORS_ORIGINS (else OFFSYNC_CORS_ORIGINS, else `*`): CORS of the sync endpoints. */
  syncCorsOrigins: CorsOrigins | undefined;
  /** OFFSYNC_GRAPHQL_INTROSPECTION: who may introspect and get field suggestions (admin, all, off; default admin). */
  graphqlIntrospection: IntrospectionMode;
}

function corsOrigins(env: Record<string, string | undefined>, name: string): CorsOrigins | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return parseCorsOrigins(raw);
  } catch (e) {
    throw new ConfigError(`${name} must be * or a comma list of http(s) origins (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function loadHttpSecurityConfig(env: Record<string, string | undefined>): HttpSecurityConfig {
  const graphqlCorsOrigins = corsOrigins(env, 'OFFSYNC_CORS_ORIGINS');
  const syncCorsOrigins = corsOrigins(env, 'OFFSYNC_SYNC_CORS_ORIGINS') ?? graphqlCorsOrigins;
  const introspection = (env['OFFSYNC_GRAPHQL_INTROSPECTION'] || 'admin').toLowerCase();
  if (introspection !== 'admin' && introspection !== 'all' && introspection !== 'off') {
    throw new ConfigError('OFFSYNC_GRAPHQL_INTROSPECTION must be admin, all or off');
  }
  return { graphqlCorsOrigins, syncCorsOrigins, graphqlIntrospection: introspection };
}

/** Tombstone compaction and the resync horizon (docs/PROTOCOL.md "Compaction and the resync horizon"). */
export interface CompactionConfig {
  /** OFFSYNC_RESYNC_HORIZON_DAYS: devices not seen for longer are left out of compaction and must resync (default 30), here in ms. */
  horizonMs: number;
  /** OFFSYNC_COMPACTION_INTERVAL_MINUTES: how often every SQLite database is compacted (default 60; 0 = only on demand), here in ms. */
  intervalMs: number;
}

/**
 * Prebuilt G3 download pages (domains/sync/prebuilt-pages.ts; docs/ARCHITECTURE.md "Prebuilt
 * download pages"), turned into the sync HTTP handler's `prebuiltPages` by {@link prebuiltPagesOption}.
 */
export interface PrebuiltPagesConfig {
  /**
   * OFFSYNC_PREBUILT_PAGES: `auto` (default: on with one node, off with REDIS_URL, where the next
   * request may reach another node and a page built here would be built twice), `on` (several
   * nodes behind a balancer that keeps a device on one node) or `off`.
   */
  mode: 'auto' | 'on' | 'off';
  /** OFFSYNC_PREBUILT_PAGES_MAX_MB: payload held at once, all databases together (default 64; one database holds at most a quarter, 16 by default). */
  maxBytes: number;
}

export function loadPrebuiltPagesConfig(env: Record<string, string | undefined>): PrebuiltPagesConfig {
  const mode = (env['OFFSYNC_PREBUILT_PAGES'] || 'auto').toLowerCase();
  if (mode !== 'auto' && mode !== 'on' && mode !== 'off') throw new ConfigError('OFFSYNC_PREBUILT_PAGES must be auto, on or off');
  return { mode, maxBytes: int(env, 'OFFSYNC_PREBUILT_PAGES_MAX_MB', 64, 1, 65_536) * 1024 * 1024 };
}

/**
 * The sync handler's `prebuiltPages` option: false when off — `off`, or `auto` with a shared store
 * (`REDIS_URL`: several nodes) — else the cap (prebuilt-pages.ts gives one database a quarter of it).
 */
export function prebuiltPagesOption(config: PrebuiltPagesConfig, sharedStore: boolean): { maxBytes: number } | false {
  if (config.mode === 'off' || (config.mode === 'auto' && sharedStore)) return false;
  return { maxBytes: config.maxBytes };
}

/**
 * Retention of the traffic buckets behind metrics (domains/metrics/traffic-sql.ts):
 * OFFSYNC_METRICS_MINUTE_RETENTION_DAYS (default 7), OFFSYNC_METRICS_HOUR_RETENTION_DAYS (default
 * 90, at least the minutes'); day buckets are kept. Older buckets are deleted a minute after start,
 * then every hour (metrics.service.ts `scheduleExpiry`).
 */
export function loadTrafficRetentionConfig(env: Record<string, string | undefined>): TrafficRetention {
  const minuteDays = int(env, 'OFFSYNC_METRICS_MINUTE_RETENTION_DAYS', DEFAULT_MINUTE_RETENTION_DAYS, 1, 36_500);
  const hourDays = int(env, 'OFFSYNC_METRICS_HOUR_RETENTION_DAYS', DEFAULT_HOUR_RETENTION_DAYS, 1, 36_500);
  if (hourDays < minuteDays) throw new ConfigError('OFFSYNC_METRICS_HOUR_RETENTION_DAYS must be at least OFFSYNC_METRICS_MINUTE_RETENTION_DAYS');
  return { minuteMs: minuteDays * 86_400_000, hourMs: hourDays * 86_400_000, intervalMs: 3_600_000 };
}

export function loadCompactionConfig(env: Record<string, string | undefined>): CompactionConfig {
  return {
    horizonMs: int(env, 'OFFSYNC_RESYNC_HORIZON_DAYS', 30, 1, 36_500) * 86_400_000,
    intervalMs: int(env, 'OFFSYNC_COMPACTION_INTERVAL_MINUTES', 60, 0, 525_600) * 60_000,
  };
}
