/**
 * Composition root: Yoga (GraphQL over HTTP + GraphiQL) and graphql-ws on one node http.Server,
 * with the composable router for the data plane's endpoints. No ports are opened here.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createYoga, maskError } from 'graphql-yoga';
import type { YogaServerInstance } from 'graphql-yoga';
import type { GraphQLContext, Viewer } from './context.ts';
import { extractBearer, resolveViewer } from './context.ts';
import type { Logger, ServiceDeps } from './deps.ts';
import { createDataPlane } from './domains/sync/data-plane/index.ts';
import type { DataPlane, DataPlaneOptions } from './domains/sync/data-plane/index.ts';
import { trackDeviceSyncState } from './domains/devices/device-sync-state.ts';
import { installCompaction } from './domains/sync/compaction.ts';
import type { CompactionOptions } from './domains/sync/compaction.ts';
import { createSyncHttpHandler } from './domains/sync/http/handler.ts';
import { syncCorsPolicy } from './domains/sync/http/io.ts';
import type { SyncHttpHandler, SyncHttpOptions } from './domains/sync/http/handler.ts';
import { createSyncService } from './domains/sync/sync.service.ts';
import type { SyncService } from './domains/sync/sync.service.ts';
import { unmaskApiErrors } from './errors.ts';
import { graphqlLimitsPlugin } from './graphql-limits.ts';
import type { GraphQLLimits, IntrospectionMode } from './graphql-limits.ts';
import { corsPolicy } from './http/cors.ts';
import type { CorsOrigins } from './http/cors.ts';
import { createGraphiqlPage } from './http/graphiql-page.ts';
import { createRouter } from './http/router.ts';
import type { HttpHandler } from './http/router.ts';
import { logErrorWith, yogaLogger } from './logging/log-errors.ts';
import { liveSessionsOf } from './domains/sync/graphql/live-sessions.ts';
import { controlPlaneCheck, createHealth, migrationsCheck } from './observability/health.ts';
import type { Health, ReadinessCheck } from './observability/health.ts';
import { createHttpObserver } from './observability/http.ts';
import { createMetrics } from './observability/metrics.ts';
import type { Metrics } from './observability/metrics.ts';
import { instrumentSyncService, observeSyncDeps } from './observability/sync.ts';
import { schema } from './schema/index.ts';
import { createServices } from './services.ts';
import type { Services } from './services.ts';
import { attachGraphqlWs } from './ws/graphql-ws.ts';

export const GRAPHQL_PATH = '/graphql';
const GRAPHIQL_OPTIONS = { subscriptionsProtocol: 'WS', title: 'OffSync control plane' } as const;

export interface AppDeps extends ServiceDeps {
  /** Tried in order for paths other than /graphql; return true when handled. */
  httpHandlers?: readonly HttpHandler[];
  /** Query limits (graphql-limits.ts; every field optional). */
  limits?: GraphQLLimits;
  /** Who may introspect and get "Did you mean" suggestions (default `admin`; OFFSYNC_GRAPHQL_INTROSPECTION). */
  introspection?: IntrospectionMode;
  /**
   * Browser origins allowed by CORS (http/cors.ts; OFFSYNC_CORS_ORIGINS): `/graphql` defaults to
   * same-origin only, the sync endpoints (and `httpHandlers`) to `*`. Never with credentials.
   */
  cors?: { graphql?: CorsOrigins; sync?: CorsOrigins };
  /** The sync data plane (always mounted); every field is optional. */
  sync?: AppSyncOptions;
  /** Health, readiness and metrics (observability/; docs/CONTROL-PLANE.md "Operating"); every field optional. */
  observability?: AppObservabilityOptions;
  /** Tombstone compaction (domains/sync/compaction.ts): resync horizon, timer (off unless `intervalMs`). */
  compaction?: CompactionOptions;
}

export interface AppObservabilityOptions {
  /**
   * The access log: one line per HTTP request and per sync operation outside a request
   * (observability/http.ts). main.ts passes the server logger; unset = no such lines (request ids
   * and metrics still work), so a test's capturing `logger` sees only what it looks for.
   */
  accessLog?: Logger;
  /** Bearer token of `GET /metrics` (OFFSYNC_METRICS_TOKEN); unset = open. */
  metricsToken?: string | undefined;
  /** prom-client's default process metrics (event-loop lag, memory, CPU) from the first scrape on (default true). */
  processMetrics?: boolean;
  /** More `/readyz` checks, e.g. Redis (main.ts adds it with REDIS_URL). */
  readinessChecks?: readonly ReadinessCheck[];
  /** Time limit of each readiness check (default 1000 ms). */
  readinessTimeoutMs?: number;
}

export interface AppSyncOptions extends Omit<SyncHttpOptions, 'artifactSecret'>, Omit<DataPlaneOptions, 'dataDir' | 'logError'> {
  /** HMAC key of artifact URLs; default: 32 random bytes per process (main.ts derives it from the server key). */
  artifactSecret?: string | Uint8Array;
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>;
  server: Server;
  services: Services;
  /** The one sync service, built here and handed to the HTTP protocol, the GraphQL context and graphql-ws. */
  sync: SyncService;
  /** The SQLite Sync HTTP endpoints (mounted before `httpHandlers`). */
  syncHttp: SyncHttpHandler;
  dataPlane: DataPlane;
  /** This app's Prometheus registry and recorders (`GET /metrics`). */
  metrics: Metrics;
  /** `/healthz`, `/readyz` and draining. */
  health: Health;
  /**
   * Graceful stop (SIGTERM): `/readyz` answers 503 `draining` at once; after `drainDelayMs`
   * (default 0: time for a load balancer to notice) the server stops accepting connections,
   * lets requests in flight finish for up to `graceMs` (default 5000), then {@link dispose}s.
   */
  shutdown(options?: { drainDelayMs?: number; graceMs?: number }): Promise<void>;
  dispose(): Promise<void>;
}

/** Drops undefined values (exactOptionalPropertyTypes). */
function definedOnly<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

export function createApp(deps: AppDeps): App {
  const services = createServices(deps);
  const { artifactSecret, schemaHashMode, cacheTtlMs, expoPushUrl, pushDebounceMs, pushBackoffMs, pushMaxAttempts, fetch, now, pageBytes, conflictLog, postgresPoolSize, postgresListen, centralWorkers, ...httpOptions } = deps.sync ?? {};
  const dataPlane = createDataPlane(services, {
    dataDir: deps.dataDir,
    // 500s and failed hooks: one entry with the cause (logging/log-errors.ts).
    logError: logErrorWith(deps.logger),
    ...definedOnly({ schemaHashMode, cacheTtlMs, expoPushUrl, pushDebounceMs, pushBackoffMs, pushMaxAttempts, fetch, now }),
  });
  const obs = deps.observability ?? {};
  const metrics = createMetrics({ token: obs.metricsToken, ...(obs.processMetrics === undefined ? {} : { processMetrics: obs.processMetrics }) });
  // The one sync service (its central databases and workers), built once here; metrics and log facts of every sync operation (observability/sync.ts).
  const sync = createSyncService(observeSyncDeps(dataPlane.deps, metrics), definedOnly({ pageBytes, conflictLog, postgresPoolSize, postgresListen, centralWorkers }));
  // The transports only call its methods: the HTTP protocol, the GraphQL context and graphql-ws below.
  const syncHttp = createSyncHttpHandler(sync, {
    ...httpOptions,
    ...definedOnly({ now }),
    artifactSecret: artifactSecret ?? new Uint8Array(randomBytes(32)),
  });
  // Deploys and other changes of a SQLite central file run on its owner's connection (central-databases.ts `withSchemaChange`).
  services.tables.useCentralFileOwner(sync.databases);
  // Devices' download cursors and last refusals, schema-mismatch diagnosis (domains/devices/device-sync-state.ts).
  trackDeviceSyncState(sync, { logger: deps.logger, now: () => deps.clock.now() });
  // Tombstone compaction at the devices' min acknowledged version, the resync horizon's upload guard (domains/sync/compaction.ts).
  const compaction = installCompaction(sync, deps.prisma, { now: () => deps.clock.now(), onError: (id, e) => deps.logger.error('compaction failed', { databaseId: id, error: e instanceof Error ? e.message : String(e) }), ...deps.compaction });
  // Minute and hour traffic buckets past their retention are deleted (domains/metrics/traffic-sql.ts).
  const interval = deps.trafficRetention?.intervalMs ?? 0;
  const stopTrafficExpiry = interval <= 0 ? undefined
    : services.metrics.scheduleExpiry(interval, (e) => deps.logger.error('traffic expiry failed', { error: e instanceof Error ? e.message : String(e) }));
  instrumentSyncService(sync, metrics, obs.accessLog);
  metrics.setSources({ liveSubscribers: () => liveSessionsOf(services).size(), pendingArtifactBytes: () => syncHttp.artifacts.stats().pendingBytes });
  const health = createHealth({
    checks: [controlPlaneCheck(deps.prisma), migrationsCheck(deps.prisma), ...(obs.readinessChecks ?? [])],
    ...(obs.readinessTimeoutMs === undefined ? {} : { timeoutMs: obs.readinessTimeoutMs }),
    logger: deps.logger,
  });
  // One admin-key check per HTTP request, shared by the limits plugin and the context.
  const viewers = new WeakMap<Request, Promise<Viewer>>();
  const viewerOf = (request: Request): Promise<Viewer> => {
    let viewer = viewers.get(request);
    if (viewer === undefined) {
      viewer = resolveViewer(services, extractBearer(request.headers.get('authorization')));
      viewers.set(request, viewer);
    }
    return viewer;
  };
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: GRAPHIQL_OPTIONS,
    renderGraphiQL,
    landingPage: false,
    // Redacted, one entry per failure: client mistakes warn, faults log their cause.
    logging: yogaLogger(deps.logger),
    maskedErrors: { maskError: unmaskApiErrors(maskError) },
    // CORS is answered by the router (http/cors.ts); Yoga's default would echo any origin with credentials.
    cors: false,
    // Yoga's validation cache is keyed without the caller (introspection, suggestions) and would serve
    // another caller's result: off. The limits plugin caches validation per trust level instead.
    parserAndValidationCache: { validationCache: false },
    plugins: [
      graphqlLimitsPlugin({
        ...(deps.limits === undefined ? {} : { limits: deps.limits }),
        introspection: deps.introspection ?? 'admin',
        isAdminRequest: async (request) => (await viewerOf(request)) !== null,
        isAdminContext: (context) => ('viewer' in context ? context['viewer'] !== null && context['viewer'] !== undefined : undefined),
        onRefused: (error) => deps.logger.warn('graphql: query refused', { code: error.extensions['code'], message: error.message }),
      }),
    ],
    context: async (initial): Promise<GraphQLContext> => {
      // graphql-ws resolved the viewer at connection time (ws/graphql-ws.ts).
      if ('viewer' in initial) return { viewer: initial['viewer'] as Viewer, services, sync };
      const request = initial['request'] as Request;
      return { viewer: await viewerOf(request), services, sync };
    },
  });

  // GraphiQL rendered once, gzipped, ETag + Cache-Control (http/graphiql-page.ts); same options as Yoga's.
  const graphiql = createGraphiqlPage(GRAPHQL_PATH, () => renderGraphiQL(GRAPHIQL_OPTIONS));
  const server = createServer();
  const cors = {
    graphql: corsPolicy(deps.cors?.graphql ?? [], { allowMethods: 'GET, POST, OPTIONS', allowHeaders: 'authorization, content-type, accept', maxAgeSeconds: 600 }),
    others: syncCorsPolicy(deps.cors?.sync ?? '*'),
  };
  server.on('request', createRouter({
    graphqlPath: GRAPHQL_PATH,
    graphql: async (req, res) => {
      if (!(await graphiql(req, res))) await yoga(req, res);
    },
    handlers: [health.handler, metrics.handler, syncHttp, ...(deps.httpHandlers ?? [])],
    logger: deps.logger,
    cors,
    observe: createHttpObserver({ logger: obs.accessLog, metrics, graphqlPath: GRAPHQL_PATH }),
  }));
  const ws = attachGraphqlWs(server, GRAPHQL_PATH, yoga, services, sync);

  let disposed: Promise<void> | null = null;
  let wsClosed: Promise<void> | null = null;
  const closeWs = (): Promise<void> => (wsClosed ??= ws.dispose());
  return {
    yoga,
    server,
    services,
    sync,
    syncHttp,
    dataPlane,
    metrics,
    health,
    async shutdown(options = {}) {
      health.startDraining();
      if ((options.drainDelayMs ?? 0) > 0) await new Promise((r) => setTimeout(r, options.drainDelayMs));
      // Live sockets end now (their clients reconnect elsewhere); plain HTTP requests may finish.
      await closeWs();
      if (server.listening) {
        // No new connections; idle keep-alive sockets close now, busy ones after their response.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([closed, new Promise((r) => { timer = setTimeout(r, options.graceMs ?? 5000); })]);
        clearTimeout(timer);
      }
      await this.dispose();
    },
    dispose() {
      disposed ??= (async () => {
        compaction.stop();
        stopTrafficExpiry?.();
        await closeWs();
        server.closeAllConnections();
        if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
        await dataPlane.dispose();
        await syncHttp.dispose();
        await sync.dispose();
        // Counters still in memory are written before the control plane goes (traffic-buffer.ts).
        await services.close().catch((e: unknown) => deps.logger.error('control plane: final traffic flush failed', { error: e instanceof Error ? e.message : String(e) }));
        await deps.prisma.$disconnect();
      })();
      return disposed;
    },
  };
}
