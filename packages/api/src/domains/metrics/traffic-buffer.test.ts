/**
 * The write-behind of per-request control-plane writes (traffic-buffer.ts, devices.service.ts):
 * traffic summed in memory and flushed in one transaction, device `lastSyncAt` throttled, reads
 * on the node exact, nothing lost on close or on a failed flush, several nodes' sums exact.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createTestContext, manualClock, providers, siteId, stopEmbeddedPg } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';
import { createApp } from '../../app.ts';
import { createSecretBox } from '../../crypto.ts';
import { migrate } from '../../db/migrate.ts';
import { createPrismaClient } from '../../db/prisma.ts';
import { silentLogger } from '../../deps.ts';
import type { ServiceDeps } from '../../deps.ts';
import { createApiPubSub } from '../../pubsub.ts';
import type { DeviceEventPayload, MetricsChangedPayload } from '../../pubsub.ts';
import { createServices } from '../../services.ts';
import type { Services } from '../../services.ts';
import { DEVICE_SEEN_WRITE_INTERVAL_MS } from '../devices/devices.service.ts';
import { MAX_FLUSH_ATTEMPTS } from './traffic-buffer.ts';
import type { DeviceSeen } from '../devices/devices.service.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('control-plane write-behind on %s', (provider) => {
  let ctx: TestContext;
  let databaseId: string;
  /** Services whose timer never fires during a test: only explicit flushes and reads write. */
  let node: Services;
  const rowsOf = (site: string) => ctx.deps.prisma.trafficBucket.findMany({ where: { databaseId, siteId: site }, orderBy: { bucketStart: 'asc' } });
  const deviceRow = (site: string) => ctx.deps.prisma.device.findUnique({ where: { databaseId_siteId: { databaseId, siteId: site } } });
  beforeAll(async () => {
    ctx = await createTestContext(provider);
    const p = await ctx.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
    node = createServices({ ...ctx.deps, trafficFlushMs: 3_600_000 });
  });
  afterAll(async () => {
    await node.close();
    await ctx.dispose();
  });

  test('traffic is summed in memory per site and minute, then written exactly by one flush', async () => {
    const site = siteId();
    await node.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    const t0 = Math.floor(ctx.clock.now() / 60_000) * 60_000;
    for (let i = 0; i < 10; i++) await node.metrics.recordTraffic(databaseId, site.toUpperCase(), { uploadBytes: 10, downloadBytes: 3, at: new Date(t0 + i * 1000) });
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 1, downloadBytes: 0, at: new Date(t0 + 60_000) });
    expect(await rowsOf(site)).toEqual([]); // nothing written yet
    expect((await deviceRow(site))?.uploadBytes).toBe(0n);
    await node.flushControlPlane();
    const rows = await rowsOf(site);
    expect(rows.map((r) => [r.bucketStart.getTime() - t0, r.requests, Number(r.uploadBytes), Number(r.downloadBytes)])).toEqual([[0, 10, 100, 30], [60_000, 1, 1, 0]]);
    expect(await deviceRow(site)).toMatchObject({ uploadBytes: 101n, downloadBytes: 30n });
    await node.flushControlPlane(); // nothing pending: nothing added twice
    expect((await rowsOf(site)).map((r) => r.requests)).toEqual([10, 1]);
  });

  test('reads on the node see what it counted (they flush first)', async () => {
    const site = siteId();
    await node.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    const window = { bucket: 'HOUR' as const, to: new Date(ctx.clock.now() + 60_000) };
    const before = await node.metrics.getMetrics(databaseId, window);
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 7, downloadBytes: 5 });
    const after = await node.metrics.getMetrics(databaseId, window);
    expect(after.requests - before.requests).toBe(1);
    expect(after.uploadBytes - before.uploadBytes).toBe(7);
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 0, downloadBytes: 9 });
    expect(await node.devices.getDevice(databaseId, site)).toMatchObject({ uploadBytes: 7n, downloadBytes: 14n });
  });

  test('a flush of 600 sites is two bucket statements per bucket size and two device statements; reads during a flush share the next one', async () => {
    const sites = Array.from({ length: 600 }, () => siteId());
    for (const s of sites.slice(0, 300)) await node.devices.recordDeviceSeen(databaseId, { siteId: s, credentialKind: 'API_KEY' });
    for (const s of sites) await node.metrics.recordTraffic(databaseId, s, { uploadBytes: 2, downloadBytes: 1 });
    const prisma = ctx.deps.prisma;
    const executes = vi.spyOn(prisma, '$executeRawUnsafe');
    const queries = vi.spyOn(prisma, '$queryRawUnsafe');
    const transactions = vi.spyOn(prisma, '$transaction');
    try {
      const first = node.flushControlPlane();
      await vi.waitFor(() => expect(transactions).toHaveBeenCalledTimes(1));
      // Counted while the first flush runs: five reads ask for one flush behind it, not five.
      await node.metrics.recordTraffic(databaseId, sites[0]!, { uploadBytes: 5, downloadBytes: 0 });
      const window = { bucket: 'HOUR' as const, to: new Date(ctx.clock.now() + 60_000) };
      const reads = await Promise.all(Array.from({ length: 5 }, () => node.metrics.getMetrics(databaseId, window)));
      await first;
      expect(transactions).toHaveBeenCalledTimes(2);
      expect(executes).toHaveBeenCalledTimes(9); // 600 buckets in 2 statements for each of minute, hour and day, then 1 each
      const updates = queries.mock.calls.filter((c) => String(c[0]).startsWith('UPDATE'));
      expect(updates).toHaveLength(3); // 600 devices in 2, then 1
      expect(queries.mock.calls.filter((c) => String(c[0]).startsWith('SELECT'))).toHaveLength(10); // each read: a series and a total, aggregated in SQL
      const totals = new Set(reads.map((r) => r.requests));
      expect(totals.size).toBe(1); // every read saw the same, committed sums
    } finally {
      executes.mockRestore();
      queries.mockRestore();
      transactions.mockRestore();
    }
    const rows = await ctx.deps.prisma.trafficBucket.findMany({ where: { databaseId, siteId: { in: sites } } });
    expect(rows).toHaveLength(600);
    expect(rows.reduce((n, r) => n + r.requests, 0)).toBe(601);
    expect(rows.reduce((n, r) => n + Number(r.uploadBytes), 0)).toBe(1205);
    for (const rollUp of [ctx.deps.prisma.trafficHour, ctx.deps.prisma.trafficDay] as const) {
      const sums = await (rollUp as typeof ctx.deps.prisma.trafficHour).findMany({ where: { databaseId, siteId: { in: sites } } });
      expect(sums.reduce((n, r) => n + r.requests, 0)).toBe(601);
      expect(sums.reduce((n, r) => n + Number(r.uploadBytes), 0)).toBe(1205);
    }
    const devices = await ctx.deps.prisma.device.findMany({ where: { databaseId, siteId: { in: sites } } });
    expect(devices).toHaveLength(300); // bytes of sites without a device row create none
    expect(devices.reduce((n, d) => n + Number(d.uploadBytes), 0)).toBe(605);
  });

  test('events: one metricsChanged per database per flush, SYNCED for a device whose bytes moved', async () => {
    const site = siteId();
    const idle = siteId();
    await node.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    await node.devices.recordDeviceSeen(databaseId, { siteId: idle, credentialKind: 'API_KEY' });
    const metricsEvents: MetricsChangedPayload[] = [];
    const deviceEvents: DeviceEventPayload[] = [];
    const metricsSub = ctx.deps.pubsub.subscribe('metricsChanged', databaseId);
    const deviceSub = ctx.deps.pubsub.subscribe('deviceEvent', databaseId);
    const END = 'end';
    const collecting = Promise.all([
      (async () => { for await (const e of metricsSub) { if (e.at === END) break; metricsEvents.push(e); } })(),
      (async () => { for await (const e of deviceSub) { if (e.siteId === END) break; deviceEvents.push(e); } })(),
    ]);
    for (let i = 0; i < 5; i++) await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 1, downloadBytes: 1 });
    await node.metrics.recordTraffic(databaseId, idle, { uploadBytes: 0, downloadBytes: 0 }); // a request, no bytes
    await node.metrics.recordTraffic(databaseId, siteId(), { uploadBytes: 4, downloadBytes: 0 }); // no device row
    expect(metricsEvents).toEqual([]); // not per request
    await node.flushControlPlane();
    ctx.deps.pubsub.publish('metricsChanged', databaseId, { databaseId, at: END });
    ctx.deps.pubsub.publish('deviceEvent', databaseId, { kind: 'SYNCED', databaseId, siteId: END, at: END });
    await collecting;
    expect(metricsEvents).toHaveLength(1);
    expect(deviceEvents.map((e) => [e.kind, e.siteId])).toEqual([['SYNCED', site]]);
  });

  test('a failed flush keeps everything pending; the next one writes it all once', async () => {
    const site = siteId();
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 2, downloadBytes: 0 });
    const spy = vi.spyOn(ctx.deps.prisma, '$transaction').mockRejectedValueOnce(new Error('control plane down'));
    await expect(node.flushControlPlane()).rejects.toThrow('control plane down');
    spy.mockRestore();
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 3, downloadBytes: 0 });
    await node.flushControlPlane();
    expect((await rowsOf(site)).map((r) => [r.requests, Number(r.uploadBytes)])).toEqual([[2, 5]]);
  });

  test('counters that keep failing are dropped after MAX_FLUSH_ATTEMPTS; reads answer meanwhile, later counting goes on', async () => {
    const site = siteId();
    await node.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 4, downloadBytes: 0 });
    const spy = vi.spyOn(ctx.deps.prisma, '$transaction').mockRejectedValue(new Error('poisoned batch'));
    // A read that flushes first still answers (from what is committed) while the flush fails.
    expect(await node.devices.getDevice(databaseId, site)).toMatchObject({ uploadBytes: 0n });
    for (let i = 1; i < MAX_FLUSH_ATTEMPTS; i++) await expect(node.flushControlPlane()).rejects.toThrow('poisoned batch');
    spy.mockRestore();
    await node.flushControlPlane(); // the dropped counters are gone: nothing left to write
    expect(await rowsOf(site)).toEqual([]);
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 6, downloadBytes: 0 });
    await node.flushControlPlane();
    expect((await rowsOf(site)).map((r) => [r.requests, Number(r.uploadBytes)])).toEqual([[1, 6]]);
    expect((await deviceRow(site))?.uploadBytes).toBe(6n);
  });

  test('a database deleted before the flush takes its counters with it; the other databases are written', async () => {
    const p = await ctx.services.projects.createProject({ name: 'gone', kind: 'SQLITE' });
    const gone = (await ctx.services.databases.createDatabase({ projectId: p.id, name: 'gone' })).id;
    const site = siteId();
    await node.devices.recordDeviceSeen(gone, { siteId: site, credentialKind: 'API_KEY' });
    await node.metrics.recordTraffic(gone, site, { uploadBytes: 1, downloadBytes: 0 });
    await node.metrics.recordTraffic(databaseId, site, { uploadBytes: 2, downloadBytes: 0 });
    await ctx.deps.prisma.database.delete({ where: { id: gone } });
    await node.flushControlPlane();
    expect((await rowsOf(site)).map((r) => [r.requests, Number(r.uploadBytes)])).toEqual([[1, 2]]);
    expect(await ctx.deps.prisma.trafficBucket.count({ where: { databaseId: gone } })).toBe(0);
  });

  test('the timer flushes by itself (no read, no close)', async () => {
    const site = siteId();
    await ctx.services.metrics.recordTraffic(databaseId, site, { uploadBytes: 1, downloadBytes: 0 }); // trafficFlushMs 50 in tests
    await vi.waitFor(async () => expect((await rowsOf(site)).map((r) => r.requests)).toEqual([1]), { timeout: 10_000 });
  });

  test('several nodes over one control plane: each flushes its own increments, the sums are exact', async () => {
    const site = siteId();
    const other = createServices({ ...ctx.deps, trafficFlushMs: 3_600_000 });
    await node.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    const at = new Date(ctx.clock.now());
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? node : other).metrics.recordTraffic(databaseId, site, { uploadBytes: 1, downloadBytes: 2, at })));
    await Promise.all([node.flushControlPlane(), other.close()]);
    expect((await rowsOf(site)).map((r) => [r.requests, Number(r.uploadBytes), Number(r.downloadBytes)])).toEqual([[20, 20, 40]]);
    expect(await deviceRow(site)).toMatchObject({ uploadBytes: 20n, downloadBytes: 40n });
  });

  test('lastSyncAt is throttled: a poll within the window waits for the flush, one after it is written at once', async () => {
    const site = siteId();
    const seen = { siteId: site, credentialKind: 'API_KEY' as const, clientVersion: '1.0', schemaHash: '7' };
    const t0 = ctx.clock.now();
    await node.devices.recordDeviceSeen(databaseId, seen);
    ctx.clock.advance(1000);
    const polled = await node.devices.recordDeviceSeen(databaseId, seen);
    expect(polled.lastSyncAt.getTime()).toBe(t0 + 1000); // what the caller is told
    expect((await deviceRow(site))?.lastSyncAt.getTime()).toBe(t0); // not written yet
    await node.flushControlPlane();
    expect((await deviceRow(site))?.lastSyncAt.getTime()).toBe(t0 + 1000);
    ctx.clock.advance(DEVICE_SEEN_WRITE_INTERVAL_MS);
    await node.devices.recordDeviceSeen(databaseId, seen); // the window has passed: written now
    expect((await deviceRow(site))?.lastSyncAt.getTime()).toBe(t0 + 1000 + DEVICE_SEEN_WRITE_INTERVAL_MS);
    ctx.clock.advance(1000);
    await node.devices.recordDeviceSeen(databaseId, seen);
    // A read of devices on this node flushes the pending lastSyncAt first.
    expect((await node.devices.getDevice(databaseId, site))?.lastSyncAt.getTime()).toBe(t0 + 2000 + DEVICE_SEEN_WRITE_INTERVAL_MS);
  });

  test('a pending lastSyncAt never moves a later one back (another node wrote after it)', async () => {
    const site = siteId();
    const seen = { siteId: site, credentialKind: 'API_KEY' as const };
    const t0 = ctx.clock.now();
    await node.devices.recordDeviceSeen(databaseId, seen);
    await node.devices.recordDeviceSeen(databaseId, { ...seen, at: new Date(t0 + 1000) }); // pending on this node
    const other = createServices({ ...ctx.deps, trafficFlushMs: 3_600_000 });
    await other.devices.recordDeviceSeen(databaseId, { ...seen, at: new Date(t0 + 5000) }); // first seen there: written
    await other.close();
    await node.flushControlPlane();
    expect((await deviceRow(site))?.lastSyncAt.getTime()).toBe(t0 + 5000);
  });

  test('a changed user, credential kind, client version or schema hash is written at once, with SYNCED', async () => {
    const site = siteId();
    const base: DeviceSeen = { siteId: site, userId: 'u1', credentialKind: 'ACCESS_TOKEN', clientVersion: '1.0', schemaHash: '1' };
    const events: DeviceEventPayload[] = [];
    const sub = ctx.deps.pubsub.subscribe('deviceEvent', databaseId);
    const collecting = (async () => { for await (const e of sub) { if (e.siteId !== site) continue; events.push(e); if (e.kind === 'REMOVED') break; } })();
    await node.devices.recordDeviceSeen(databaseId, base);
    const changes: Array<Partial<DeviceSeen>> = [{ userId: 'u2' }, { credentialKind: 'JWT' }, { clientVersion: '1.1' }, { schemaHash: '2' }];
    let current = base;
    for (const change of changes) {
      ctx.clock.advance(10); // well inside the throttle window
      current = { ...current, ...change };
      await node.devices.recordDeviceSeen(databaseId, current);
      expect(await deviceRow(site)).toMatchObject({ userId: current.userId, credentialKind: current.credentialKind, clientVersion: current.clientVersion, schemaHash: current.schemaHash, lastSyncAt: new Date(ctx.clock.now()) });
    }
    await node.devices.removeDevice(databaseId, site);
    await collecting;
    expect(events.map((e) => e.kind)).toEqual(['REGISTERED', 'SYNCED', 'SYNCED', 'SYNCED', 'SYNCED', 'REMOVED']);
    // Removed: the next request registers it again at once.
    await node.devices.recordDeviceSeen(databaseId, current);
    expect(await deviceRow(site)).not.toBeNull();
  });
});

test('app dispose writes what is still in memory before the control plane disconnects', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-flush-'));
  try {
    const file = join(dir, 'control.db');
    await migrate({ provider: 'sqlite', file });
    const deps: ServiceDeps = {
      prisma: createPrismaClient({ provider: 'sqlite', file }), provider: 'sqlite', pubsub: createApiPubSub(), secretBox: createSecretBox(randomBytes(32)),
      clock: manualClock(), logger: silentLogger, dataDir: join(dir, 'data'), publicUrl: 'http://127.0.0.1', billingPeriodStartDay: 1, metricsThrottleMs: 50,
      trafficFlushMs: 3_600_000,
    };
    const app = createApp(deps);
    const p = await app.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    const databaseId = (await app.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
    const site = siteId();
    await app.services.devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    for (let i = 0; i < 3; i++) await app.services.metrics.recordTraffic(databaseId, site, { uploadBytes: 5, downloadBytes: 1 });
    await app.dispose();
    const check = createPrismaClient({ provider: 'sqlite', file });
    try {
      expect((await check.trafficBucket.findMany({ where: { databaseId, siteId: site } })).map((r) => [r.requests, Number(r.uploadBytes)])).toEqual([[3, 15]]);
      expect(await check.device.findUnique({ where: { databaseId_siteId: { databaseId, siteId: site } } })).toMatchObject({ uploadBytes: 15n, downloadBytes: 3n });
    } finally {
      await check.$disconnect();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
