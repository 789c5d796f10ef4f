/**
 * Composition root: Yoga (GraphQL over HTTP + GraphiQL) and graphql-ws on one node http.Server,
 * with the composable router for the data plane's endpoints. No ports are opened here.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createYoga, maskError } from 'graphql-yoga';
import type { YogaServerInstance } from 'graphql-yoga';
import type { GraphQLContext, Viewer } from './context.ts';
import { extractBearer, resolveViewer } from './context.ts';
import type { ServiceDeps } from './deps.ts';
import { createDataPlane } from './domains/sync/data-plane/index.ts';
import type { DataPlane, DataPlaneOptions } from './domains/sync/data-plane/index.ts';
import { createSyncHttpHandler } from './domains/sync/http/handler.ts';
import type { SyncHttpHandler, SyncHttpOptions } from './domains/sync/http/handler.ts';
import type { SyncService } from './domains/sync/sync.service.ts';
import { unmaskApiErrors } from './errors.ts';
import { createRouter } from './http/router.ts';
import type { HttpHandler } from './http/router.ts';
import { schema } from './schema/index.ts';
import { createServices } from './services.ts';
import type { Services } from './services.ts';
import { attachGraphqlWs } from './ws/graphql-ws.ts';

export const GRAPHQL_PATH = '/graphql';

export interface AppDeps extends ServiceDeps {
  /** Tried in order for paths other than /graphql; return true when handled. */
  httpHandlers?: readonly HttpHandler[];
  /** Query limits (graphql-armor). */
  limits?: { maxDepth?: number; maxCost?: number };
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
    ...definedOnly({ schemaHashMode, cacheTtlMs, expoPushUrl, pushDebounceMs, pushBackoffMs, pushMaxAttempts, fetch, now }),
  });
  const syncHttp = createSyncHttpHandler(dataPlane.deps, {
    ...httpOptions,
    ...definedOnly({ now }),
    artifactSecret: artifactSecret ?? new Uint8Array(randomBytes(32)),
  });
  const sync = syncHttp.service;
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: { subscriptionsProtocol: 'WS', title: 'OffSync control plane' },
    renderGraphiQL,
    landingPage: false,
    logging: {
      debug: () => {},
      info: (...args: unknown[]) => deps.logger.info(args.map(String).join(' ')),
      warn: (...args: unknown[]) => deps.logger.warn(args.map(String).join(' ')),
      error: (...args: unknown[]) => deps.logger.error(args.map(String).join(' ')),
    },
    maskedErrors: { maskError: unmaskApiErrors(maskError) },
    plugins: [
      maxDepthPlugin({ n: deps.limits?.maxDepth ?? 12, ignoreIntrospection: true }),
      costLimitPlugin({ maxCost: deps.limits?.maxCost ?? 5000, ignoreIntrospection: true }),
    ],
    context: async (initial): Promise<GraphQLContext> => {
      // graphql-ws resolved the viewer at connection time (ws/graphql-ws.ts).
      if ('viewer' in initial) return { viewer: initial['viewer'] as Viewer, services, sync };
      const request = initial['request'] as Request;
      return { viewer: await resolveViewer(services, extractBearer(request.headers.get('authorization'))), services, sync };
    },
  });

  const server = createServer();
  server.on('request', createRouter({ graphqlPath: GRAPHQL_PATH, graphql: yoga, handlers: [syncHttp, ...(deps.httpHandlers ?? [])], logger: deps.logger }));
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
