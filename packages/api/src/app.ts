/**
 * Composition root: Yoga (GraphQL over HTTP + GraphiQL) and graphql-ws on one node http.Server,
 * with the composable router for the data plane's endpoints. No ports are opened here.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { createYoga, maskError } from 'graphql-yoga';
import type { YogaServerInstance } from 'graphql-yoga';
import type { GraphQLContext, Viewer } from './context.ts';
import { extractBearer, resolveViewer } from './context.ts';
import type { ServiceDeps } from './deps.ts';
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
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>;
  server: Server;
  services: Services;
  dispose(): Promise<void>;
}

export function createApp(deps: AppDeps): App {
  const services = createServices(deps);
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: { subscriptionsProtocol: 'WS', title: 'OffSync control plane' },
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
      if ('viewer' in initial) return { viewer: initial['viewer'] as Viewer, services };
      const request = initial['request'] as Request;
      return { viewer: await resolveViewer(services, extractBearer(request.headers.get('authorization'))), services };
    },
  });

  const server = createServer();
  server.on('request', createRouter({ graphqlPath: GRAPHQL_PATH, graphql: yoga, handlers: deps.httpHandlers ?? [], logger: deps.logger }));
  const ws = attachGraphqlWs(server, GRAPHQL_PATH, yoga, services);

  let disposed: Promise<void> | null = null;
  return {
    yoga,
    server,
    services,
    dispose() {
      disposed ??= (async () => {
        await ws.dispose();
        if (server.listening) {
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
        await deps.prisma.$disconnect();
      })();
      return disposed;
    },
  };
}
