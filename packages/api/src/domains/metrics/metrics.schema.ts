import { builder } from '../../builder.ts';
import { MetricsBucket } from './metrics.service.ts';
import type { MetricsPoint, MetricsSnapshot } from './metrics.service.ts';
import { UsagePeriod } from './period.ts';

const BucketEnum = builder.enumType('MetricsBucket', { values: Object.values(MetricsBucket) });
const UsagePeriodEnum = builder.enumType('UsagePeriod', { values: Object.values(UsagePeriod) });

const PointRef = builder.objectRef<MetricsPoint>('MetricsPoint').implement({
  fields: (t) => ({
    start: t.expose('start', { type: 'DateTime' }),
    uploadBytes: t.exposeFloat('uploadBytes'),
    downloadBytes: t.exposeFloat('downloadBytes'),
    requests: t.exposeInt('requests'),
    activeDevices: t.exposeInt('activeDevices'),
    rejectedChanges: t.exposeInt('rejectedChanges', { description: 'Changes refused on their own by the merge (see Database.rejections)' }),
  }),
});

const MetricsRef = builder.objectRef<MetricsSnapshot>('Metrics').implement({
  fields: (t) => ({
    databaseId: t.exposeID('databaseId'),
    from: t.expose('from', { type: 'DateTime' }),
    to: t.expose('to', { type: 'DateTime' }),
    bucket: t.field({ type: BucketEnum, resolve: (m) => m.bucket }),
    activeDevices: t.exposeInt('activeDevices'),
    uploadBytes: t.exposeFloat('uploadBytes'),
    downloadBytes: t.exposeFloat('downloadBytes'),
    requests: t.exposeInt('requests'),
    rejectedChanges: t.exposeInt('rejectedChanges', { description: 'Changes refused on their own by the merge (see Database.rejections)' }),
    series: t.field({ type: [PointRef], resolve: (m) => m.series }),
  }),
});

type DatabaseUsage = { databaseId: string; uploadBytes: number; downloadBytes: number; requests: number; activeDevices: number };
const DatabaseUsageRef = builder.objectRef<DatabaseUsage>('DatabaseUsage').implement({
  fields: (t) => ({
    databaseId: t.exposeID('databaseId'),
    uploadBytes: t.exposeFloat('uploadBytes'),
    downloadBytes: t.exposeFloat('downloadBytes'),
    requests: t.exposeInt('requests'),
    activeDevices: t.exposeInt('activeDevices'),
  }),
});

type Usage = DatabaseUsage & { projectId: string; period: UsagePeriod; periodStart: Date; periodEnd: Date; databases: DatabaseUsage[] };
const UsageRef = builder.objectRef<Omit<Usage, 'databaseId'>>('Usage').implement({
  fields: (t) => ({
    projectId: t.exposeID('projectId'),
    period: t.field({ type: UsagePeriodEnum, resolve: (u) => u.period }),
    periodStart: t.expose('periodStart', { type: 'DateTime' }),
    periodEnd: t.expose('periodEnd', { type: 'DateTime' }),
    uploadBytes: t.exposeFloat('uploadBytes'),
    downloadBytes: t.exposeFloat('downloadBytes'),
    requests: t.exposeInt('requests'),
    activeDevices: t.exposeInt('activeDevices'),
    databases: t.field({ type: [DatabaseUsageRef], resolve: (u) => u.databases }),
  }),
});

builder.prismaObjectFields('Database', (t) => ({
  metrics: t.field({
    type: MetricsRef,
    description: 'Traffic between from (default: to − 24 h) and to (default: now). Minute buckets are kept 7 days (OFFSYNC_METRICS_MINUTE_RETENTION_DAYS), hour buckets 90 (OFFSYNC_METRICS_HOUR_RETENTION_DAYS), day buckets while the database exists: the ends of a range older than a retention count from the next whole hour or day',
    args: { from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }), bucket: t.arg({ type: BucketEnum, defaultValue: 'HOUR' }) },
    resolve: (d, a, ctx) => ctx.services.metrics.getMetrics(d.id, { from: a.from ?? null, to: a.to ?? null, bucket: a.bucket ?? null }),
  }),
}));

builder.queryFields((t) => ({
  usage: t.field({
    type: UsageRef,
    description: 'Billing-period summary (period start day: BILLING_PERIOD_START_DAY, default 1)',
    args: { projectId: t.arg.id({ required: true }), period: t.arg({ type: UsagePeriodEnum, defaultValue: 'CURRENT' }) },
    resolve: (_r, a, ctx) => ctx.services.metrics.usage(String(a.projectId), a.period ?? 'CURRENT'),
  }),
}));

builder.subscriptionFields((t) => ({
  metrics: t.field({
    type: MetricsRef,
    description: 'A fresh snapshot (last 24 h) now and whenever counters change, throttled',
    args: { databaseId: t.arg.id({ required: true }), bucket: t.arg({ type: BucketEnum, defaultValue: 'HOUR' }) },
    subscribe: async (_r, a, ctx) => {
      await ctx.services.databases.getDatabase(String(a.databaseId));
      return ctx.services.metrics.subscribe(String(a.databaseId), { bucket: a.bucket ?? null });
    },
    resolve: (m) => m,
  }),
}));
