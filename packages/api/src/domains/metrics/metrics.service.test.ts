import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createApp } from '../../app.ts';
import { createTestContext, createTestDeps, providers, siteId, stopEmbeddedPg } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';
import { billingPeriod } from './period.ts';

afterAll(stopEmbeddedPg);

test('billing periods', () => {
  const now = Date.parse('2025-06-15T12:00:00Z');
  expect(billingPeriod(now, 1, 'CURRENT')).toEqual({ start: new Date('2025-06-01T00:00:00Z'), end: new Date('2025-07-01T00:00:00Z') });
  expect(billingPeriod(now, 1, 'PREVIOUS').start).toEqual(new Date('2025-05-01T00:00:00Z'));
  expect(billingPeriod(now, 20, 'CURRENT')).toEqual({ start: new Date('2025-05-20T00:00:00Z'), end: new Date('2025-06-20T00:00:00Z') });
  expect(billingPeriod(Date.parse('2025-01-05T00:00:00Z'), 10, 'PREVIOUS').start).toEqual(new Date('2024-11-10T00:00:00Z'));
});

test('the app expires old traffic a minute after start, then on its interval, one run at a time, until it stops', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
  const { deps, cleanup } = await createTestDeps('sqlite');
  try {
    const app = createApp({ ...deps, trafficRetention: { minuteMs: 86_400_000, hourMs: 86_400_000, intervalMs: 3_600_000 } });
    let release: () => void = () => {};
    const expire = vi.spyOn(app.services.metrics, 'expireTraffic').mockImplementation(() => new Promise((r) => { release = () => r({ minutes: 0, hours: 0 }); }));
    vi.advanceTimersByTime(59_999);
    expect(expire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(expire).toHaveBeenCalledTimes(1);
    // Still running an hour later: no second run on top of it.
    vi.advanceTimersByTime(3_600_000);
    expect(expire).toHaveBeenCalledTimes(1);
    release();
    await vi.waitFor(() => {
      vi.advanceTimersByTime(3_600_000);
      expect(expire).toHaveBeenCalledTimes(2);
    });
    release();
    await app.dispose();
    vi.advanceTimersByTime(10 * 3_600_000);
    expect(expire).toHaveBeenCalledTimes(2);
  } finally {
    vi.useRealTimers();
    await cleanup();
  }
});

describe.each(providers)('metrics on %s', (provider) => {
  let ctx: TestContext;
  let projectId: string;
  let databaseId: string;
  beforeAll(async () => {
    ctx = await createTestContext(provider);
    projectId = (await ctx.services.projects.createProject({ name: 'p', kind: 'SQLITE' })).id;
    databaseId = (await ctx.services.databases.createDatabase({ projectId, name: 'd' })).id;
  });
  afterAll(async () => { await ctx.dispose(); });

  test('recordTraffic fills minute buckets and device totals; getMetrics aggregates', async () => {
    const { metrics, devices } = ctx.services;
    const a = siteId();
    const b = siteId();
    await devices.recordDeviceSeen(databaseId, { siteId: a, credentialKind: 'API_KEY' });
    const t0 = ctx.clock.now();
    await metrics.recordTraffic(databaseId, a, { uploadBytes: 100, downloadBytes: 1000 });
    await metrics.recordTraffic(databaseId, a, { uploadBytes: 50, downloadBytes: 0, at: new Date(t0 + 10_000) });
    await metrics.recordTraffic(databaseId, b, { uploadBytes: 1, downloadBytes: 2, at: new Date(t0 + 3_600_000) });
    const m = await metrics.getMetrics(databaseId, { from: new Date(t0 - 3_600_000), to: new Date(t0 + 7_200_000), bucket: 'HOUR' });
    expect(m).toMatchObject({ activeDevices: 2, uploadBytes: 151, downloadBytes: 1002, requests: 3 });
    expect(m.series).toHaveLength(3);
    expect(m.series.map((p) => p.uploadBytes)).toEqual([0, 150, 1]);
    expect(m.series[1]?.activeDevices).toBe(1);
    const dev = await devices.getDevice(databaseId, a);
    expect(Number(dev?.uploadBytes)).toBe(150);
    // The raw statements write each bucket's start exactly as Prisma does: its key finds the row.
    const key = (ms: number) => ({ databaseId_siteId_bucketStart: { databaseId, siteId: b, bucketStart: new Date(Math.floor((t0 + 3_600_000) / ms) * ms) } });
    expect((await ctx.deps.prisma.trafficBucket.findUnique({ where: key(60_000) }))?.requests).toBe(1);
    expect((await ctx.deps.prisma.trafficHour.findUnique({ where: key(3_600_000) }))?.requests).toBe(1);
    expect((await ctx.deps.prisma.trafficDay.findUnique({ where: key(86_400_000) }))?.uploadBytes).toBe(1n);
    await expect(metrics.getMetrics(databaseId, { from: new Date(0), to: new Date(t0), bucket: 'MINUTE' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });

    const usage = await metrics.usage(projectId, 'CURRENT');
    expect(usage).toMatchObject({ uploadBytes: 151, downloadBytes: 1002, activeDevices: 2, periodStart: new Date('2025-06-01T00:00:00Z') });
    expect((await metrics.usage(projectId, 'PREVIOUS')).uploadBytes).toBe(0);
  });

  test('getMetrics and usage, aggregated in the database, equal the sums of the buckets read one by one (unaligned windows, every bucket size)', async () => {
    const { metrics } = ctx.services;
    const db = (await ctx.services.databases.createDatabase({ projectId, name: 'agg' })).id;
    const sites = Array.from({ length: 5 }, () => siteId());
    const t0 = Math.floor(ctx.clock.now() / 86_400_000) * 86_400_000;
    let seed = 7;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 120; i++) {
      const at = new Date(t0 + rnd(3 * 86_400_000));
      await metrics.recordTraffic(db, sites[rnd(sites.length)] as string, { uploadBytes: 1 + rnd(1000), downloadBytes: rnd(50), at });
    }
    await metrics.recordRejections(db, [{ siteId: sites[0] as string, at: new Date(t0 + 90_000) }, { siteId: sites[1] as string, at: new Date(t0 + 4_000_000) }]);
    const reference = async (from: Date, to: Date, size: number) => {
      const rows = await ctx.deps.prisma.trafficBucket.findMany({ where: { databaseId: db, bucketStart: { gte: from, lt: to } } });
      const first = Math.floor(from.getTime() / size) * size;
      const count = Math.ceil((to.getTime() - first) / size);
      const points = Array.from({ length: count }, () => ({ uploadBytes: 0, downloadBytes: 0, requests: 0, rejectedChanges: 0, sites: new Set<string>() }));
      for (const r of rows) {
        const p = points[Math.floor((r.bucketStart.getTime() - first) / size)] as (typeof points)[number];
        p.uploadBytes += Number(r.uploadBytes);
        p.downloadBytes += Number(r.downloadBytes);
        p.requests += r.requests;
        p.rejectedChanges += r.rejectedChanges;
        p.sites.add(r.siteId);
      }
      return { activeDevices: new Set(rows.map((r) => r.siteId)).size, uploadBytes: rows.reduce((n, r) => n + Number(r.uploadBytes), 0), series: points.map(({ sites: s, ...p }) => ({ ...p, activeDevices: s.size })) };
    };
    const windows: Array<[number, number, 'MINUTE' | 'HOUR' | 'DAY', number]> = [
      [t0 + 37_123, t0 + 37_123 + 1000 * 60_000, 'MINUTE', 60_000],
      [t0 - 1234, t0 + 2 * 86_400_000 + 999, 'HOUR', 3_600_000],
      [t0 + 5 * 3_600_000 + 1, t0 + 3 * 86_400_000, 'DAY', 86_400_000],
      [t0 + 60_000, t0 + 120_000, 'HOUR', 3_600_000],
    ];
    for (const [f, t, bucket, size] of windows) {
      const m = await metrics.getMetrics(db, { from: new Date(f), to: new Date(t), bucket });
      const ref = await reference(new Date(f), new Date(t), size);
      expect({ activeDevices: m.activeDevices, uploadBytes: m.uploadBytes, series: m.series.map(({ start: _s, ...p }) => p) }).toEqual(ref);
      expect(m.series[0]?.start.getTime()).toBe(Math.floor(f / size) * size);
    }
    const all = await ctx.deps.prisma.trafficBucket.findMany({ where: { databaseId: db } });
    expect(all.length).toBeGreaterThan(50);
    const usage = await metrics.usage(projectId, 'CURRENT');
    const inPeriod = await ctx.deps.prisma.trafficBucket.findMany({ where: { database: { projectId }, bucketStart: { gte: usage.periodStart, lt: usage.periodEnd } } });
    const mine = inPeriod.filter((r) => r.databaseId === db);
    expect(usage.databases.find((d) => d.databaseId === db)).toEqual({
      databaseId: db, uploadBytes: mine.reduce((n, r) => n + Number(r.uploadBytes), 0), downloadBytes: mine.reduce((n, r) => n + Number(r.downloadBytes), 0),
      requests: mine.reduce((n, r) => n + r.requests, 0), activeDevices: new Set(mine.map((r) => r.siteId)).size,
    });
    expect(usage.requests).toBe(inPeriod.reduce((n, r) => n + r.requests, 0));
    expect(all.some((r) => r.rejectedChanges > 0)).toBe(true);
    // Every hour and day roll-up holds the sums of its minutes, and there is one for each.
    for (const [rollUp, ms] of [[ctx.deps.prisma.trafficHour, 3_600_000], [ctx.deps.prisma.trafficDay, 86_400_000]] as const) {
      const expected = new Map<string, number[]>();
      for (const r of all) {
        const key = `${r.siteId} ${Math.floor(r.bucketStart.getTime() / ms) * ms}`;
        const e = expected.get(key) ?? [0, 0, 0, 0];
        expected.set(key, [e[0]! + Number(r.uploadBytes), e[1]! + Number(r.downloadBytes), e[2]! + r.requests, e[3]! + r.rejectedChanges]);
      }
      const rows = await (rollUp as typeof ctx.deps.prisma.trafficHour).findMany({ where: { databaseId: db } });
      expect(new Map(rows.map((r) => [`${r.siteId} ${r.bucketStart.getTime()}`, [Number(r.uploadBytes), Number(r.downloadBytes), r.requests, r.rejectedChanges]]))).toEqual(expected);
    }
  });

  test('expireTraffic deletes minutes and hours past their retention; hour and day reads keep their sums', async () => {
    const { metrics } = ctx.services;
    const db = (await ctx.services.databases.createDatabase({ projectId, name: 'expiry' })).id;
    const site = siteId();
    const day = Math.floor(ctx.clock.now() / 86_400_000) * 86_400_000;
    // Traffic 100 days ago, 10 days ago and now (defaults: minutes 7 days, hours 90 days).
    const ats = [day - 100 * 86_400_000 + 3_600_000 + 5_000, day - 10 * 86_400_000 + 7_200_000 + 5_000, ctx.clock.now() - 1000];
    for (const at of ats) await metrics.recordTraffic(db, site, { uploadBytes: 10, downloadBytes: 1, at: new Date(at) });
    const read = () => Promise.all([
      metrics.getMetrics(db, { from: new Date(day - 101 * 86_400_000), to: new Date(day + 86_400_000), bucket: 'DAY' }),
      metrics.getMetrics(db, { from: new Date(day - 11 * 86_400_000), to: new Date(day - 9 * 86_400_000), bucket: 'HOUR' }),
      metrics.getMetrics(db, { from: new Date(day - 10 * 86_400_000), to: new Date(day - 9 * 86_400_000), bucket: 'MINUTE' }),
    ]);
    const [days, hours, minutes] = await read();
    expect([days.uploadBytes, hours.uploadBytes, minutes.uploadBytes]).toEqual([30, 10, 10]);
    const hourRow = (ms: number) => ctx.deps.prisma.trafficHour.count({ where: { databaseId: db, bucketStart: new Date(Math.floor(ms / 3_600_000) * 3_600_000) } });
    expect(await hourRow(ats[0]!)).toBe(1);

    expect(await metrics.expireTraffic()).toMatchObject({ minutes: expect.any(Number), hours: expect.any(Number) });
    const left = await ctx.deps.prisma.trafficBucket.findMany({ where: { databaseId: db } });
    expect(left.map((r) => r.bucketStart.getTime())).toEqual([Math.floor(ats[2]! / 60_000) * 60_000]);
    expect(await hourRow(ats[0]!)).toBe(0);
    expect(await hourRow(ats[1]!)).toBe(1);
    const [days2, hours2, minutes2] = await read();
    // Whole days and hours read the roll-ups: unchanged; the minutes of 10 days ago are gone.
    expect(days2.series).toEqual(days.series);
    expect(hours2.series).toEqual(hours.series);
    expect(minutes2.uploadBytes).toBe(0);
    // Nothing older is left to delete; the day roll-ups stay.
    expect(await metrics.expireTraffic()).toEqual({ minutes: 0, hours: 0 });
    expect(await ctx.deps.prisma.trafficDay.count({ where: { databaseId: db } })).toBe(3);
  });

  test('recordRejections counts refused changes per site and minute, without touching requests or bytes', async () => {
    const { metrics } = ctx.services;
    const db = (await ctx.services.databases.createDatabase({ projectId, name: 'rejections' })).id;
    const a = siteId();
    const b = siteId();
    const t0 = Date.parse('2025-06-15T12:00:10Z');
    await metrics.recordTraffic(db, a, { uploadBytes: 10, downloadBytes: 0, at: new Date(t0) });
    await metrics.recordRejections(db, [{ siteId: a, at: new Date(t0) }, { siteId: a, at: new Date(t0 + 5_000) }, { siteId: b.toUpperCase(), at: new Date(t0 + 60_000) }]);
    await metrics.recordRejections(db, [{ siteId: a, at: new Date(t0 + 1_000) }]);
    await metrics.recordRejections(db, []);
    const m = await metrics.getMetrics(db, { from: new Date(t0 - 10_000), to: new Date(t0 + 110_000), bucket: 'MINUTE' });
    expect(m).toMatchObject({ rejectedChanges: 4, requests: 1, uploadBytes: 10 });
    expect(m.series.map((p) => p.rejectedChanges)).toEqual([3, 1]);
    await expect(metrics.recordRejections(db, [{ siteId: 'nope' }])).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  test('subscribe: snapshot now, then throttled snapshots on change', async () => {
    ctx.clock.advance(2 * 3_600_000);
    const it = ctx.services.metrics.subscribe(databaseId, { bucket: 'HOUR' });
    const first = await it.next();
    expect(first.value?.requests).toBe(3);
    const pending = it.next();
    await ctx.services.metrics.recordTraffic(databaseId, siteId(), { uploadBytes: 5, downloadBytes: 5 });
    const second = await pending;
    expect(second.value?.requests).toBe(4);
    await it.return(undefined);
  });

  test('subscribers of one database and window share a snapshot taken after they learned of the change', async () => {
    const { metrics } = ctx.services;
    const snapshots = vi.spyOn(metrics, 'getMetrics');
    const a = metrics.subscribe(databaseId, { bucket: 'HOUR' });
    const b = metrics.subscribe(databaseId, { bucket: 'HOUR' });
    const other = metrics.subscribe(databaseId, { bucket: 'DAY' });
    try {
      // Both subscribed before the first snapshot started: they share it; another window has its own.
      const [a1, b1] = [await a.next(), await b.next()];
      await other.next();
      expect(b1.value).toBe(a1.value);
      expect(snapshots).toHaveBeenCalledTimes(2);
      const [a2, b2] = [a.next(), b.next()];
      await metrics.recordTraffic(databaseId, siteId(), { uploadBytes: 3, downloadBytes: 0 });
      const [av, bv] = [(await a2).value, (await b2).value];
      expect(av?.requests).toBe((a1.value?.requests ?? 0) + 1);
      expect(bv).toBe(av); // one read for both
      expect(snapshots.mock.calls.filter((c) => c[1]?.bucket === 'HOUR')).toHaveLength(2);
      // A subscriber that starts now does not get the earlier snapshot: it was taken before it started.
      const late = metrics.subscribe(databaseId, { bucket: 'HOUR' });
      expect((await late.next()).value).not.toBe(av);
      await late.return(undefined);
      expect(snapshots.mock.calls.filter((c) => c[1]?.bucket === 'HOUR')).toHaveLength(3);
    } finally {
      snapshots.mockRestore();
      await a.return(undefined);
      await b.return(undefined);
      await other.return(undefined);
    }
  });

  test('subscribe pushes on change only: notifications that change nothing send nothing', async () => {
    const { metrics, devices } = ctx.services;
    const site = siteId();
    await devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    const snapshots = vi.spyOn(metrics, 'getMetrics');
    const it = metrics.subscribe(databaseId, { bucket: 'HOUR' });
    const first = await it.next();
    const pending = it.next();
    // Two notifications with nothing new (the clock moved: from/to differ), and a device poll (no notification).
    ctx.clock.advance(1000);
    ctx.deps.pubsub.publish('metricsChanged', databaseId, { databaseId, at: new Date(ctx.clock.now()).toISOString() });
    ctx.deps.pubsub.publish('metricsChanged', databaseId, { databaseId, at: new Date(ctx.clock.now()).toISOString() });
    await devices.recordDeviceSeen(databaseId, { siteId: site, credentialKind: 'API_KEY' });
    // Both unchanged snapshots were taken (and not sent) before the traffic exists.
    await vi.waitFor(() => expect(snapshots).toHaveBeenCalledTimes(3));
    await Promise.all(snapshots.mock.results.map((r) => r.value as Promise<unknown>));
    snapshots.mockRestore();
    await metrics.recordTraffic(databaseId, site, { uploadBytes: 7, downloadBytes: 0 });
    // The next snapshot sent is the one with the traffic, not a copy of the first.
    const second = await pending;
    expect(second.value?.requests).toBe((first.value?.requests ?? 0) + 1);
    expect(second.value?.uploadBytes).toBe((first.value?.uploadBytes ?? 0) + 7);
    await it.return(undefined);
  });
});
