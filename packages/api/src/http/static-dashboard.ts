/**
 * Serves the dashboard's built assets (packages/dashboard/dist) at `/` (docs/ARCHITECTURE.md,
 * "The dashboard"). GET/HEAD only; content types by extension; gzip for text assets when the
 * client accepts it (compressed once, kept in memory: the build is a few hundred KB); hashed
 * files under `/assets/` are immutable for a year, `index.html` is revalidated (ETag) on every
 * load; unknown paths that ask for HTML get `index.html` (the SPA routes), anything else falls
 * through to the next handler. Paths are resolved inside the root only.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpHandler } from './router.ts';
import { requestTarget } from './request-target.ts';

/** packages/dashboard/dist, next to this package in the workspace. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/dist/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt', '.webmanifest']);

/**
 * The page may load its own scripts and styles and talk to its own origin (HTTP and graphql-ws);
 * nothing else. uPlot sets styles through the CSSOM, which `style-src 'self'` allows.
 */
export const DASHBOARD_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset { body: Buffer; gzip: Buffer | null; etag: string; type: string; mtimeMs: number; size: number }

export interface StaticDashboardOptions {
  /** Directory of the built assets (default {@link DEFAULT_DASHBOARD_DIR}). */
  dir?: string;
  /** Paths owned by other handlers that must never get the SPA fallback (default: /graphql, /v1/, /v2/). */
  reservedPrefixes?: readonly string[];
}

function accepts(req: IncomingMessage, header: 'accept' | 'accept-encoding', value: string): boolean {
  const raw = req.headers[header];
  return typeof raw === 'string' && raw.toLowerCase().split(',').some((part) => {
    const [token, ...params] = part.trim().split(';');
    return token === value && !params.some((p) => /^\s*q=0(\.0*)?\s*$/.test(p));
  });
}

export function createStaticDashboardHandler(options: StaticDashboardOptions = {}): HttpHandler {
  const root = normalize(options.dir ?? DEFAULT_DASHBOARD_DIR).replace(/[\\/]+$/, '');
  const reserved = options.reservedPrefixes ?? ['/graphql', '/v1/', '/v2/'];
  const cache = new Map<string, Asset>();

  /** Reads (and caches until the file changes) one asset; null when it is not a file inside root. */
  const load = (relative: string): Asset | null => {
    const file = normalize(join(root, relative));
    if (file !== root && !file.startsWith(root + sep)) return null;
    let stat;
    try {
      stat = statSync(file);
    } catch {
      return null;
    }
    if (!stat.isFile()) return null;
    const hit = cache.get(file);
    if (hit !== undefined && hit.mtimeMs === stat.mtimeMs && hit.size === stat.size) return hit;
    const body = readFileSync(file);
    const ext = extname(file).toLowerCase();
    const gz = COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body, { level: 9 }) : null;
    const asset: Asset = {
      body,
      gzip: gz !== null && gz.length < body.length ? gz : null,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      type: TYPES[ext] ?? 'application/octet-stream',
      mtimeMs: stat.mtimeMs,
      size: stat.size,
    };
    cache.set(file, asset);
    return asset;
  };

  const send = (req: IncomingMessage, res: ServerResponse, asset: Asset, cacheControl: string, html: boolean): void => {
    const headers: Record<string, string> = {
      'content-type': asset.type,
      'cache-control': cacheControl,
      etag: asset.etag,
      'x-content-type-options': 'nosniff',
      vary: 'Accept-Encoding',
    };
    if (html) {
      headers['content-security-policy'] = DASHBOARD_CSP;
      headers['referrer-policy'] = 'no-referrer';
      headers['x-frame-options'] = 'DENY';
    }
    const match = req.headers['if-none-match'];
    if (typeof match === 'string' && match.split(',').some((t) => t.trim().replace(/^W\//, '') === asset.etag)) {
      res.writeHead(304, headers).end();
      return;
    }
    const body = asset.gzip !== null && accepts(req, 'accept-encoding', 'gzip') ? asset.gzip : asset.body;
    if (body === asset.gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const pathname = requestTarget(req.url)?.pathname;
    if (pathname === undefined || reserved.some((p) => pathname === p || pathname.startsWith(p.endsWith('/') ? p : `${p}/`))) return false;
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return false;
    }
    if (decoded.includes('\0') || decoded.split('/').includes('..')) return false;
    if (decoded !== '/' && decoded !== '/index.html') {
      const asset = load(decoded);
      if (asset !== null) {
        const immutable = decoded.startsWith('/assets/');
        send(req, res, asset, immutable ? 'public, max-age=31536000, immutable' : 'no-cache', asset.type.startsWith('text/html'));
        return true;
      }
      // A file-looking path that does not exist, or a caller that does not want HTML: not ours.
      if (extname(decoded) !== '' || !accepts(req, 'accept', 'text/html')) return false;
    }
    const index = load('/index.html');
    if (index === null) {
      const text = 'The OffSync dashboard is not built. Run `npm run build -w @offsync/dashboard` (npm start does it), then reload. The API is at /graphql.\n';
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
      return true;
    }
    send(req, res, index, 'no-cache', true);
    return true;
  };
}
