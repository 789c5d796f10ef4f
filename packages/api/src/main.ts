/** `npm start`: the only file that reads process.env. Migrate, ensure an admin key, listen, shut down gracefully. */
import { createHmac } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createApp } from './app.ts';
import { loadCompactionConfig, loadTrafficRetentionConfig, loadConfig, loadConflictLogConfig, loadHttpSecurityConfig, loadLimitsConfig, loadOrCreateServerKey, loadPrebuiltPagesConfig, prebuiltPagesOption } from './config.ts';
import { createSecretBox } from './crypto.ts';
import { prepareControlPlaneFile, secureDataDir } from './data-dir.ts';
import { verifyServerKey } from './key-rotation.ts';
import { createPrismaClient, parseDatabaseUrl } from './db/prisma.ts';
import { migrate } from './db/migrate.ts';
import { createStaticDashboardHandler } from './http/static-dashboard.ts';
import { systemClock } from './deps.ts';
import { loadObservabilityConfig } from './observability/config.ts';
import { createLogger } from './observability/logger.ts';
import { createApiPubSub, createRedisPubSub } from './pubsub.ts';
import type { RedisPubSub } from './pubsub.ts';
import { createRedisSharedStore } from './domains/sync/shared-store.ts';
import type { SharedStore } from './domains/sync/shared-store.ts';

async function main(): Promise<void> {
  // Structured logs on standard error (pino JSON lines; a compact human line on a terminal), LOG_LEVEL.
  const observability = loadObservabilityConfig(process.env, process.stderr.isTTY === true);
  const logger = createLogger({ level: observability.logLevel, format: observability.logFormat });
  const config = loadConfig(process.env);
  const httpSecurity = loadHttpSecurityConfig(process.env);
  const { controlPlaneBusyTimeoutMs, ...quotas } = loadLimitsConfig(process.env);
  const prebuiltPages = loadPrebuiltPagesConfig(process.env);
  const target = parseDatabaseUrl(config.databaseUrl, config.dataDir);
  // DATA_DIR 0700, its files 0600 (docs/ARCHITECTURE.md "Files and keys").
  secureDataDir(config.dataDir, logger);
  if (target.provider === 'sqlite') prepareControlPlaneFile(target.file, config.dataDir, logger);
  const applied = await migrate(target);
  if (applied.length > 0) logger.info('migrations applied', { applied });
  const { key, created, source, file: keyFile } = loadOrCreateServerKey(config);
  if (created) logger.info('server key generated', { file: keyFile });
  const dataDirKey = join(config.dataDir, 'server.key');
  if (source === 'dataDir') {
    logger.warn('the server key sits in DATA_DIR next to the secrets it encrypts; move it out with OFFSYNC_SECRET_KEY_FILE (or OFFSYNC_SECRET_KEY)', { file: keyFile });
  } else if (existsSync(dataDirKey)) {
    logger.warn('a server.key in DATA_DIR is not used (the key comes from elsewhere); destroy it if it is an old key', { file: dataDirKey });
  }
  if (source === 'file' && keyFile !== undefined && (statSync(keyFile).mode & 0o077) !== 0) {
    logger.warn('the server key file is readable by group or others; chmod 600 it', { file: keyFile, mode: (statSync(keyFile).mode & 0o777).toString(8) });
  }
  const secretBox = createSecretBox(key);
  const prisma = createPrismaClient(target, { busyTimeoutMs: controlPlaneBusyTimeoutMs });
  // A key that does not decrypt the stored secrets (e.g. the old one after rotate-key) stops the start.
  await verifyServerKey(prisma, secretBox);
  if (config.centralSynchronous === 'NORMAL') logger.warn('OFFSYNC_SYNCHRONOUS=NORMAL: an acknowledged upload can be lost on power loss');

  // With REDIS_URL every event goes through Redis: processes behind one load balancer share
  // device events, metrics and live sync changes (docs/ARCHITECTURE.md "Scaling out").
  let redis: RedisPubSub | undefined;
  if (config.redisUrl !== undefined) {
    redis = await createRedisPubSub({
      url: config.redisUrl,
      prefix: config.redisPrefix,
      onError: (e) => logger.error('redis pub/sub failed', { error: e instanceof Error ? e.message : String(e) }),
    });
    logger.info('events go through Redis', { prefix: config.redisPrefix });
  }
  // …and so do artifact URLs, G3 cursors and chunk buffers: any node serves any sync request.
  let sharedStore: SharedStore | undefined;
  if (config.redisUrl !== undefined) {
    sharedStore = await createRedisSharedStore({
      url: config.redisUrl,
      prefix: config.redisPrefix,
      onError: (e) => logger.error('redis sync state failed', { error: e instanceof Error ? e.message : String(e) }),
    });
  }

  const app = createApp({
    prisma,
    provider: target.provider,
    pubsub: redis?.pubsub ?? createApiPubSub(),
    secretBox,
    centralSynchronous: config.centralSynchronous,
    clock: systemClock,
    logger,
    // CORS allowlists and who may introspect (docs/CONTROL-PLANE.md "Security model").
    introspection: httpSecurity.graphqlIntrospection,
    cors: {
      ...(httpSecurity.graphqlCorsOrigins === undefined ? {} : { graphql: httpSecurity.graphqlCorsOrigins }),
      ...(httpSecurity.syncCorsOrigins === undefined ? {} : { sync: httpSecurity.syncCorsOrigins }),
    },
    // The dashboard's built assets at / (packages/dashboard; GraphiQL stays at /graphql).
    httpHandlers: [createStaticDashboardHandler()],
    dataDir: config.dataDir,
    publicUrl: config.publicUrl,
    billingPeriodStartDay: config.billingPeriodStartDay,
    metricsThrottleMs: 250,
    // Tombstone compaction on a timer, and the resync horizon (domains/sync/compaction.ts).
    compaction: loadCompactionConfig(process.env),
    // Minute and hour traffic buckets expire; day buckets stay (domains/metrics/traffic-sql.ts).
    trafficRetention: loadTrafficRetentionConfig(process.env),
    // /healthz, /readyz (Redis included when configured), /metrics (docs/CONTROL-PLANE.md "Operating").
    observability: {
      accessLog: logger,
      metricsToken: observability.metricsToken,
      readinessChecks: redis?.ping === undefined ? [] : [{ name: 'redis', check: redis.ping }],
    },
    sync: {
      // Artifact URLs stay valid across restarts for their short lifetime: key derived from the server key.
      artifactSecret: new Uint8Array(createHmac('sha256', key).update('offsync/sync/artifact-urls/v1').digest()),
      schemaHashMode: config.schemaHashMode,
      ...quotas,
      conflictLog: loadConflictLogConfig(process.env),
      ...(sharedStore === undefined ? {} : { sharedStore }),
      // G3 pages built while the previous reply travels (docs/ARCHITECTURE.md "Prebuilt download pages").
      prebuiltPages: prebuiltPagesOption(prebuiltPages, sharedStore !== undefined),
      expoPushUrl: config.expoPushUrl,
      ...(config.explicitPublicUrl === undefined ? {} : { publicUrl: config.explicitPublicUrl }),
    },
  });
  const adminKey = await app.services.auth.ensureAdminKey(config.adminKey);

  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen(config.port, config.host, () => resolve());
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  process.stdout.write(`OffSync listening on http://${host}:${port}/graphql\n`);
  process.stdout.write(`Dashboard: http://${host}:${port}/\n`);
  if (adminKey !== null) {
    process.stdout.write(`Admin key (shown once): ${adminKey}\n`);
    process.stdout.write('Send it as "Authorization: Bearer <admin key>" (GraphiQL: Headers tab).\n');
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal, drainDelayMs: observability.drainDelayMs, graceMs: observability.shutdownGraceMs });
    const force = setTimeout(() => process.exit(1), observability.drainDelayMs + observability.shutdownGraceMs + 5_000);
    force.unref();
    // Draining: /readyz answers 503 at once, requests in flight finish, then everything closes.
    app.shutdown({ drainDelayMs: observability.drainDelayMs, graceMs: observability.shutdownGraceMs }).then(() => redis?.close()).then(() => sharedStore?.close()).then(() => process.exit(0), (e: unknown) => {
      logger.error('shutdown failed', { error: String(e) });
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  process.stderr.write(`OffSync failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
