/** The composable HTTP router: `/graphql` → Yoga, then each handler in order, else a 404 JSON body. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../deps.ts';
import { describeError } from '../logging/log-errors.ts';
import { redactPath } from '../logging/redact.ts';
import { applyCors, applyPreflight, bindCorsPolicy } from './cors.ts';
import { requestTarget } from './request-target.ts';
import type { CorsPolicy } from './cors.ts';

/** Returns true when it handled the request (wrote the response). */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export interface RouterCors {
  /** `/graphql` (Yoga's own CORS is off; the router answers preflights and sets the headers). */
  graphql: CorsPolicy;
  /** Every other handler (the sync endpoints apply it in their reply helpers). */
  others: CorsPolicy;
}

export function createRouter(options: {
  graphqlPath: string;
  graphql: (req: IncomingMessage, res: ServerResponse) => unknown;
  handlers: readonly HttpHandler[];
  logger: Logger;
  /** Default: `/graphql` same-origin only, other handlers any origin (no credentials either way). */
  cors?: RouterCors;
  /** Wraps every request: request id, one log line, metrics (observability/http.ts). */
  observe?: (req: IncomingMessage, res: ServerResponse, next: () => Promise<void>) => Promise<void>;
}) {
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = requestTarget(req.url)?.pathname ?? ''; // never throws (`GET //` used to reject outside the try: an unhandled rejection)
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    try {
      if (path === options.graphqlPath || path.startsWith(`${options.graphqlPath}/`)) {
        const policy = options.cors?.graphql;
        if (req.method === 'OPTIONS') {
          req.resume();
          if (policy !== undefined) applyPreflight(res, origin, policy);
          res.writeHead(204, { 'content-length': '0' }).end();
          return;
        }
        if (policy !== undefined) applyCors(res, origin, policy);
        await options.graphql(req, res);
        return;
      }
      if (options.cors !== undefined) bindCorsPolicy(res, options.cors.others);
      for (const handler of options.handlers) {
        if (await handler(req, res)) return;
      }
      sendJson(res, 404, { errors: [{ status: '404', code: 'not_found', title: 'Not found' }] });
    } catch (e) {
      // A server fault: one entry with its cause (name, message, code, stack), path redacted.
      options.logger.error('http: request failed', { method: req.method, path: redactPath(path), error: describeError(e) });
      if (!res.headersSent) sendJson(res, 500, { errors: [{ status: '500', code: 'internal', title: 'Internal server error' }] });
      else res.end();
    }
  };
  const observe = options.observe;
  return observe === undefined ? route : (req: IncomingMessage, res: ServerResponse): Promise<void> => observe(req, res, () => route(req, res));
}
