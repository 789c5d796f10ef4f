/** Environment of logs, metrics and graceful shutdown (docs/CONTROL-PLANE.md "Operating"); read by main.ts only. */
import { ConfigError } from '../config.ts';
import { isLogLevel, LOG_LEVELS } from './logger.ts';
import type { LogFormat, LogLevel } from './logger.ts';

export interface ObservabilityConfig {
  /** LOG_LEVEL: trace, debug, info (default), warn, error, fatal or silent. */
  logLevel: LogLevel;
  /** LOG_FORMAT: json, pretty, or auto (default: pretty when standard error is a terminal). */
  logFormat: LogFormat;
  /** OFFSYNC_METRICS_TOKEN: bearer token required by `GET /metrics`; unset = open. */
  metricsToken: string | undefined;
  /** OFFSYNC_DRAIN_DELAY_MS: on SIGTERM, how long `/readyz` answers 503 before the server stops accepting (default 0). */
  drainDelayMs: number;
  /** OFFSYNC_SHUTDOWN_GRACE_MS: how long requests in flight may finish after that (default 5000). */
  shutdownGraceMs: number;
}

function ms(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 600_000) throw new ConfigError(`${name} must be an integer between 0 and 600000 (milliseconds)`);
  return n;
}

export function loadObservabilityConfig(env: Record<string, string | undefined>, stderrIsTTY: boolean): ObservabilityConfig {
  const level = (env['LOG_LEVEL'] || 'info').toLowerCase();
  if (!isLogLevel(level)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const format = (env['LOG_FORMAT'] || 'auto').toLowerCase();
  if (format !== 'json' && format !== 'pretty' && format !== 'auto') throw new ConfigError('LOG_FORMAT must be json, pretty or auto');
  const token = env['OFFSYNC_METRICS_TOKEN'];
  if (token !== undefined && token !== '' && (token.length < 16 || /\s/.test(token))) {
    throw new ConfigError('OFFSYNC_METRICS_TOKEN must be at least 16 characters without spaces');
  }
  return {
    logLevel: level,
    logFormat: format === 'auto' ? (stderrIsTTY ? 'pretty' : 'json') : format,
    metricsToken: token === undefined || token === '' ? undefined : token,
    drainDelayMs: ms(env, 'OFFSYNC_DRAIN_DELAY_MS', 0),
    shutdownGraceMs: ms(env, 'OFFSYNC_SHUTDOWN_GRACE_MS', 5000),
  };
}
