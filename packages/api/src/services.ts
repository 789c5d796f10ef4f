/** All domain services, bound to their dependencies. This is what the data plane imports. */
import type { ServiceDeps } from './deps.ts';
import { createAuthService } from './domains/auth/auth.service.ts';
import { createDatabasesService } from './domains/databases/databases.service.ts';
import { clientIntegrationSnippet } from './domains/databases/client-integration.ts';
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
    async clientIntegration(databaseId: string) {
      const db = await databases.getDatabase(databaseId);
      const [jwt, synced] = await Promise.all([
        auth.getJwtProvider(databaseId),
        deps.prisma.syncedTable.findMany({ where: { databaseId }, orderBy: { name: 'asc' } }),
      ]);
      const rlsMode: 'BYPASS' | 'ENFORCE' = db.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS';
      const authMethod: 'API_KEY' | 'ACCESS_TOKEN' | 'JWT' = rlsMode === 'BYPASS' ? 'API_KEY' : jwt !== null ? 'JWT' : 'ACCESS_TOKEN';
      const snippet = clientIntegrationSnippet({ databaseId, publicUrl: deps.publicUrl, rlsMode, jwtConfigured: jwt !== null, tables: synced.map((s) => s.name) });
      return { databaseId, rlsMode, authMethod, serverUrl: deps.publicUrl, snippet };
    },
  };
}
export type Services = ReturnType<typeof createServices>;
