/**
 * Default retention of the traffic buckets (domains/metrics/traffic-sql.ts `expireTraffic`), in
 * days: the defaults of OFFSYNC_METRICS_MINUTE_RETENTION_DAYS and OFFSYNC_METRICS_HOUR_RETENTION_DAYS
 * (config.ts) and of a `ServiceDeps` without `trafficRetention`. Day buckets are kept.
 */
/** A MINUTE series spans at most 2,000 minutes (33 h): a week of minutes keeps every one exact. */
export const DEFAULT_MINUTE_RETENTION_DAYS = 7;
/** An HOUR series spans at most 2,000 hours (83 days). */
export const DEFAULT_HOUR_RETENTION_DAYS = 90;
