/** All domain services, bound to their dependencies. This is what the data plane imports. */
import type { ServiceDeps } from './deps.ts';
import { createAuthService } from './domains/auth/auth.service.ts';
import { createDatabasesService } from './domains/databases/databases.service.ts';
import { buildClientIntegration } from './domains/databases/client-integration.ts';
import { createDevicesService } from './domains/devices/devices.service.ts';
import { createMetricsService } from './domains/metrics/metrics.service.ts';
import { createTrafficBuffer } from './domains/metrics/traffic-buffer.ts';
import { createProjectsService } from './domains/projects/projects.service.ts';
import { createPushService } from './domains/push/push.service.ts';
import { createTablesService } from './domains/tables/tables.service.ts';

export function createServices(deps: ServiceDeps) {
  const databases = createDatabasesService(deps);
  const tables = createTablesService(deps, databases);
  const auth = createAuthService(deps, databases);
  // One write-behind of traffic counters and throttled lastSyncAt for both (domains/metrics/traffic-buffer.ts).
  const traffic = createTrafficBuffer(deps);
  return {
    deps,
    prisma: deps.prisma,
    pubsub: deps.pubsub,
    projects: createProjectsService(deps, databases),
    databases,
    tables,
    auth,
    devices: createDevicesService(deps, traffic),
    metrics: createMetricsService(deps, traffic),
    push: createPushService(deps, databases),
    /** Writes the traffic counters and device `lastSyncAt`s still in memory (reads do it themselves). */
    flushControlPlane(): Promise<void> {
      return traffic.flush();
    },
    /** Flushes them and stops the flush timer (app dispose, before the control plane disconnects). */
    close(): Promise<void> {
      return traffic.close();
    },
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
