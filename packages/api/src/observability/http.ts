/**
 * One log line and one metrics sample per HTTP request (docs/CONTROL-PLANE.md "Operating").
 *
 * Every request gets an id: a valid incoming `X-Request-Id` (1–128 of `[A-Za-z0-9._:@/+=-]`) is
 * kept, otherwise a UUID is made; it is echoed in the `X-Request-Id` response header and logged
 * as `requestId`. When the response closes, one line is written with method, redacted path,
 * route, status, duration and the facts the handlers added (request-context.ts): database, site,
 * generation, credential kind, refusal `code`, changes and bytes up/down, rejected changes.
 *
 * Levels: a refused sync request (4xx, or a G3 apply refused inside its 200 SyncStatus) is
 * `warn` with its stable code; 5xx `warn` too (the fault's cause is its one `error` entry,
 * logging/log-errors.ts, with the same `requestId`); probes
 * (`/healthz`, `/readyz`, `/metrics`) `debug`; everything else `info`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../deps.ts';
import { parseSyncRoute } from '../domains/sync/http/routes.ts';
import { requestTarget } from '../http/request-target.ts';
import { redactPath } from '../logging/redact.ts';
import { HEALTHZ_PATH, READYZ_PATH } from './health.ts';
import { METRICS_PATH } from './metrics.ts';
import type { Metrics } from './metrics.ts';
import { requestIdOf, runInRequest } from './request-context.ts';
import type { RequestContext, RequestFacts } from './request-context.ts';

export const REQUEST_ID_HEADER = 'X-Request-Id';

export type HttpObserver = (req: IncomingMessage, res: ServerResponse, next: () => Promise<void>) => Promise<void>;

const PROBES = new Set(['healthz', 'readyz', 'metrics']);

/** Route label and the sync facts readable from the URL alone. */
export function routeOf(req: IncomingMessage, graphqlPath: string): { route: string; facts: RequestFacts } {
  const target = requestTarget(req.url);
  const path = target?.pathname ?? '';
  if (path === graphqlPath || path.startsWith(`${graphqlPath}/`)) return { route: 'graphql', facts: {} };
  if (path === HEALTHZ_PATH) return { route: 'healthz', facts: {} };
  if (path === READYZ_PATH) return { route: 'readyz', facts: {} };
  if (path === METRICS_PATH) return { route: 'metrics', facts: {} };
  const sync = target === undefined ? undefined : parseSyncRoute(path, target.query);
  if (sync === undefined) return { route: 'other', facts: {} };
  switch (sync.kind) {
    case 'api': {
      const version = req.headers['x-cloudsync-version'];
      const generation = sync.family === 'G2b' && typeof version === 'string' && version !== '' ? 'G3' : sync.family;
      return { route: `sync_${sync.action}`, facts: { database: sync.databaseId.slice(0, 100), site: sync.site.slice(0, 64).toLowerCase(), generation } };
    }
    case 'pushTokens':
      return { route: 'sync_push_tokens', facts: { database: sync.databaseId.slice(0, 100) } };
    case 'artifact':
      return { route: 'sync_artifact', facts: {} };
    default:
      return { route: 'sync_unknown', facts: {} };
  }
}

const FACT_KEYS = ['database', 'site', 'generation', 'auth', 'code', 'changesUp', 'changesDown', 'bytesUp', 'bytesDown', 'rejected', 'schemaHash', 'expectedSchemaHash', 'tables'] as const;

/** `logger`: where the request lines go (the access log); undefined = ids and metrics only. */
export function createHttpObserver(options: { logger: Logger | undefined; metrics: Metrics; graphqlPath: string }): HttpObserver {
  const { logger, metrics } = options;
  const finish = (ctx: RequestContext, res: ServerResponse): void => {
    const seconds = Number(process.hrtime.bigint() - ctx.startedAt) / 1e9;
    const status = res.statusCode;
    const isSync = ctx.route.startsWith('sync_');
    metrics.observeRequest({ route: ctx.route, method: ctx.method, status, generation: isSync ? ctx.generation : undefined, seconds });
    if (isSync && ctx.code !== undefined) metrics.refusal(ctx.code);
    const fields: Record<string, unknown> = { requestId: ctx.id, method: ctx.method, path: ctx.path, route: ctx.route, status, durationMs: Math.round(seconds * 10_000) / 10 };
    for (const k of FACT_KEYS) if (ctx[k] !== undefined) fields[k] = ctx[k];
    if (logger === undefined) return;
    if (!res.writableFinished) fields['aborted'] = true;
    const message = isSync ? `sync: ${ctx.route.slice('sync_'.length)}` : 'http: request';
    // A fault's cause is its one `error` entry (logging/log-errors.ts); its access line is a warn.
    if (status >= 500) logger.warn(message, fields);
    else if (isSync && (status >= 400 || ctx.code !== undefined)) logger.warn(message, fields);
    else if (PROBES.has(ctx.route) && status !== 401) logger.debug?.(message, fields);
    else logger.info(message, fields);
  };

  return (req, res, next) => {
    const id = requestIdOf(req.headers['x-request-id']);
    res.setHeader(REQUEST_ID_HEADER, id);
    const { route, facts } = routeOf(req, options.graphqlPath);
    const ctx: RequestContext = {
      id,
      method: req.method ?? 'GET',
      path: redactPath(requestTarget(req.url)?.pathname ?? ''),
      route,
      startedAt: process.hrtime.bigint(),
      ...facts,
    };
    res.once('close', () => {
      try {
        finish(ctx, res);
      } catch {
        // Logging never breaks a response.
      }
    });
    return runInRequest(ctx, next);
  };
}
