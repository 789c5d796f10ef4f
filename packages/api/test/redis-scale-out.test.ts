/**
 * Scaling out through Redis: two OffSync instances (two `createApp`s sharing one control-plane
 * database file and one DATA_DIR, each with its own pub/sub on the same Redis) on two loopback
 * ports. A device subscribed to `changes` on instance 2 receives a push made on instance 1, and
 * `deviceEvents` published on instance 1 reach a subscriber on instance 2.
 *
 * Runs against a real Redis when TEST_REDIS_URL is set or one answers on 127.0.0.1:6379 (and then
 * also against the fake), else against an in-process fake of the ioredis subset the event target
 * uses (publish / subscribe / unsubscribe / on('message')). Never skipped.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TODOS_DDL } from '@offsync/core/testing';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import {
  createApp,
  createSecretBox,
  createPrismaClient,
  migrate,
  silentLogger,
  systemClock,
  createApiPubSub,
  createRedisApiEventTarget,
  createRedisPubSub,
} from '../src/index.ts';
import type { App, DeviceEventPayload, RedisPubSub, RedisPubSubClient, SyncChangesPayload } from '../src/index.ts';
import { CHANGES, insertTodos, outgoing, PUSH, replica, rows, siteOf } from './graphql-sync-fixture.ts';
import type { Batch, GqlResult, PushResult } from './graphql-sync-fixture.ts';
import { FakeRedisBroker } from './fake-redis.ts';
import { createTestTarget } from './helpers.ts';
import type { TestTarget } from './helpers.ts';

// ---------------------------------------------------------------------------------------------
// Backends: a real Redis, or an in-process fake with the same asynchronous behaviour.

interface Backend {
  name: string;
  /** A pub/sub with its own connections, as one OffSync process has. */
  connect(prefix: string): Promise<RedisPubSub>;
  /** Subscribers of a channel, server side (PUBSUB NUMSUB). */
  numsub(channel: string): Promise<number>;
  /** Active channels and keys under a prefix: what a test leaves behind. */
  leftovers(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

function fakeBackend(): Backend {
  const broker = new FakeRedisBroker();
  return {
    name: 'in-process fake',
    async connect(prefix) {
      const eventTarget = createRedisApiEventTarget({ publishClient: broker.client(), subscribeClient: broker.client(), prefix });
      return { pubsub: createApiPubSub({ eventTarget }), eventTarget, close: () => eventTarget.close() };
    },
    numsub: async (channel) => broker.subscribers.get(channel)?.size ?? 0,
    leftovers: async (prefix) => [...broker.subscribers.keys()].filter((c) => c.startsWith(prefix)),
    close: async () => {},
  };
}

function redisBackend(url: string): Backend {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  return {
    name: `Redis ${url.replace(/\/\/[^@/]*@/, '//')}`,
    connect: (prefix) => createRedisPubSub({ url, prefix }),
    async numsub(channel) {
      const reply = (await admin.pubsub('NUMSUB', channel)) as [string, number];
      return Number(reply[1]);
    },
    async leftovers(prefix) {
      const channels = (await admin.pubsub('CHANNELS', `${prefix}*`)) as string[];
      const keys = await admin.keys(`${prefix}*`);
      return [...channels, ...keys];
    },
    async close() {
      await admin.quit();
    },
  };
}

/** TEST_REDIS_URL (must answer), else redis://127.0.0.1:6379 when it answers, else undefined. */
async function availableRedis(): Promise<string | undefined> {
  const explicit = process.env['TEST_REDIS_URL'] || undefined;
  const url = explicit ?? 'redis://127.0.0.1:6379';
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return url;
  } catch (e) {
    if (explicit !== undefined) throw new Error(`TEST_REDIS_URL=${explicit} does not answer: ${String(e)}`);
    return undefined;
  } finally {
    probe.disconnect();
  }
}

const redisUrl = await availableRedis();
const backends: Array<() => Backend> = redisUrl === undefined ? [fakeBackend] : [() => redisBackend(redisUrl), fakeBackend];

// ---------------------------------------------------------------------------------------------

async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the first value `next` is called with that satisfies `pred`. */
function waiter<T>(): { push(v: T): void; next(pred: (v: T) => boolean, ms?: number): Promise<T>; seen: T[] } {
  const seen: T[] = [];
  const waiting: Array<() => void> = [];
  return {
    seen,
    push(v) {
      seen.push(v);
      for (const w of waiting.splice(0)) w();
    },
    async next(pred, ms = 5000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = seen.find(pred);
        if (found !== undefined) return found;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out; seen ${JSON.stringify(seen).slice(0, 500)}`);
        await new Promise<void>((resolve) => { waiting.push(resolve); setTimeout(resolve, left); });
      }
    },
  };
}

describe.each(backends.map((make) => [make().name, make] as const))('events through %s', (_name, make) => {
  let backend: Backend;
  const prefix = `offsync-test-${randomBytes(6).toString('hex')}:`;
  beforeAll(() => { backend = make(); });
  afterAll(async () => {
    // Nothing left behind: no subscribed channel, no key under the test's prefix.
    await until(async () => (await backend.leftovers(prefix)).length === 0, 'channels to be released', 2000);
    await backend.close();
  });

  test('payloads cross as JSON under the prefix; another prefix hears nothing; a new syncChanges subscription gets a resync wake-up', async () => {
    const a = await backend.connect(prefix);
    const b = await backend.connect(prefix);
    const other = await backend.connect(`${prefix}other:`);
    try {
      const fromB = waiter<DeviceEventPayload>();
      const fromOther = waiter<DeviceEventPayload>();
      const wakes = waiter<SyncChangesPayload>();
      const pump = async <T>(it: AsyncIterable<T>, w: { push(v: T): void }) => { for await (const v of it) w.push(v); };
      const subB = b.pubsub.subscribe('deviceEvent', 'db1');
      const subOther = other.pubsub.subscribe('deviceEvent', 'db1');
      const subChanges = b.pubsub.subscribe('syncChanges', 'db1');
      void pump(subB, fromB);
      void pump(subOther, fromOther);
      void pump(subChanges, wakes);
      await until(async () => (await backend.numsub(`${prefix}deviceEvent:db1`)) === 1 && (await backend.numsub(`${prefix}syncChanges:db1`)) === 1, 'subscriptions');

      // Subscribing told the syncChanges listeners to re-read (SUBSCRIBE is asynchronous).
      expect(await wakes.next(() => true)).toEqual({ databaseId: 'db1', dbVersion: Number.MAX_SAFE_INTEGER, originSiteId: '', tables: [], resync: true });

      const event: DeviceEventPayload = { kind: 'REGISTERED', databaseId: 'db1', siteId: 'ab'.repeat(16), at: new Date('2025-06-15T12:00:00Z').toISOString() };
      a.pubsub.publish('deviceEvent', 'db1', event);
      const change: SyncChangesPayload = { databaseId: 'db1', dbVersion: 42, originSiteId: 'cd'.repeat(16), tables: ['todos', 'notes'] };
      a.pubsub.publish('syncChanges', 'db1', change);
      expect(await fromB.next(() => true)).toEqual(event);
      expect(await wakes.next((w) => w.dbVersion === 42)).toEqual(change);
      await new Promise((r) => setTimeout(r, 50));
      expect(fromOther.seen).toEqual([]);
      await subB.return();
      await subOther.return();
      await subChanges.return();
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });

  test('a failed PUBLISH is reported, not an unhandled rejection', async () => {
    const errors: unknown[] = [];
    const failing: RedisPubSubClient = {
      publish: () => Promise.reject(new Error('Redis is down')),
      subscribe: () => Promise.reject(new Error('Redis is down')),
      unsubscribe: () => Promise.resolve(0),
      on: () => failing,
      off: () => failing,
    };
    const target = createRedisApiEventTarget({ publishClient: failing, subscribeClient: failing, onError: (e) => errors.push(e) });
    const pubsub = createApiPubSub({ eventTarget: target });
    const sub = pubsub.subscribe('metricsChanged', 'db1')[Symbol.asyncIterator]();
    const pending = sub.next();
    pubsub.publish('metricsChanged', 'db1', { databaseId: 'db1', at: new Date().toISOString() });
    await until(() => errors.length === 2, 'errors');
    expect(errors.map(String)).toEqual(['Error: Redis is down', 'Error: Redis is down']);
    await sub.return?.();
    await pending;
    await target.close();
  });

  describe('two OffSync instances on one control plane and DATA_DIR', () => {
    interface Instance { app: App; bus: RedisPubSub; http: string; ws: string }
    let cp: TestTarget;
    let dataDir: string;
    let one: Instance;
    let two: Instance;
    let adminKey: string;
    let apiKey: string;
    let databaseId: string;
    const clients: Client[] = [];

    beforeAll(async () => {
      cp = await createTestTarget('sqlite');
      await migrate(cp.target);
      dataDir = mkdtempSync(join(tmpdir(), 'offsync-data-'));
      // Processes of one deployment share the server key (secrets, artifact URLs).
      const serverKey = randomBytes(32);
      const artifactSecret = new Uint8Array(randomBytes(32));
      const start = async (): Promise<Instance> => {
        const bus = await backend.connect(prefix);
        const app = createApp({
          prisma: createPrismaClient(cp.target),
          provider: 'sqlite',
          pubsub: bus.pubsub,
          secretBox: createSecretBox(serverKey),
          clock: systemClock,
          logger: silentLogger,
          dataDir,
          publicUrl: 'http://127.0.0.1:4000',
          billingPeriodStartDay: 1,
          metricsThrottleMs: 50,
          sync: { artifactSecret },
        });
        await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
        const addr = app.server.address();
        const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
        return { app, bus, http: `http://127.0.0.1:${port}/graphql`, ws: `ws://127.0.0.1:${port}/graphql` };
      };
      one = await start();
      two = await start();
      const key = await one.app.services.auth.ensureAdminKey();
      if (key === null) throw new Error('expected a fresh admin key');
      adminKey = key;
      const s = one.app.services;
      const project = await s.projects.createProject({ name: 'p', kind: 'SQLITE' });
      databaseId = (await s.databases.createDatabase({ projectId: project.id, name: 'todos' })).id;
      const file = new Database(sqliteDatabasePath(dataDir, databaseId));
      file.exec(TODOS_DDL);
      file.close();
      await s.tables.deployTables(databaseId, ['todos']);
      await s.databases.setOffSync(databaseId, true);
      apiKey = (await s.auth.createApiKey(databaseId, 'devices')).secret;
    });

    afterAll(async () => {
      await Promise.all(clients.map((c) => c.dispose()));
      for (const i of [one, two]) {
        if (i === undefined) continue;
        await i.app.dispose();
        await i.bus.close();
      }
      await cp?.drop();
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
    });

    const wsClient = (url: string, connectionParams: Record<string, string>): Client => {
      const c = createClient({ url, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
      clients.push(c);
      return c;
    };

    async function gql<T>(url: string, query: string, variables: Record<string, unknown>, key: string): Promise<T> {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
      const r = (await res.json()) as GqlResult<T>;
      if (r.errors !== undefined || !r.data) throw new Error(JSON.stringify(r.errors));
      return r.data;
    }

    test('a device live on instance 2 gets a push made on instance 1; deviceEvents cross too', async () => {
      // An admin watches device events on instance 2.
      const events = waiter<{ kind: string; siteId: string; device: { siteId: string } | null }>();
      wsClient(two.ws, { authorization: `Bearer ${adminKey}` }).subscribe<{ deviceEvents: { kind: string; siteId: string; device: { siteId: string } | null } }>(
        { query: 'subscription($id: ID!) { deviceEvents(databaseId: $id) { kind siteId device { siteId } } }', variables: { id: databaseId } },
        { next: (r) => { if (r.data) events.push(r.data.deviceEvents); }, error: (e) => { throw e; }, complete: () => {} },
      );

      // A device is live on instance 2: replay (nothing yet), then the "caught up" marker.
      const device = replica();
      const batches = waiter<Batch>();
      wsClient(two.ws, { authorization: `Bearer ${apiKey}`, databaseId }).subscribe<{ changes: Batch }>(
        { query: CHANGES, variables: { db: databaseId, site: siteOf(device), cursor: null, max: null } },
        {
          next: (r) => {
            const b = r.data?.changes;
            if (!b) throw new Error(JSON.stringify(r.errors));
            if (b.payload !== null) device.applyPayload(new Uint8Array(Buffer.from(b.payload, 'base64')));
            batches.push(b);
          },
          error: (e) => { throw e; },
          complete: () => {},
        },
      );
      await batches.next((b) => b.final && b.payload === null);
      // Instance 2 is subscribed (server side) to both topics before instance 1 publishes.
      await until(async () => (await backend.numsub(`${prefix}deviceEvent:${databaseId}`)) === 1
        && (await backend.numsub(`${prefix}syncChanges:${databaseId}`)) === 1, 'instance 2 to subscribe');
      expect(one.bus.eventTarget.channels()).toEqual([]);

      // Another device pushes through instance 1 (its own HTTP port).
      const writer = replica();
      insertTodos(writer, 0, 3, 'from instance 1');
      const out = outgoing(writer, 0);
      if (out === null) throw new Error('nothing to push');
      const pushed = await gql<{ pushChanges: PushResult }>(one.http, PUSH, { db: databaseId, site: siteOf(writer), payload: out.payload, min: out.dbVersionMin, max: out.dbVersionMax }, apiKey);
      expect(pushed.pushChanges.failures).toEqual([]);
      expect(pushed.pushChanges.applied).toBe(9);

      // Live on instance 2, without polling: the batch arrives through Redis.
      const live = await batches.next((b) => b.payload !== null);
      expect(live).toMatchObject({ changes: 9, final: true });
      expect(rows(device)).toEqual(rows(writer));

      // The writer's registration, published on instance 1, reached the subscriber on instance 2,
      // which resolved `device` from the shared control plane.
      const registered = await events.next((e) => e.siteId === siteOf(writer) && e.kind === 'REGISTERED');
      expect(registered.device).toEqual({ siteId: siteOf(writer) });

      // And the other way round: a push on instance 2 reaches the same device (no echo of its own).
      writer.driver.prepare("UPDATE todos SET done = 1 WHERE id = 't000001'").run();
      const out2 = outgoing(writer, out.dbVersionMax);
      if (out2 === null) throw new Error('nothing to push');
      await gql(two.http, PUSH, { db: databaseId, site: siteOf(writer), payload: out2.payload, min: out2.dbVersionMin, max: out2.dbVersionMax }, apiKey);
      await batches.next((b) => b.payload !== null && b.changes === 1);
      expect(rows(device)).toEqual(rows(writer));
    });
  });
});
