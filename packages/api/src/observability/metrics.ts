/**
 * Prometheus metrics of one server (docs/CONTROL-PLANE.md "Operating"), one prom-client
 * {@link Registry} per app instance (tests run several apps in one process), served at
 * `GET /metrics` — behind `Authorization: Bearer <OFFSYNC_METRICS_TOKEN>` when a token is set.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `offsync_http_requests_total` | counter | route, method, status, generation |
 * | `offsync_http_request_duration_seconds` | histogram | route |
 * | `offsync_sync_bytes_total` | counter | direction (`up`, `down`) |
 * | `offsync_sync_changes_total` | counter | direction (`up`: received in uploads, `down`: encoded into downloads) |
 * | `offsync_sync_merge_duration_seconds` | histogram | — |
 * | `offsync_sync_download_duration_seconds` | histogram | — |
 * | `offsync_sync_rejected_changes_total` | counter | code (rejection log: RLS, key type, constraint) |
 * | `offsync_sync_refusals_total` | counter | code (refused sync requests, stable sync error codes) |
 * | `offsync_active_devices` | gauge | — (distinct database/site pairs with a sync request in the last 5 min, this process) |
 * | `offsync_live_subscribers` | gauge | — (open live sessions: `changes` subscriptions and device-credential sockets) |
 * | `offsync_pending_artifact_bytes` | gauge | — (uploaded, not yet applied) |
 *
 * plus prom-client's default process metrics (CPU, memory, handles, GC, `nodejs_eventloop_lag_*`),
 * switched on at the first scrape so that apps nobody scrapes pay nothing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { requestTarget } from '../http/request-target.ts';
import type { HttpHandler } from '../http/router.ts';

export const METRICS_PATH = '/metrics';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsOptions {
  /** Bearer token required to read `/metrics` (OFFSYNC_METRICS_TOKEN); undefined = open. */
  token?: string | undefined;
  /** prom-client's default process metrics, from the first scrape on (default true). */
  processMetrics?: boolean;
  /** Window of `offsync_active_devices` (default 5 min). */
  activeDeviceWindowMs?: number;
  now?: () => number;
}

/** Gauges read at scrape time from the rest of the server. */
export interface MetricsSources {
  liveSubscribers?: () => number;
  pendingArtifactBytes?: () => number;
}

export interface HttpSample {
  route: string;
  method: string;
  status: number;
  generation: string | undefined;
  seconds: number;
}

export interface Metrics {
  readonly registry: Registry;
  /** `GET /metrics` (false for other paths). */
  readonly handler: HttpHandler;
  setSources(sources: MetricsSources): void;
  observeRequest(sample: HttpSample): void;
  syncBytes(direction: 'up' | 'down', bytes: number): void;
  syncChanges(direction: 'up' | 'down', changes: number): void;
  mergeSeconds(seconds: number): void;
  downloadSeconds(seconds: number): void;
  rejectedChanges(code: string, n: number): void;
  refusal(code: string): void;
  deviceSeen(databaseId: string, siteId: string): void;
}

/** Most distinct devices remembered for `offsync_active_devices` (oldest forgotten first). */
const MAX_TRACKED_DEVICES = 100_000;
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const now = options.now ?? Date.now;
  const windowMs = options.activeDeviceWindowMs ?? 5 * 60_000;
  let sources: MetricsSources = {};
  const devices = new Map<string, number>();

  const requests = new Counter({ name: 'offsync_http_requests_total', help: 'HTTP requests by route, method, status and client generation', labelNames: ['route', 'method', 'status', 'generation'], registers: [registry] });
  const requestSeconds = new Histogram({ name: 'offsync_http_request_duration_seconds', help: 'HTTP request duration by route', labelNames: ['route'], buckets: DURATION_BUCKETS, registers: [registry] });
  const bytes = new Counter({ name: 'offsync_sync_bytes_total', help: 'Sync payload bytes transferred (up: uploaded by devices, down: downloaded)', labelNames: ['direction'], registers: [registry] });
  const changes = new Counter({ name: 'offsync_sync_changes_total', help: 'Sync changes (up: received in uploads, down: encoded into downloads)', labelNames: ['direction'], registers: [registry] });
  const merge = new Histogram({ name: 'offsync_sync_merge_duration_seconds', help: 'Duration of merging one upload into its central database', buckets: DURATION_BUCKETS, registers: [registry] });
  const download = new Histogram({ name: 'offsync_sync_download_duration_seconds', help: 'Duration of reading and encoding one download from the change feed', buckets: DURATION_BUCKETS, registers: [registry] });
  const rejected = new Counter({ name: 'offsync_sync_rejected_changes_total', help: 'Changes rejected on their own by a merge (rejection log), by code', labelNames: ['code'], registers: [registry] });
  const refusals = new Counter({ name: 'offsync_sync_refusals_total', help: 'Refused sync requests by stable error code', labelNames: ['code'], registers: [registry] });
  for (const d of ['up', 'down']) {
    bytes.inc({ direction: d }, 0);
    changes.inc({ direction: d }, 0);
  }

  const pruneDevices = (): void => {
    const cutoff = now() - windowMs;
    // Insertion order = last-seen order (deviceSeen re-inserts): stop at the first recent one.
    for (const [key, at] of devices) {
      if (at >= cutoff && devices.size <= MAX_TRACKED_DEVICES) break;
      devices.delete(key);
    }
  };
  new Gauge({
    name: 'offsync_active_devices',
    help: 'Distinct devices (database, site) with a sync request in the last 5 minutes, in this process',
    registers: [registry],
    collect() {
      pruneDevices();
      this.set(devices.size);
    },
  });
  new Gauge({
    name: 'offsync_live_subscribers',
    help: 'Open live sync sessions (changes subscriptions and device-credential sockets)',
    registers: [registry],
    collect() {
      this.set(sources.liveSubscribers?.() ?? 0);
    },
  });
  new Gauge({
    name: 'offsync_pending_artifact_bytes',
    help: 'Uploaded payload bytes waiting for their apply call',
    registers: [registry],
    collect() {
      this.set(sources.pendingArtifactBytes?.() ?? 0);
    },
  });

  let processMetrics = false;
  const expected = options.token === undefined || options.token === '' ? undefined : digest(options.token);

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    if (requestTarget(req.url)?.pathname !== METRICS_PATH) return false;
    req.resume();
    const reply = (status: number, type: string, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const error = (status: number, code: string, title: string, extra: Record<string, string> = {}): void =>
      reply(status, 'application/json; charset=utf-8', JSON.stringify({ errors: [{ status: String(status), code, title }] }), extra);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      error(405, 'method_not_allowed', 'Method not allowed', { allow: 'GET, HEAD' });
      return true;
    }
    if (expected !== undefined) {
      const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (m === null || !timingSafeEqual(digest(m[1] ?? ''), expected)) {
        error(401, 'unauthorized', 'Unauthorized', { 'www-authenticate': 'Bearer realm="metrics"' });
        return true;
      }
    }
    if (!processMetrics && options.processMetrics !== false) {
      processMetrics = true;
      collectDefaultMetrics({ register: registry });
    }
    reply(200, registry.contentType, await registry.metrics());
    return true;
  };

  return {
    registry,
    handler,
    setSources(s) {
      sources = s;
    },
    observeRequest(s) {
      const method = METHODS.has(s.method) ? s.method : 'OTHER';
      requests.inc({ route: s.route, method, status: String(s.status), generation: s.generation ?? 'none' });
      requestSeconds.observe({ route: s.route }, s.seconds);
    },
    syncBytes(direction, n) {
      if (n > 0) bytes.inc({ direction }, n);
    },
    syncChanges(direction, n) {
      if (n > 0) changes.inc({ direction }, n);
    },
    mergeSeconds(seconds) {
      merge.observe(seconds);
    },
    downloadSeconds(seconds) {
      download.observe(seconds);
    },
    rejectedChanges(code, n) {
      if (n > 0) rejected.inc({ code }, n);
    },
    refusal(code) {
      refusals.inc({ code });
    },
    deviceSeen(databaseId, siteId) {
      const key = `${databaseId}/${siteId}`;
      devices.delete(key);
      devices.set(key, now());
      if (devices.size > MAX_TRACKED_DEVICES) pruneDevices();
    },
  };
}
