/**
 * The one typed pub/sub every control-plane event goes through. In-memory by default; pass a
 * distributed `eventTarget` (e.g. @graphql-yoga/redis-event-target) to fan out across servers
 * without touching resolvers or services.
 */
import { createPubSub } from 'graphql-yoga';
import type { PubSub, PubSubEvent } from 'graphql-yoga';

export const DeviceEventKind = { REGISTERED: 'REGISTERED', SYNCED: 'SYNCED', REMOVED: 'REMOVED' } as const;
export type DeviceEventKind = (typeof DeviceEventKind)[keyof typeof DeviceEventKind];

export interface DeviceEventPayload {
  kind: DeviceEventKind;
  databaseId: string;
  siteId: string;
  at: string;
}

export interface MetricsChangedPayload {
  databaseId: string;
  at: string;
}

/** Published by the sync merge hook after a merge committed new server versions for a database. */
export interface SyncChangesPayload {
  databaseId: string;
  dbVersion: number;
  originSiteId: string;
  tables: string[];
}

/** Topic → [id, payload]. Subscribers listen per database id. */
export type ApiEvents = {
  deviceEvent: [databaseId: string, payload: DeviceEventPayload];
  metricsChanged: [databaseId: string, payload: MetricsChangedPayload];
  syncChanges: [databaseId: string, payload: SyncChangesPayload];
};

export type ApiPubSub = PubSub<ApiEvents>;
type ApiEventTarget = NonNullable<Parameters<typeof createPubSub<ApiEvents>>[0]>['eventTarget'];

export function createApiPubSub(options: { eventTarget?: ApiEventTarget } = {}): ApiPubSub {
  return createPubSub<ApiEvents>(options.eventTarget === undefined ? {} : { eventTarget: options.eventTarget });
}

export type { PubSubEvent };
