/** Traffic counters: per-minute buckets per device + per-device totals; metrics, usage and live snapshots. */
import type { ServiceDeps } from '../../deps.ts';
import { ApiError } from '../../errors.ts';
import { validateSiteId } from '../devices/devices.service.ts';
import { billingPeriod } from './period.ts';
import type { UsagePeriod } from './period.ts';
import { throttledSnapshots } from './throttle.ts';
import { dialectOf } from '../../db/prisma.ts';
import { createTrafficBuffer } from './traffic-buffer.ts';
import { DEFAULT_HOUR_RETENTION_DAYS, DEFAULT_MINUTE_RETENTION_DAYS } from './retention.ts';
import { bucketIncrements, expireTraffic, pointSums, rangeSums } from './traffic-sql.ts';
import type { TrafficBuffer } from './traffic-buffer.ts';

export const MetricsBucket = { MINUTE: 'MINUTE', HOUR: 'HOUR', DAY: 'DAY' } as const;
export type MetricsBucket = (typeof MetricsBucket)[keyof typeof MetricsBucket];
const bucketMs: Record<MetricsBucket, number> = { MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000 };
const MAX_POINTS = 2000;
/** Live-subscription snapshots kept for sharing (one per database and window subscribed). */
const MAX_SHARED_SNAPSHOTS = 1000;

export interface TrafficSample { uploadBytes: number; downloadBytes: number; at?: Date }
/** One change refused on its own by the merge (an entry of the rejection log). */
export interface RejectionSample { siteId: string; at?: Date }
export interface MetricsPoint { start: Date; uploadBytes: number; downloadBytes: number; requests: number; activeDevices: number; rejectedChanges: number }
export interface MetricsSnapshot {
  databaseId: string; from: Date; to: Date; bucket: MetricsBucket;
  activeDevices: number; uploadBytes: number; downloadBytes: number; requests: number; rejectedChanges: number; series: MetricsPoint[];
}

export function createMetricsService(deps: ServiceDeps, buffer: TrafficBuffer = createTrafficBuffer(deps)) {
  const { prisma, pubsub } = deps;

  /** The last snapshot taken per (database, bucket, window) for the live subscriptions, and a counter ordering them. */
  const recentSnapshots = new Map<string, { seq: number; value: Promise<MetricsSnapshot> }>();
  let snapshotsStarted = 0;

  const service = {
    /**
     * Called by the data plane after each request: counts it (and its bytes) in the minute bucket
     * and the device totals. Written behind (traffic-buffer.ts): summed in memory and flushed in
     * one transaction within ~1 s, before any read of this node, and on close; `metricsChanged` and
     * the device's SYNCED (bytes moved) are published once per flush, after it committed.
     */
    async recordTraffic(databaseId: string, siteId: string, sample: TrafficSample): Promise<void> {
      const site = validateSiteId(siteId);
      const up = BigInt(Math.max(0, Math.trunc(sample.uploadBytes)));
      const down = BigInt(Math.max(0, Math.trunc(sample.downloadBytes)));
      buffer.addTraffic(databaseId, site, up, down, (sample.at ?? new Date(deps.clock.now())).getTime());
    },

    /** Writes the counters still in memory (reads here do it themselves; tests and shutdown call it). */
    flush(): Promise<void> {
      return buffer.flush();
    },

    /**
     * Called by the data plane after a merge that refused changes committed: counts them in the
     * minute buckets of their sites (`rejectedChanges`; requests and bytes unchanged).
     */
    async recordRejections(databaseId: string, samples: readonly RejectionSample[]): Promise<void> {
      if (samples.length === 0) return;
      const counts = new Map<string, { siteId: string; bucketStart: Date; n: number }>();
      let latest = 0;
      for (const s of samples) {
        const site = validateSiteId(s.siteId);
        const ms = (s.at ?? new Date(deps.clock.now())).getTime();
        latest = Math.max(latest, ms);
        const start = Math.floor(ms / 60_000) * 60_000;
        const key = `${site}/${start}`;
        const c = counts.get(key);
        if (c === undefined) counts.set(key, { siteId: site, bucketStart: new Date(start), n: 1 });
        else c.n++;
      }
      // The same multi-row increments as the traffic flush (traffic-sql.ts).
      const rows = [...counts.values()].map(({ siteId, bucketStart, n }) => ({ databaseId, siteId, bucketStart, uploadBytes: 0n, downloadBytes: 0n, requests: 0, rejectedChanges: n }));
      await prisma.$transaction(bucketIncrements(prisma, dialectOf(prisma), rows));
      pubsub.publish('metricsChanged', databaseId, { databaseId, at: new Date(latest).toISOString() });
    },

    /**
     * Deletes minute buckets older than their retention and hour buckets older than theirs (the
     * day roll-ups keep their sums): a read whose ends lie before a retention counts those ends
     * only from the next whole hour or day. The app runs it on a timer; several nodes may.
     */
    async expireTraffic(): Promise<{ minutes: number; hours: number }> {
      const now = deps.clock.now();
      const keep = deps.trafficRetention ?? { minuteMs: DEFAULT_MINUTE_RETENTION_DAYS * 86_400_000, hourMs: DEFAULT_HOUR_RETENTION_DAYS * 86_400_000 };
      const deleted = await expireTraffic(prisma, dialectOf(prisma), { minute: new Date(now - keep.minuteMs), hour: new Date(now - keep.hourMs) });
      return { minutes: deleted.minute, hours: deleted.hour };
    },

    /**
     * Runs {@link expireTraffic} a minute after the call (or after `intervalMs` when shorter: a
     * node restarted more often than `intervalMs` still expires), then every `intervalMs`, one run
     * at a time, on unref'd timers; returns the function that stops it.
     */
    scheduleExpiry(intervalMs: number, onError: (e: unknown) => void): () => void {
      let running = false;
      const run = (): void => {
        if (running) return;
        running = true;
        void service.expireTraffic().catch(onError).finally(() => { running = false; });
      };
      let interval: NodeJS.Timeout | undefined;
      const first = setTimeout(() => {
        run();
        interval = setInterval(run, intervalMs);
        interval.unref();
      }, Math.min(intervalMs, 60_000));
      first.unref();
      return () => {
        clearTimeout(first);
        clearInterval(interval);
      };
    },

    async getMetrics(databaseId: string, args: { from?: Date | null; to?: Date | null; bucket?: MetricsBucket | null } = {}): Promise<MetricsSnapshot> {
      const bucket = args.bucket ?? 'HOUR';
      const size = bucketMs[bucket];
      const to = args.to ?? new Date(deps.clock.now());
      const from = args.from ?? new Date(to.getTime() - 86_400_000);
      if (from.getTime() >= to.getTime()) throw new ApiError('VALIDATION_FAILED', 'from: must be before to', { details: { field: 'from' } });
      const first = Math.floor(from.getTime() / size) * size;
      const count = Math.ceil((to.getTime() - first) / size);
      if (count > MAX_POINTS) throw new ApiError('VALIDATION_FAILED', `bucket: range needs ${count} points, at most ${MAX_POINTS}; use a larger bucket`, { details: { field: 'bucket' } });
      await buffer.settle(); // what this node counted is in the answer
      // Aggregated in the database over the coarsest whole buckets (traffic-sql.ts): each point's sums and distinct sites.
      const points = Array.from({ length: count }, (_, i) => ({ start: new Date(first + i * size), uploadBytes: 0, downloadBytes: 0, requests: 0, rejectedChanges: 0, activeDevices: 0 }));
      const bounds = points.map((p, i) => ({ from: i === 0 ? from : p.start, to: i === count - 1 ? to : new Date(p.start.getTime() + size) }));
      const dialect = dialectOf(prisma);
      for (const s of await pointSums(prisma, dialect, databaseId, bounds)) {
        const p = points[s.point];
        if (p === undefined) continue;
        Object.assign(p, { uploadBytes: s.uploadBytes, downloadBytes: s.downloadBytes, requests: s.requests, rejectedChanges: s.rejectedChanges, activeDevices: s.sites });
      }
      // The totals are the series' own sums (a flush between the two statements cannot make them
      // disagree); only the distinct sites of the whole range need the database again.
      const total = (k: 'uploadBytes' | 'downloadBytes' | 'requests' | 'rejectedChanges'): number => points.reduce((n, p) => n + p[k], 0);
      const activeDevices = (await rangeSums(prisma, dialect, [databaseId], from, to)).get(databaseId)?.sites ?? 0;
      return {
        databaseId, from, to, bucket, activeDevices, uploadBytes: total('uploadBytes'), downloadBytes: total('downloadBytes'),
        requests: total('requests'), rejectedChanges: total('rejectedChanges'), series: points,
      };
    },

    /** Billing-period summary for a project (all its databases). */
    async usage(projectId: string, period: UsagePeriod = 'CURRENT') {
      const project = await prisma.project.findUnique({ where: { id: projectId }, include: { databases: { select: { id: true } } } });
      if (project === null) throw new ApiError('NOT_FOUND', `Project ${projectId} not found`, { details: { projectId } });
      const { start, end } = billingPeriod(deps.clock.now(), deps.billingPeriodStartDay, period);
      const ids = project.databases.map((d) => d.id);
      await buffer.settle();
      const sums = await rangeSums(prisma, dialectOf(prisma), ids, start, end);
      const per = new Map(ids.map((id) => {
        const d = sums.get(id);
        return [id, { databaseId: id, uploadBytes: d?.uploadBytes ?? 0, downloadBytes: d?.downloadBytes ?? 0, requests: d?.requests ?? 0, activeDevices: d?.sites ?? 0 }];
      }));
      const databases = [...per.values()];
      const sum = (k: 'uploadBytes' | 'downloadBytes' | 'requests' | 'activeDevices') => databases.reduce((a, d) => a + d[k], 0);
      return {
        projectId, period, periodStart: start, periodEnd: end,
        uploadBytes: sum('uploadBytes'), downloadBytes: sum('downloadBytes'), requests: sum('requests'), activeDevices: sum('activeDevices'), databases,
      };
    },

    /**
     * Live snapshots for the `metrics` subscription (last 24 h by hour unless told otherwise), each
     * one different from the last. Subscribers of the same database and window share a snapshot
     * that was taken after they learned of the change (several dashboards: one read per change).
     */
    subscribe(databaseId: string, args: { bucket?: MetricsBucket | null; windowMs?: number } = {}): AsyncGenerator<MetricsSnapshot> {
      const windowMs = args.windowMs ?? 86_400_000;
      const bucket = args.bucket ?? 'HOUR';
      const key = `${databaseId} ${bucket} ${windowMs}`;
      /** Snapshots started when this subscriber last learned of a change: only a later one shows it. */
      let seen = snapshotsStarted;
      const snapshot = (): Promise<MetricsSnapshot> => {
        const last = recentSnapshots.get(key);
        if (last !== undefined && last.seq > seen) return last.value;
        const to = new Date(deps.clock.now() + 1);
        const entry = { seq: ++snapshotsStarted, value: service.getMetrics(databaseId, { from: new Date(to.getTime() - windowMs), to, bucket }) };
        recentSnapshots.delete(key);
        recentSnapshots.set(key, entry);
        if (recentSnapshots.size > MAX_SHARED_SNAPSHOTS) recentSnapshots.delete(recentSnapshots.keys().next().value ?? key);
        entry.value.catch(() => {
          if (recentSnapshots.get(key) === entry) recentSnapshots.delete(key);
        });
        return entry.value;
      };
      const changes = pubsub.subscribe('metricsChanged', databaseId);
      const events = (async function* () {
        for await (const e of changes) {
          seen = snapshotsStarted;
          yield e;
        }
      })();
      // Pushed on change only: `from`/`to` move with the clock, the counters and series are what changed.
      const keyOf = (m: MetricsSnapshot): string => JSON.stringify({ ...m, from: undefined, to: undefined });
      return throttledSnapshots(events, snapshot, deps.metricsThrottleMs, Date.now, keyOf);
    },
  };
  return service;
}
export type MetricsService = ReturnType<typeof createMetricsService>;
