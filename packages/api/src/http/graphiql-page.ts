/**
 * The GraphiQL page of `/graphql` (docs/CONTROL-PLANE.md "GraphiQL"). `@graphql-yoga/render-graphiql`
 * inlines the whole GraphiQL bundle (~9 MB of HTML, no CDN), and Yoga renders it for every
 * request, uncompressed and uncached. The page does not depend on the request, so it is rendered
 * once (on first use), gzipped once, and served with a strong ETag and `Cache-Control: no-cache`
 * (browsers keep it and revalidate: a reload costs a 304). Requests Yoga would answer with
 * GraphiQL (GET with `Accept: text/html` on the endpoint) are answered here; everything else
 * goes to Yoga unchanged.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { requestTarget } from './request-target.ts';

interface Page { body: Buffer; gzip: Buffer; etag: string }

const gzipAsync = promisify(gzip);

/** True when the request asks for GraphiQL on `path`. */
function wantsPage(req: IncomingMessage, path: string): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const accept = req.headers.accept;
  if (typeof accept !== 'string' || !accept.includes('text/html')) return false;
  const p = requestTarget(req.url)?.pathname;
  return p === path || p === `${path}/`;
}

function acceptsGzip(req: IncomingMessage): boolean {
  const v = req.headers['accept-encoding'];
  if (typeof v !== 'string') return false;
  return v.split(',').some((part) => {
    const [name, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const q = params.find((x) => x.startsWith('q='));
    return (name === 'gzip' || name === '*') && (q === undefined || Number(q.slice(2)) > 0);
  });
}

/** Returns a handler that answers GraphiQL requests (true) and leaves the rest (false). */
export function createGraphiqlPage(path: string, render: () => string | Promise<string>): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  let page: Promise<Page> | null = null;
  const load = (): Promise<Page> =>
    (page ??= (async () => {
      const body = Buffer.from(await render(), 'utf8');
      return { body, gzip: await gzipAsync(body, { level: 6 }), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    })().catch((e: unknown) => {
      page = null;
      throw e;
    }));
  return async (req, res) => {
    if (!wantsPage(req, path)) return false;
    req.resume();
    const p = await load();
    const headers: Record<string, string> = { etag: p.etag, 'cache-control': 'no-cache', vary: 'Accept, Accept-Encoding', 'x-content-type-options': 'nosniff' };
    const match = req.headers['if-none-match'];
    if (typeof match === 'string' && match.split(',').some((t) => t.trim().replace(/^W\//, '') === p.etag)) {
      res.writeHead(304, headers).end();
      return true;
    }
    const gz = acceptsGzip(req);
    const body = gz ? p.gzip : p.body;
    res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8', 'content-length': String(body.length), ...(gz ? { 'content-encoding': 'gzip' } : {}) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
