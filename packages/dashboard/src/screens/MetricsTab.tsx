/** Metrics: active devices, upload and download bytes over time; period and bucket choice; live (`metrics` subscription). */
import { useMemo, useState } from 'react';
import type { MetricsBucket, MetricsFieldsFragment } from '@offsync/client';
import { formatBytes, formatDateTime } from '../format.ts';
import { useApi, useSubscription } from '../hooks.ts';
import { BUCKET_LABEL, PERIODS, chartColumns, periodUsesSnapshot } from '../logic/metrics.ts';
import type { SeriesKey } from '../logic/metrics.ts';
import { Card, ErrorBox, Spinner } from '../ui/components.tsx';
import { TimeChart } from '../ui/TimeChart.tsx';
import { LiveBadge } from './DevicesTab.tsx';

const CHARTS: readonly { key: SeriesKey; title: string; color: string; total: (m: MetricsFieldsFragment) => string; format: (v: number) => string }[] = [
  { key: 'activeDevices', title: 'Active devices', color: '#2563eb', total: (m) => String(m.activeDevices), format: (v) => String(Math.round(v)) },
  { key: 'uploadBytes', title: 'Upload', color: '#16a34a', total: (m) => formatBytes(m.uploadBytes), format: formatBytes },
  { key: 'downloadBytes', title: 'Download', color: '#9333ea', total: (m) => formatBytes(m.downloadBytes), format: formatBytes },
];

export function MetricsTab({ databaseId }: { databaseId: string }) {
  const api = useApi();
  const [periodId, setPeriodId] = useState('24h');
  const period = PERIODS.find((p) => p.id === periodId) ?? PERIODS[1]!;
  const [bucketChoice, setBucket] = useState<MetricsBucket>(period.buckets[0]!);
  const bucket = period.buckets.includes(bucketChoice) ? bucketChoice : period.buckets[0]!;
  const [metrics, setMetrics] = useState<MetricsFieldsFragment | null>(null);
  const [queryError, setQueryError] = useState<unknown>(null);

  // The subscription sends the last 24 h now and whenever counters change; other periods re-query then.
  const live = useSubscription(() => api.liveMetrics({ databaseId, bucket }), (r) => {
    if (periodUsesSnapshot(period)) {
      setMetrics(r.metrics);
      return;
    }
    const to = new Date();
    api.databaseMetrics({ databaseId, bucket, from: new Date(to.getTime() - period.ms).toISOString(), to: to.toISOString() })
      .then((q) => { setMetrics(q.database.metrics); setQueryError(null); }, setQueryError);
  }, [api, databaseId, bucket, period.id]);

  const columns = useMemo(() => (metrics === null ? null : Object.fromEntries(CHARTS.map((c) => [c.key, chartColumns(metrics, c.key)])) as Record<SeriesKey, [number[], number[]]>), [metrics]);

  return (
    <div className="stack">
      <Card title="Metrics" actions={<LiveBadge status={live.status} />}>
        <div className="metrics-controls">
          <div className="field">
            <label htmlFor="metrics-period">Period</label>
            <select id="metrics-period" value={period.id} onChange={(e) => { setPeriodId(e.target.value); setMetrics(null); }}>
              {PERIODS.map((p) => <option key={p.id} value={p.id}>{p.label}</option>)}
            </select>
          </div>
          <div className="field">
            <label htmlFor="metrics-bucket">Bucket</label>
            <select id="metrics-bucket" value={bucket} onChange={(e) => { setBucket(e.target.value as MetricsBucket); setMetrics(null); }}>
              {period.buckets.map((b) => <option key={b} value={b}>{BUCKET_LABEL[b]}</option>)}
            </select>
          </div>
          {metrics && <p className="muted">{formatDateTime(metrics.from)} – {formatDateTime(metrics.to)} · {metrics.requests} requests · {metrics.rejectedChanges} rejected changes</p>}
        </div>
        <ErrorBox error={live.error ?? queryError} />
      </Card>
      {metrics === null || columns === null ? <Spinner label="Waiting for metrics…" /> : (
        <div className="charts">
          {CHARTS.map((c) => (
            <figure key={c.key} className="card chart-card" aria-labelledby={`chart-${c.key}`}>
              <figcaption id={`chart-${c.key}`}>
                <span>{c.title}</span>
                <strong data-testid={`metric-${c.key}`}>{c.total(metrics)}</strong>
              </figcaption>
              <TimeChart title={c.title} data={columns[c.key]} color={c.color} format={c.format} integer={c.key === 'activeDevices'} />
            </figure>
          ))}
        </div>
      )}
    </div>
  );
}
