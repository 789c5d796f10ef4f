/**
 * The one typed pub/sub every control-plane event goes through. In-memory by default; with Redis
 * (`createRedisPubSub`, or `createApiPubSub({ eventTarget: createRedisApiEventTarget(…) })`) every
 * event goes through Redis channels, so several OffSync processes behind a load balancer share
 * device events, metrics and live sync changes without touching resolvers or services.
 *
 * Payloads cross the wire as JSON: they hold strings, numbers, booleans and arrays only (dates
 * as ISO strings); `JsonSafe` below makes a payload type with a Date, bigint or function fail to
 * compile.
 */
import { Redis } from 'ioredis';
import { createPubSub } from 'graphql-yoga';
import type { PubSub, PubSubEvent } from 'graphql-yoga';
import type { RejectionJson } from './domains/sync/rejection-log.ts';

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

/**
 * Published by the sync merge hook after a merge committed new server versions for a database.
 * Subscribers treat it as a wake-up only (they re-read the change feed from their own cursor).
 */
export interface SyncChangesPayload {
  databaseId: string;
  dbVersion: number;
  originSiteId: string;
  tables: string[];
  /**
   * Set on the local wake-up a distributed event target delivers when its subscription to the
   * topic was (re)established: events published meanwhile may have been missed, so re-read the
   * feed. It carries `dbVersion: Number.MAX_SAFE_INTEGER` and an empty origin, so no cursor or
   * own-origin filter drops it.
   */
  resync?: boolean;
}

/**
 * Published by the data plane after a merge that refused some changes on their own committed
 * (`SyncDeps.onChangesRejected`): the rejection-log entries, JSON-encoded (rejection-log.ts;
 * pk base64, values tagged `$int` / `$blob` / `$real`). A large batch is split over several
 * events (bounded message size).
 */
export interface ChangesRejectedPayload {
  databaseId: string;
  entries: RejectionJson[];
}

/**
 * Published by the control plane when sync access ends for live `changes` subscriptions of a
 * database (docs/PROTOCOL.md "Live subscriptions end with their credential"): a key or token
 * revoked (`credentialId`), a device removed (`siteId`), OffSync disabled or the database deleted,
 * the RLS mode changed. The live-session registry (domains/sync/graphql/live-sessions.ts) ends
 * the matching subscriptions of every process.
 */
export interface SyncAccessEndedPayload {
  databaseId: string;
  reason: 'CREDENTIAL_REVOKED' | 'DEVICE_REMOVED' | 'SYNC_DISABLED' | 'RLS_MODE_CHANGED';
  /** CREDENTIAL_REVOKED: `apiKey:<id>` or `accessToken:<id>` (Principal.credentialId). */
  credentialId?: string;
  /** DEVICE_REMOVED: the site id (32 lower-case hex digits). */
  siteId?: string;
  at: string;
}

/** Topic → [id, payload]. Subscribers listen per database id. */
export type ApiEvents = {
  deviceEvent: [databaseId: string, payload: DeviceEventPayload];
  metricsChanged: [databaseId: string, payload: MetricsChangedPayload];
  syncChanges: [databaseId: string, payload: SyncChangesPayload];
  syncAccessEnded: [databaseId: string, payload: SyncAccessEndedPayload];
  changesRejected: [databaseId: string, payload: ChangesRejectedPayload];
};

/** `T` when it survives JSON.stringify → JSON.parse unchanged, else a type containing `never`. */
export type JsonSafe<T> = T extends string | number | boolean | null
  ? T
  : T extends Date | bigint | symbol | ((...args: never[]) => unknown) | Uint8Array
    ? never
    : T extends readonly (infer U)[]
      ? readonly JsonSafe<U>[]
      : { [K in keyof T]: JsonSafe<T[K]> };
type AssertJsonSafe<T extends { [K in keyof T]: [string, JsonSafe<T[K][1 & keyof T[K]]>] }> = T;
/** Compile-time check: every payload of ApiEvents is JSON-safe. */
export type JsonSafeApiEvents = AssertJsonSafe<ApiEvents>;

export type ApiPubSub = PubSub<ApiEvents>;
export type ApiEventTarget = NonNullable<NonNullable<Parameters<typeof createPubSub<ApiEvents>>[0]>['eventTarget']>;
type ApiEvent = PubSubEvent<ApiEvents, keyof ApiEvents>;
type ApiEventListener = NonNullable<Parameters<ApiEventTarget['addEventListener']>[1]>;

export function createApiPubSub(options: { eventTarget?: ApiEventTarget } = {}): ApiPubSub {
  return createPubSub<ApiEvents>(options.eventTarget === undefined ? {} : { eventTarget: options.eventTarget });
}

/**
 * The subset of an ioredis client the Redis event target uses (an ioredis `Redis` satisfies it;
 * tests without a Redis server pass an in-process fake).
 */
export interface RedisPubSubClient {
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  /** 'message' → (channel, message); 'ready' → () after every (re)connection. */
  on(event: 'message' | 'ready', listener: (channel: string, message: string) => void): unknown;
  off(event: 'message' | 'ready', listener: (channel: string, message: string) => void): unknown;
}

export interface RedisEventTargetOptions {
  publishClient: RedisPubSubClient;
  /** A dedicated connection: a Redis connection in subscriber mode cannot publish. */
  subscribeClient: RedisPubSubClient;
  /** Prepended to every channel (default `offsync:`), so deployments can share one Redis. */
  prefix?: string;
  /** A failed PUBLISH/SUBSCRIBE (Redis unreachable for too long); the event is lost. Default: console.error. */
  onError?: (error: unknown) => void;
}

export interface RedisApiEventTarget extends ApiEventTarget {
  /** Channel names (with prefix) this target is subscribed to. */
  channels(): string[];
  /** Unsubscribes everything and detaches from the clients (it does not close them). */
  close(): Promise<void>;
}

export const DEFAULT_REDIS_PREFIX = 'offsync:';

/**
 * A distributed EventTarget over Redis PUBLISH/SUBSCRIBE, compatible with graphql-yoga's
 * `createPubSub` (same wire format as `@graphql-yoga/redis-event-target`: channel = topic, message
 * = JSON of the payload), with what a sync server needs on top:
 *
 * - channel prefix (`prefix` + `<topic>:<id>`);
 * - no unhandled rejection when Redis is down: failures go to `onError`;
 * - no lost wake-up while subscribing: SUBSCRIBE is asynchronous, and a merge committed between a
 *   `changes` subscriber's registration and the SUBSCRIBE acknowledgement would be missed. When a
 *   `syncChanges` subscription is acknowledged (first listener, or re-subscription after a Redis
 *   reconnection), its local listeners get a `resync` wake-up and re-read the feed from their
 *   cursor. Device events and metrics published while Redis was unreachable are lost (the
 *   metrics subscription catches up on its next event).
 */
export function createRedisApiEventTarget(options: RedisEventTargetOptions): RedisApiEventTarget {
  const { publishClient, subscribeClient } = options;
  const prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
  const onError = options.onError ?? ((e: unknown) => console.error('pubsub: redis failed', e));
  /** Topic (without prefix) → listeners. */
  const topics = new Map<string, Set<ApiEventListener>>();
  let closed = false;

  const deliver = (topic: string, detail: unknown): void => {
    const listeners = topics.get(topic);
    if (listeners === undefined) return;
    const event = new CustomEvent(topic, { detail }) as ApiEvent;
    for (const l of [...listeners]) {
      try {
        if (typeof l === 'function') l(event);
        else l.handleEvent(event);
      } catch (e) {
        onError(e);
      }
    }
  };

  const resync = (topic: string): void => {
    if (!topic.startsWith('syncChanges:')) return;
    const databaseId = topic.slice('syncChanges:'.length);
    const wake: SyncChangesPayload = { databaseId, dbVersion: Number.MAX_SAFE_INTEGER, originSiteId: '', tables: [], resync: true };
    deliver(topic, wake);
  };

  const subscribe = (topicList: string[]): void => {
    if (topicList.length === 0) return;
    subscribeClient.subscribe(...topicList.map((t) => prefix + t)).then(
      () => {
        for (const t of topicList) resync(t);
      },
      onError,
    );
  };

  const onMessage = (channel: string, message: string): void => {
    if (!channel.startsWith(prefix)) return;
    const topic = channel.slice(prefix.length);
    if (!topics.has(topic)) return;
    let detail: unknown;
    try {
      detail = message === '' ? null : JSON.parse(message);
    } catch (e) {
      onError(e);
      return;
    }
    deliver(topic, detail);
  };
  // After a reconnection ioredis re-subscribes by itself; subscribing again (idempotent) tells us
  // when that is acknowledged, and the wake-ups cover what was published while disconnected.
  const onReady = (): void => {
    if (!closed) subscribe([...topics.keys()]);
  };
  subscribeClient.on('message', onMessage);
  subscribeClient.on('ready', onReady);

  const target: RedisApiEventTarget = {
    addEventListener(topic: string, callback: ApiEventListener | null) {
      if (callback == null || closed) return;
      let listeners = topics.get(topic);
      if (listeners === undefined) {
        listeners = new Set();
        topics.set(topic, listeners);
        subscribe([topic]);
      }
      listeners.add(callback);
    },
    removeEventListener(topic: string, callback: ApiEventListener | null) {
      const listeners = topics.get(topic);
      if (listeners === undefined || callback == null) return;
      listeners.delete(callback);
      if (listeners.size > 0) return;
      topics.delete(topic);
      if (!closed) subscribeClient.unsubscribe(prefix + topic).catch(onError);
    },
    dispatchEvent(event) {
      if (closed) return false;
      publishClient.publish(prefix + event.type, event.detail === undefined ? '' : JSON.stringify(event.detail)).catch(onError);
      return true;
    },
    channels: () => [...topics.keys()].map((t) => prefix + t),
    async close() {
      if (closed) return;
      closed = true;
      subscribeClient.off('message', onMessage);
      subscribeClient.off('ready', onReady);
      const channels = [...topics.keys()].map((t) => prefix + t);
      topics.clear();
      if (channels.length > 0) await subscribeClient.unsubscribe(...channels).catch(onError);
    },
  };
  return target;
}

export interface RedisPubSub {
  pubsub: ApiPubSub;
  eventTarget: RedisApiEventTarget;
  /** Detaches the event target and closes both Redis connections. */
  close(): Promise<void>;
  /** Resolves when both connections are up and Redis answers PING (readiness, observability/health.ts). */
  ping?(): Promise<void>;
}

/**
 * Connects the two Redis connections (publish, subscribe) of `url` and returns the pub/sub over
 * them. Rejects when Redis cannot be reached at start (`connectTimeoutMs`, default 5 s).
 */
export async function createRedisPubSub(options: { url: string; prefix?: string; onError?: (error: unknown) => void; connectTimeoutMs?: number }): Promise<RedisPubSub> {
  const clientOptions = { lazyConnect: true, connectTimeout: options.connectTimeoutMs ?? 5000, maxRetriesPerRequest: 3 };
  const publishClient = new Redis(options.url, { ...clientOptions, connectionName: 'offsync-publish' });
  const subscribeClient = new Redis(options.url, { ...clientOptions, connectionName: 'offsync-subscribe' });
  // Connection errors are retried by ioredis; without a listener they would be unhandled.
  const report = options.onError ?? ((e: unknown) => console.error('pubsub: redis failed', e));
  publishClient.on('error', report);
  subscribeClient.on('error', report);
  const quit = async (): Promise<void> => {
    await Promise.allSettled([publishClient.quit(), subscribeClient.quit()]);
    publishClient.disconnect();
    subscribeClient.disconnect();
  };
  try {
    await Promise.all([publishClient.connect(), subscribeClient.connect()]);
  } catch (e) {
    await quit();
    throw new Error(`cannot connect to Redis: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const eventTarget = createRedisApiEventTarget({
    publishClient,
    subscribeClient,
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  });
  return {
    pubsub: createApiPubSub({ eventTarget }),
    eventTarget,
    async close() {
      await eventTarget.close();
      await quit();
    },
    async ping() {
      if (publishClient.status !== 'ready' || subscribeClient.status !== 'ready') throw new Error(`redis connection ${publishClient.status}/${subscribeClient.status}`);
      await publishClient.ping();
    },
  };
}

export type { PubSubEvent };
