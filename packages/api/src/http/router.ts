/** The composable HTTP router: `/graphql` → Yoga, then each handler in order, else a 404 JSON body. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../deps.ts';

/** Returns true when it handled the request (wrote the response). */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function createRouter(options: {
  graphqlPath: string;
  graphql: (req: IncomingMessage, res: ServerResponse) => unknown;
  handlers: readonly HttpHandler[];
  logger: Logger;
}) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    try {
      if (path === options.graphqlPath || path.startsWith(`${options.graphqlPath}/`)) {
        await options.graphql(req, res);
        return;
      }
      for (const handler of options.handlers) {
        if (await handler(req, res)) return;
      }
      sendJson(res, 404, { errors: [{ status: '404', code: 'not_found', title: 'Not found' }] });
    } catch (e) {
      options.logger.error('http handler failed', { path, error: e instanceof Error ? e.message : String(e) });
      if (!res.headersSent) sendJson(res, 500, { errors: [{ status: '500', code: 'internal', title: 'Internal server error' }] });
      else res.end();
    }
  };
}
