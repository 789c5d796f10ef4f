/**
 * The data plane: the real {@link SyncDeps} of the sync service over the control-plane services
 * — database resolution, authentication (API key / access token / JWT), row-level security,
 * device and traffic recording, Expo push, and the `syncChanges` pub/sub events.
 */
import type { Services } from '../../../services.ts';
import { CredentialKind } from '../../devices/devices.service.ts';
import type { Principal, SchemaHashMode, SyncDeps } from '../sync-deps.ts';
import { createAuthenticator } from './authenticate.ts';
import { createDatabaseResolver } from './resolve.ts';
import type { DatabaseResolver } from './resolve.ts';

export interface DataPlaneOptions {
  dataDir: string;
  /** strict (default): unknown schema hashes are refused; lenient: accepted and remembered. */
  schemaHashMode?: SchemaHashMode;
  /** Lifetime of cached database targets (default 2000 ms). */
  cacheTtlMs?: number;
  now?: () => number;
  logError?: (message: string, error: unknown) => void;
}

export interface DataPlane {
  readonly deps: SyncDeps;
  readonly resolver: DatabaseResolver;
  /** Flushes / cancels pending work (push timers). */
  dispose(): Promise<void>;
}

export function credentialKindOf(principal: Principal): CredentialKind {
  return principal.kind === 'apiKey' ? CredentialKind.API_KEY : principal.kind === 'accessToken' ? CredentialKind.ACCESS_TOKEN : CredentialKind.JWT;
}

export function createDataPlane(services: Services, options: DataPlaneOptions): DataPlane {
  const now = options.now ?? (() => Date.now());
  const logError = options.logError ?? ((message: string, error: unknown) => services.deps.logger.error(message, { error: error instanceof Error ? error.message : String(error) }));
  const resolver = createDatabaseResolver(services, {
    dataDir: options.dataDir,
    schemaHashMode: options.schemaHashMode ?? 'strict',
    ttlMs: options.cacheTtlMs ?? 2000,
    now,
  });
  const deps: SyncDeps = {
    resolveDatabase: (id) => resolver.resolve(id),
    authenticate: createAuthenticator(services, (id) => resolver.resolve(id), logError),
    rowFilterFor: () => undefined,
    authorizerFor: () => undefined,
    async recordDevice(databaseId, device) {
      await services.devices.recordDeviceSeen(databaseId, {
        siteId: device.siteId,
        userId: device.principal.userId,
        credentialKind: credentialKindOf(device.principal),
        clientVersion: device.clientVersion,
        schemaHash: device.schemaHash,
      });
    },
    async recordTraffic(databaseId, siteId, traffic) {
      if (traffic.uploadBytes === 0 && traffic.downloadBytes === 0) return;
      await services.metrics.recordTraffic(databaseId, siteId, { uploadBytes: traffic.uploadBytes, downloadBytes: traffic.downloadBytes });
    },
    onChangesMerged() {},
    async registerPushToken(databaseId, token) {
      await services.push.registerPushToken(databaseId, { expoToken: token.expoToken, deviceId: token.deviceId, siteId: token.siteId, platform: token.platform });
    },
    logError,
  };
  return { deps, resolver, dispose: async () => {} };
}
