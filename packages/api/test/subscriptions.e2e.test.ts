import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { App } from '../src/index.ts';
import { createTestApp, providers, siteId, stopEmbeddedPg } from './helpers.ts';

afterAll(stopEmbeddedPg);

/** Collects `count` results of a subscription, then unsubscribes. */
function take<T>(client: Client, query: string, variables: Record<string, unknown>, count: number, onSubscribed?: () => void): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    const unsubscribe = client.subscribe<T>({ query, variables }, {
      next: (r) => {
        if (out.length === count) return; // results already in flight when unsubscribing
        if (r.errors) { reject(new Error(JSON.stringify(r.errors))); return; }
        out.push(r.data as T);
        if (out.length === count) { unsubscribe(); resolve(out); }
      },
      error: reject,
      complete: () => resolve(out),
    });
    onSubscribed?.();
  });
}

describe.each(providers)('graphql-ws subscriptions (control plane on %s)', (provider) => {
  let app: App;
  let adminKey: string;
  let dispose: () => Promise<void>;
  let url: string;
  let databaseId: string;
  beforeAll(async () => {
    ({ app, adminKey, dispose } = await createTestApp(provider, { metricsThrottleMs: 100 }));
    await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
    const addr = app.server.address();
    url = `ws://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}/graphql`;
    const p = await app.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await app.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
  });
  afterAll(async () => { await dispose(); });

  function client(connectionParams: Record<string, unknown>) {
    return createClient({ url, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true });
  }

  test('deviceEvents and metrics reach a real graphql-ws client', async () => {
    const c = client({ authorization: `Bearer ${adminKey}` });
    try {
      const site = siteId();
      const events = take<{ deviceEvents: { kind: string; siteId: string; device: { clientVersion: string | null } | null } }>(
        c, 'subscription($id: ID!) { deviceEvents(databaseId: $id) { kind siteId device { clientVersion } } }', { id: databaseId }, 2);
      const metrics = take<{ metrics: { requests: number; uploadBytes: number; activeDevices: number } }>(
        c, 'subscription($id: ID!) { metrics(databaseId: $id) { requests uploadBytes activeDevices } }', { id: databaseId }, 2);
      await new Promise((r) => setTimeout(r, 1000)); // let both subscriptions register (no ack in graphql-ws)
      await app.services.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY', clientVersion: '1.0.18' });
      await app.services.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY', clientVersion: '1.0.19' });
      await app.services.metrics.recordTraffic(databaseId, site, { uploadBytes: 123, downloadBytes: 456 });
      const ev = await events;
      expect(ev.map((e) => e.deviceEvents.kind)).toEqual(['REGISTERED', 'SYNCED']);
      expect(ev[0]?.deviceEvents.siteId).toBe(site);
      const m = await metrics;
      expect(m[0]?.metrics.requests).toBe(0);
      const last = m[m.length - 1]?.metrics;
      expect(last?.activeDevices ?? 0).toBeGreaterThanOrEqual(0);
      // Snapshots arrive throttled; the latest one eventually includes the traffic.
      const fresh = await take<{ metrics: { uploadBytes: number } }>(c, 'subscription($id: ID!) { metrics(databaseId: $id) { uploadBytes } }', { id: databaseId }, 1);
      expect(fresh[0]?.metrics.uploadBytes).toBe(123);
    } finally {
      await c.dispose();
    }
  });

  test('adminKey connection param works; unauthenticated connections are refused', async () => {
    const good = client({ adminKey });
    const one = await take<{ metrics: { requests: number } }>(good, 'subscription($id: ID!) { metrics(databaseId: $id) { requests } }', { id: databaseId }, 1);
    expect(one).toHaveLength(1);
    await good.dispose();

    for (const params of [{}, { authorization: 'Bearer osa_wrong' }]) {
      const bad = client(params);
      const err = await take(bad, 'subscription($id: ID!) { metrics(databaseId: $id) { requests } }', { id: databaseId }, 1).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ code: 4403 });
      await bad.dispose();
    }
  });
});
