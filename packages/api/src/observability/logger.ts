/**
 * The production {@link Logger}: pino, one JSON object per line (`level`, `time`, `msg`, fields),
 * level from LOG_LEVEL, every message and field redacted first (logging/redact.ts: URL
 * credentials, `secret=…`/`Bearer …` pairs; fields whose name says secret — `authorization`,
 * `password`, `secret`, `token`, `apiKey`, … — are replaced by `[redacted]`). On a terminal a
 * compact human line is printed instead (`12:00:01.234 WARN  sync: apply status=401 …`), no
 * pino-pretty needed. docs/CONTROL-PLANE.md "Operating".
 */
import { pino } from 'pino';
import type { Logger } from '../deps.ts';
import { describeError } from '../logging/log-errors.ts';
import { REDACTED, redactMessage } from '../logging/redact.ts';
import { currentRequest } from './request-context.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'json' | 'pretty';

export interface LogDestination {
  write(line: string): unknown;
}

export interface LoggerOptions {
  /** Lowest level written (default `info`). */
  level?: LogLevel;
  /** `json` (one object per line) or `pretty` (compact human line); default `json`. */
  format?: LogFormat;
  /** Where lines go (default: standard error, synchronously, so nothing is lost at exit). */
  destination?: LogDestination;
  /** ANSI colours in the pretty format (default: when standard error is a TTY). */
  color?: boolean;
}

/** The server logger: the {@link Logger} interface plus `debug` and the level in force. */
export interface ServerLogger extends Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  readonly level: LogLevel;
}

/** Field names whose values are never logged. */
const SECRET_FIELD = /authorization|cookie|passw(or)?d|secret|token|api[-_]?key|admin[-_]?key|private[-_]?key|^jwt$|^bearer$/i;
/** Keys pino writes itself; a field of that name is renamed `field_<name>`. */
const RESERVED = new Set(['level', 'time', 'msg', 'pid', 'hostname']);
const MAX_DEPTH = 6;
const MAX_STRING = 8000;

/** A value safe to log: secret-named fields replaced, strings redacted, errors described, bigints as strings. */
export function redactFields(value: unknown, depth = 0): unknown {
  if (value === null || value === undefined || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value === 'string') return redactMessage(value, MAX_STRING);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return describeError(value);
  if (value instanceof Date) return value.toISOString();
  if (depth >= MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => redactFields(v, depth + 1));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined) continue;
      const key = depth === 0 && RESERVED.has(k) ? `field_${k}` : k;
      out[key] = SECRET_FIELD.test(k) && v !== null && typeof v !== 'boolean' ? REDACTED : redactFields(v, depth + 1);
    }
    return out;
  }
  return REDACTED;
}

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

const COLORS: Record<string, string> = { trace: '90', debug: '90', info: '32', warn: '33', error: '31', fatal: '35' };
const SKIPPED = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

/** One pino JSON line → `HH:MM:SS.mmm LEVEL msg key=value …`. */
export function prettyLine(json: string, color = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const level = typeof o['level'] === 'string' ? o['level'] : 'info';
  const time = typeof o['time'] === 'string' ? o['time'].slice(11, 23) : '';
  const label = level.toUpperCase().padEnd(5);
  const fields = Object.entries(o)
    .filter(([k]) => !SKIPPED.has(k))
    .map(([k, v]) => `${k}=${prettyValue(v)}`)
    .join(' ');
  const head = color ? `\x1b[${COLORS[level] ?? '0'}m${label}\x1b[0m` : label;
  return `${time} ${head} ${String(o['msg'] ?? '')}${fields === '' ? '' : ` ${fields}`}`;
}

export function createLogger(options: LoggerOptions = {}): ServerLogger {
  const level = options.level ?? 'info';
  const target: LogDestination = options.destination ?? pino.destination({ dest: 2, sync: true });
  const color = options.color ?? process.stderr.isTTY === true;
  const stream: LogDestination = options.format === 'pretty' ? { write: (line: string) => target.write(`${prettyLine(line, color)}\n`) } : target;
  const p = pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream as pino.DestinationStream,
  );
  const at = (method: 'debug' | 'info' | 'warn' | 'error') => (message: string, fields?: Record<string, unknown>) => {
    if (!p.isLevelEnabled(method)) return;
    const msg = redactMessage(message);
    // Every line written while a request is handled carries its id (request-context.ts).
    const requestId = currentRequest()?.id;
    const all = requestId === undefined || fields?.['requestId'] !== undefined ? fields : { requestId, ...fields };
    if (all === undefined) p[method](msg);
    else p[method](redactFields(all) as Record<string, unknown>, msg);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), level };
}
