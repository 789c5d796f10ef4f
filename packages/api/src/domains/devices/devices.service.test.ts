import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestContext, providers, siteId, stopEmbeddedPg } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';
import type { DeviceEventPayload } from '../../pubsub.ts';
import { createDevicesService } from './devices.service.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('devices on %s', (provider) => {
  let ctx: TestContext;
  let databaseId: string;
  beforeAll(async () => {
    ctx = await createTestContext(provider);
    const p = await ctx.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
  });
  afterAll(async () => { await ctx.dispose(); });

  test('recordDeviceSeen registers then updates, publishing events; removeDevice', async () => {
    const { devices } = ctx.services;
    const events: DeviceEventPayload[] = [];
    const sub = ctx.deps.pubsub.subscribe('deviceEvent', databaseId);
    const collecting = (async () => { for await (const e of sub) { events.push(e); if (events.length === 3) break; } })();

    const site = siteId();
    const d = await devices.recordDeviceSeen(databaseId, { siteId: site.toUpperCase(), userId: 'u1', credentialKind: 'ACCESS_TOKEN', clientVersion: '1.0.18', schemaHash: '123' });
    expect(d.siteId).toBe(site);
    ctx.clock.advance(1000);
    const again = await devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY', clientVersion: '1.0.19' });
    expect(again.firstSeenAt.getTime()).toBe(d.firstSeenAt.getTime());
    expect(again.lastSyncAt.getTime()).toBe(d.lastSyncAt.getTime() + 1000);
    expect(again.clientVersion).toBe('1.0.19');
    expect(await devices.removeDevice(databaseId, site)).toBe(true);
    await collecting;
    expect(events.map((e) => e.kind)).toEqual(['REGISTERED', 'SYNCED', 'REMOVED']);
    await expect(devices.removeDevice(databaseId, site)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(devices.recordDeviceSeen(databaseId, { siteId: 'xyz', credentialKind: 'API_KEY' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  test('SYNCED only when something changed: not for polls, for transferred bytes and changed fields', async () => {
    const { devices, metrics } = ctx.services;
    const site = siteId();
    const events: DeviceEventPayload[] = [];
    const sub = ctx.deps.pubsub.subscribe('deviceEvent', databaseId);
    const collecting = (async () => { for await (const e of sub) { if (e.siteId !== site) continue; events.push(e); if (e.kind === 'REMOVED') break; } })();
    const seen = { siteId: site, credentialKind: 'API_KEY' as const, clientVersion: '1.1.4', schemaHash: '42' };
    await devices.recordDeviceSeen(databaseId, seen);
    for (let i = 0; i < 3; i++) {
      ctx.clock.advance(1000);
      const polled = await devices.recordDeviceSeen(databaseId, seen); // a poll: lastSyncAt moves, nothing else
      expect(polled.lastSyncAt.getTime()).toBe(ctx.clock.now());
    }
    await metrics.recordTraffic(databaseId, site, { uploadBytes: 0, downloadBytes: 0 });
    await metrics.recordTraffic(databaseId, site, { uploadBytes: 0, downloadBytes: 512 });
    await devices.recordDeviceSeen(databaseId, { ...seen, schemaHash: '43' });
    await devices.recordDeviceSeen(databaseId, { ...seen, schemaHash: '43' });
    await devices.removeDevice(databaseId, site);
    await collecting;
    // In publish order: a SYNCED from any poll would sit between REGISTERED and the traffic's.
    expect(events.map((e) => e.kind)).toEqual(['REGISTERED', 'SYNCED', 'SYNCED', 'REMOVED']);
  });

  test('recordDeviceSeen is an upsert: concurrent first requests of one device (several nodes) all succeed, one row, no SYNCED', async () => {
    const { devices } = ctx.services;
    const site = siteId();
    const events: DeviceEventPayload[] = [];
    const sub = ctx.deps.pubsub.subscribe('deviceEvent', databaseId);
    const collecting = (async () => { for await (const e of sub) { if (e.siteId !== site) continue; events.push(e); if (e.kind === 'REMOVED') break; } })();
    // Two "nodes" (two services over one control plane) and several requests each, at once.
    const other = createDevicesService(ctx.deps);
    const seen = { siteId: site, credentialKind: 'API_KEY' as const, clientVersion: '1.1.4', schemaHash: '42' };
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? devices : other).recordDeviceSeen(databaseId, seen)));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    const rows = await ctx.deps.prisma.device.findMany({ where: { databaseId, siteId: site } });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ clientVersion: '1.1.4', schemaHash: '42', credentialKind: 'API_KEY' });
    await devices.removeDevice(databaseId, site);
    await collecting;
    // Every request saw the same fields: a registration (possibly told by more than one racer), never a SYNCED.
    expect(new Set(events.map((e) => e.kind))).toEqual(new Set(['REGISTERED', 'REMOVED']));
  });

  test('listDevices paginates, most recent first', async () => {
    const { devices } = ctx.services;
    const sites: string[] = [];
    for (let i = 0; i < 5; i++) {
      ctx.clock.advance(1000);
      const s = siteId();
      sites.push(s);
      await devices.recordDeviceSeen(databaseId, { siteId: s, credentialKind: 'API_KEY' });
    }
    const page1 = await devices.listDevices(databaseId, { first: 2 });
    expect(page1.totalCount).toBe(5);
    expect(page1.edges.map((e) => e.node.siteId)).toEqual([sites[4], sites[3]]);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page3 = await devices.listDevices(databaseId, { first: 2, after: (await devices.listDevices(databaseId, { first: 2, after: page1.pageInfo.endCursor })).pageInfo.endCursor });
    expect(page3.edges.map((e) => e.node.siteId)).toEqual([sites[0]]);
    expect(page3.pageInfo.hasNextPage).toBe(false);
    await expect(devices.listDevices(databaseId, { after: 'garbage' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});
