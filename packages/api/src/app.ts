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
import type { ServiceDeps } from './deps.ts';
import { createDataPlane } from './domains/sync/data-plane/index.ts';
import type { DataPlane, DataPlaneOptions } from './domains/sync/data-plane/index.ts';
import { createSyncHttpHandler } from './domains/sync/http/handler.ts';
import { syncCorsPolicy } from './domains/sync/http/io.ts';
import type { SyncHttpHandler, SyncHttpOptions } from './domains/sync/http/handler.ts';
import type { SyncService } from './domains/sync/sync.service.ts';
import { unmaskApiErrors } from './errors.ts';
import { graphqlLimitsPlugin } from './graphql-limits.ts';
import type { GraphQLLimits, IntrospectionMode } from './graphql-limits.ts';
import { corsPolicy } from './http/cors.ts';
import type { CorsOrigins } from './http/cors.ts';
import { createRouter } from './http/router.ts';
import type { HttpHandler } from './http/router.ts';
import { logErrorWith, yogaLogger } from './logging/log-errors.ts';
import { schema } from './schema/index.ts';
import { createServices } from './services.ts';
import type { Services } from './services.ts';
import { attachGraphqlWs } from './ws/graphql-ws.ts';

export const GRAPHQL_PATH = '/graphql';

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
}

export interface AppSyncOptions extends Omit<SyncHttpOptions, 'artifactSecret'>, Omit<DataPlaneOptions, 'dataDir' | 'logError'> {
  /** HMAC key of artifact URLs; default: 32 random bytes per process (main.ts derives it from the server key). */
  artifactSecret?: string | Uint8Array;
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>;
  server: Server;
  services: Services;
  /** The one sync service (HTTP protocol and GraphQL sync operations share it). */
  sync: SyncService;
  /** The SQLite Sync HTTP endpoints (mounted before `httpHandlers`). */
  syncHttp: SyncHttpHandler;
  dataPlane: DataPlane;
  dispose(): Promise<void>;
}

/** Drops undefined values (exactOptionalPropertyTypes). */
function definedOnly<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

export function createApp(deps: AppDeps): App {
  const services = createServices(deps);
  const { artifactSecret, schemaHashMode, cacheTtlMs, expoPushUrl, pushDebounceMs, pushBackoffMs, pushMaxAttempts, fetch, now, ...httpOptions } = deps.sync ?? {};
  const dataPlane = createDataPlane(services, {
    dataDir: deps.dataDir,
    // 500s and failed hooks: one entry with the cause (logging/log-errors.ts).
    logError: logErrorWith(deps.logger),
    ...definedOnly({ schemaHashMode, cacheTtlMs, expoPushUrl, pushDebounceMs, pushBackoffMs, pushMaxAttempts, fetch, now }),
  });
  const syncHttp = createSyncHttpHandler(dataPlane.deps, {
    ...httpOptions,
    ...definedOnly({ now }),
    artifactSecret: artifactSecret ?? new Uint8Array(randomBytes(32)),
  });
  const sync = syncHttp.service;
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
    graphiql: { subscriptionsProtocol: 'WS', title: 'OffSync control plane' },
    renderGraphiQL,
    landingPage: false,
    // Redacted, one entry per failure: client mistakes warn, faults log their cause.
    logging: yogaLogger(deps.logger),
    maskedErrors: { maskError: unmaskApiErrors(maskError) },
    // CORS is answered by the router (http/cors.ts); Yoga's default would echo any origin with credentials.
    cors: false,
    // Validation depends on the caller (introspection, suggestions): never reuse another caller's result.
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

  const server = createServer();
  const cors = {
    graphql: corsPolicy(deps.cors?.graphql ?? [], { allowMethods: 'GET, POST, OPTIONS', allowHeaders: 'authorization, content-type, accept', maxAgeSeconds: 600 }),
    others: syncCorsPolicy(deps.cors?.sync ?? '*'),
  };
  server.on('request', createRouter({ graphqlPath: GRAPHQL_PATH, graphql: yoga, handlers: [syncHttp, ...(deps.httpHandlers ?? [])], logger: deps.logger, cors }));
  const ws = attachGraphqlWs(server, GRAPHQL_PATH, yoga, services, sync);

  let disposed: Promise<void> | null = null;
  return {
    yoga,
    server,
    services,
    sync,
    syncHttp,
    dataPlane,
    dispose() {
      disposed ??= (async () => {
        await ws.dispose();
        if (server.listening) {
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
        await dataPlane.dispose();
        syncHttp.dispose();
        await deps.prisma.$disconnect();
      })();
      return disposed;
    },
  };
}
