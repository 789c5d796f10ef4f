/** All domain services, bound to their dependencies. This is what the data plane imports. */
import type { ServiceDeps } from './deps.ts';
import { createAuthService } from './domains/auth/auth.service.ts';
import { createDatabasesService } from './domains/databases/databases.service.ts';
import { buildClientIntegration } from './domains/databases/client-integration.ts';
import { createDevicesService } from './domains/devices/devices.service.ts';
import { createMetricsService } from './domains/metrics/metrics.service.ts';
import { createProjectsService } from './domains/projects/projects.service.ts';
import { createPushService } from './domains/push/push.service.ts';
import { createTablesService } from './domains/tables/tables.service.ts';

export function createServices(deps: ServiceDeps) {
  const databases = createDatabasesService(deps);
  const tables = createTablesService(deps, databases);
  const auth = createAuthService(deps, databases);
  return {
    deps,
    prisma: deps.prisma,
    pubsub: deps.pubsub,
    projects: createProjectsService(deps, databases),
    databases,
    tables,
    auth,
    devices: createDevicesService(deps),
    metrics: createMetricsService(deps),
    push: createPushService(deps, databases),
    /** The Client Integration tab's data (one implementation: domains/databases/client-integration.ts). */
    clientIntegration(databaseId: string) {
      return buildClientIntegration(
        { databases, publicUrl: deps.publicUrl, jwtConfigured: async (id) => (await auth.getJwtProvider(id)) !== null, syncedTables: (id) => tables.syncedTablesForSnippet(id), deviceDdl: (id) => tables.deviceDdl(id) },
        databaseId,
      );
    },
  };
}
export type Services = ReturnType<typeof createServices>;
