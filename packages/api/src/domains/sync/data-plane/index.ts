/**
 * The data plane: the real {@link SyncDeps} of the sync service over the control-plane services
 * — database resolution, authentication (API key / access token / JWT), row-level security,
 * device and traffic recording, Expo push, the `syncChanges` pub/sub events, and the
 * `changesRejected` events + rejected-changes metrics of the rejection log.
 */
import type { ChangesRejectedPayload } from '../../../pubsub.ts';
import type { Services } from '../../../services.ts';
import { CredentialKind } from '../../devices/devices.service.ts';
import { toRejectionJson } from '../rejection-log.ts';
import type { RejectionEntry, RejectionJson } from '../rejection-log.ts';
import type { Principal, SchemaHashMode, SyncDeps } from '../sync-deps.ts';
import { createAuthenticator } from './authenticate.ts';
import { createPushNotifier, DEFAULT_EXPO_PUSH_URL } from './push.ts';
import type { PushNotifier } from './push.ts';
import { createDatabaseResolver } from './resolve.ts';
import type { DatabaseResolver } from './resolve.ts';
import { createRls } from './rls.ts';
import type { Rls } from './rls.ts';

export interface DataPlaneOptions {
  dataDir: string;
  /** strict (default): unknown schema hashes are refused; lenient: accepted and remembered. */
  schemaHashMode?: SchemaHashMode;
  /** Lifetime of cached database targets and RLS policies (default 2000 ms). */
  cacheTtlMs?: number;
  /** Expo push API (default `https://exp.host/--/api/v2/push/send`; env EXPO_PUSH_URL). */
  expoPushUrl?: string;
  /** Per-database debounce of pushes (default 500 ms). */
  pushDebounceMs?: number;
  /** First retry delay of a push request (default 250 ms, doubled per attempt). */
  pushBackoffMs?: number;
  /** Attempts per push request (default 4). */
  pushMaxAttempts?: number;
  /** HTTP client of the push sender (default global fetch). */
  fetch?: typeof fetch;
  now?: () => number;
  logError?: (message: string, error: unknown) => void;
}

export interface DataPlane {
  readonly deps: SyncDeps;
  readonly resolver: DatabaseResolver;
  readonly rls: Rls;
  readonly push: PushNotifier;
  /** Forgets cached database targets and policies (all, or one database). */
  invalidate(databaseId?: string): void;
  /** Cancels pending pushes, aborts requests in flight, closes the RLS evaluator. */
  dispose(): Promise<void>;
}

export function credentialKindOf(principal: Principal): CredentialKind {
  return principal.kind === 'apiKey' ? CredentialKind.API_KEY : principal.kind === 'accessToken' ? CredentialKind.ACCESS_TOKEN : CredentialKind.JWT;
}

/** Entries per `changesRejected` event at most, and the JSON size an event stops growing at. */
const REJECTED_EVENT_ENTRIES = 256;
const REJECTED_EVENT_BYTES = 1_000_000;

/** The `changesRejected` events of one merge: the entries in order, split to bound message size. */
export function changesRejectedEvents(databaseId: string, entries: readonly RejectionEntry[]): ChangesRejectedPayload[] {
  const out: ChangesRejectedPayload[] = [];
  let cur: RejectionJson[] = [];
  let bytes = 0;
  for (const e of entries) {
    const json = toRejectionJson(e);
    const size = JSON.stringify(json).length;
    if (cur.length > 0 && (cur.length >= REJECTED_EVENT_ENTRIES || bytes + size > REJECTED_EVENT_BYTES)) {
      out.push({ databaseId, entries: cur });
      cur = [];
      bytes = 0;
    }
    cur.push(json);
    bytes += size;
  }
  if (cur.length > 0) out.push({ databaseId, entries: cur });
  return out;
}

export function createDataPlane(services: Services, options: DataPlaneOptions): DataPlane {
  const now = options.now ?? (() => Date.now());
  const logError = options.logError ?? ((message: string, error: unknown) => services.deps.logger.error(message, { error: error instanceof Error ? error.message : String(error) }));
  const ttlMs = options.cacheTtlMs ?? 2000;
  const resolver = createDatabaseResolver(services, {
    dataDir: options.dataDir,
    schemaHashMode: options.schemaHashMode ?? 'strict',
    ttlMs,
    now,
  });
  const rls = createRls(services, { ttlMs, now });
  const push = createPushNotifier(
    services,
    {
      url: options.expoPushUrl ?? DEFAULT_EXPO_PUSH_URL,
      debounceMs: options.pushDebounceMs ?? 500,
      backoffMs: options.pushBackoffMs ?? 250,
      maxAttempts: options.pushMaxAttempts ?? 4,
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
    },
    logError,
  );
  const deps: SyncDeps = {
    resolveDatabase: (id) => resolver.resolve(id),
    authenticate: createAuthenticator(services, (id) => resolver.resolve(id), logError),
    rowFilterFor: (databaseId, principal, engine, opts) => rls.rowFilterFor(databaseId, principal, engine, opts),
    judgeFor: (databaseId, principal, engine) => rls.judgeFor(databaseId, principal, engine),
    visibilityFor: (databaseId, engine) => rls.visibilityFor(databaseId, engine),
    priorFilterFor: (databaseId, principal, engine) => rls.priorFilterFor(databaseId, principal, engine),
    policiesOf: (databaseId, engine) => rls.policiesOf(databaseId, engine),
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
    onChangesMerged(databaseId, event) {
      services.pubsub.publish('syncChanges', databaseId, { databaseId, dbVersion: event.dbVersion, originSiteId: event.originSiteId, tables: event.tables });
      push.changed(databaseId, event.originSiteId);
    },
    async onChangesRejected(databaseId, entries) {
      if (entries.length === 0) return;
      for (const payload of changesRejectedEvents(databaseId, entries)) services.pubsub.publish('changesRejected', databaseId, payload);
      await services.metrics.recordRejections(databaseId, entries.map((e) => ({ siteId: e.siteId, at: e.at })));
    },
    async registerPushToken(databaseId, token) {
      await services.push.registerPushToken(databaseId, { expoToken: token.expoToken, deviceId: token.deviceId, siteId: token.siteId, platform: token.platform });
    },
    logError,
  };
  return {
    deps,
    resolver,
    rls,
    push,
    invalidate(databaseId) {
      resolver.invalidate(databaseId);
      rls.invalidate(databaseId);
    },
    async dispose() {
      await push.dispose();
      rls.close();
    },
  };
}
