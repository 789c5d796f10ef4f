/** The metrics domain: traffic, active devices and rejections per database, bucketed, and usage periods. */
export { MetricsBucket, createMetricsService } from './metrics.service.ts';
export type { MetricsPoint, MetricsService, MetricsSnapshot, RejectionSample, TrafficSample } from './metrics.service.ts';
export { UsagePeriod, billingPeriod } from './period.ts';
