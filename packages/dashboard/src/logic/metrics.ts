/** Metrics periods and the series → chart columns transform. */
import type { MetricsBucket, MetricsFieldsFragment } from '@offsync/client';

export interface Period {
  id: string;
  label: string;
  ms: number;
  /** Buckets that make sense for it (the first is the default). */
  buckets: readonly MetricsBucket[];
}

export const PERIODS: readonly Period[] = [
  { id: '1h', label: 'Last hour', ms: 3_600_000, buckets: ['MINUTE'] },
  { id: '24h', label: 'Last 24 hours', ms: 86_400_000, buckets: ['HOUR', 'MINUTE'] },
  { id: '7d', label: 'Last 7 days', ms: 7 * 86_400_000, buckets: ['DAY', 'HOUR'] },
  { id: '30d', label: 'Last 30 days', ms: 30 * 86_400_000, buckets: ['DAY'] },
];

export const BUCKET_LABEL: Record<MetricsBucket, string> = { MINUTE: 'Minute', HOUR: 'Hour', DAY: 'Day' };

/** The live `metrics` subscription always covers the last 24 hours; other periods re-query on each snapshot. */
export function periodUsesSnapshot(period: Period): boolean {
  return period.id === '24h';
}

export type SeriesKey = 'activeDevices' | 'uploadBytes' | 'downloadBytes' | 'requests' | 'rejectedChanges';

/** uPlot columns: x in seconds, then one y column. */
export function chartColumns(metrics: Pick<MetricsFieldsFragment, 'series'>, key: SeriesKey): [number[], number[]] {
  const xs: number[] = [];
  const ys: number[] = [];
  for (const p of metrics.series) {
    xs.push(Math.floor(Date.parse(p.start) / 1000));
    ys.push(p[key]);
  }
  return [xs, ys];
}
