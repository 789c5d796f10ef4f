/** What services and resolvers receive: everything with side effects is injected here. */
import type { SecretBox } from './crypto.ts';
import type { PrismaClient, ControlPlaneProvider } from './db/prisma.ts';
import type { ApiPubSub } from './pubsub.ts';

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

/**
 * Where the server logs. Production: observability/logger.ts (pino JSON lines, redacted, level
 * from LOG_LEVEL); tests inject capturing loggers. `debug` is optional (probes, quiet streams).
 */
export interface Logger {
  debug?(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export interface TrafficRetention { minuteMs: number; hourMs: number; intervalMs?: number }

export interface ServiceDeps {
  prisma: PrismaClient;
  provider: ControlPlaneProvider;
  pubsub: ApiPubSub;
  secretBox: SecretBox;
  clock: Clock;
  logger: Logger;
  /** Root of per-database SQLite files (`<dataDir>/databases/<id>.sqlite`). */
  dataDir: string;
  /** Public base URL of this server (used in client snippets). */
  publicUrl: string;
  /** Day of month (1–28) on which a billing period starts. */
  billingPeriodStartDay: number;
  /** Minimum interval between two `metrics` subscription snapshots. */
  metricsThrottleMs: number;
  /**
   * Traffic counters and throttled `lastSyncAt` writes wait at most this long in memory before one
   * transaction writes them (default 1000 ms; domains/metrics/traffic-buffer.ts).
   */
  trafficFlushMs?: number;
  /** A device seen again with nothing changed gets its `lastSyncAt` written at once only this long after the last write (default 30 s; domains/devices/devices.service.ts). */
  deviceSeenWriteIntervalMs?: number;
  /**
   * How long the traffic buckets of each size are kept (domains/metrics/traffic-sql.ts): minutes
   * `minuteMs` (default 7 days), hours `hourMs` (default 90 days), days while the database exists;
   * with `intervalMs` the app deletes older ones on an unref'd timer (env OFFSYNC_METRICS_*).
   */
  trafficRetention?: TrafficRetention;
  /** `PRAGMA synchronous` of central databases (default FULL; env OFFSYNC_SYNCHRONOUS). */
  centralSynchronous?: 'FULL' | 'NORMAL';
}
