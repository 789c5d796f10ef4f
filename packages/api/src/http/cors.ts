/**
 * CORS of every HTTP surface (issue 9, point 4; docs/CONTROL-PLANE.md "Security model").
 *
 * - An allowlist of origins (`OFFSYNC_CORS_ORIGINS`, `*` = any). An allowed origin is echoed
 *   (`Vary: Origin`); any other gets no `Access-Control-Allow-Origin`, so browsers refuse it.
 * - Never `Access-Control-Allow-Credentials`: every credential travels in the `Authorization`
 *   header (or graphql-ws `connectionParams`), never in a cookie, so no caller needs it.
 * - `/graphql` defaults to same-origin only (GraphiQL is served from the same origin); the sync
 *   endpoints default to `*`, because browser devices (WASM clients) call from any origin with a
 *   bearer credential.
 *
 * The router chooses the policy of a response ({@link bindCorsPolicy}); the sync endpoints' reply
 * helpers apply it when they answer (domains/sync/http/io.ts).
 */
import type { ServerResponse } from 'node:http';

export type CorsOrigins = '*' | readonly string[];

export interface CorsPolicy {
  origins: '*' | ReadonlySet<string>;
  allowMethods: string;
  allowHeaders: string;
  exposeHeaders?: string;
  maxAgeSeconds: number;
}

export function corsPolicy(origins: CorsOrigins, rest: Omit<CorsPolicy, 'origins'>): CorsPolicy {
  return { ...rest, origins: origins === '*' ? '*' : new Set(origins) };
}

/** `https://App.example.com:443/` → `https://app.example.com`; undefined for anything but an http(s) origin. */
export function normaliseOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') return undefined;
  return url.origin;
}

/** `*` or a comma list of origins; throws (with the offending entry) on anything else. */
export function parseCorsOrigins(raw: string): CorsOrigins {
  const entries = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.includes('*')) return '*';
  return entries.map((entry) => {
    const origin = normaliseOrigin(entry);
    if (origin === undefined) throw new Error(`not an http(s) origin: ${entry}`);
    return origin;
  });
}

/** The value of `Access-Control-Allow-Origin` for this request origin, or undefined (refused). */
export function allowedOrigin(policy: CorsPolicy, origin: string | undefined): string | undefined {
  if (policy.origins === '*') return '*';
  return origin !== undefined && policy.origins.has(origin) ? origin : undefined;
}

function addVary(res: ServerResponse, value: string): void {
  const current = res.getHeader('Vary');
  const list = (Array.isArray(current) ? current.join(',') : String(current ?? '')).split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (!list.some((v) => v.toLowerCase() === value.toLowerCase())) res.setHeader('Vary', [...list, value].join(', '));
}

/** Sets the CORS headers of an actual (non-preflight) response; returns whether the origin is allowed. */
export function applyCors(res: ServerResponse, origin: string | undefined, policy: CorsPolicy): boolean {
  if (policy.origins !== '*') addVary(res, 'Origin');
  const allow = allowedOrigin(policy, origin);
  if (allow === undefined) return false;
  res.setHeader('Access-Control-Allow-Origin', allow);
  if (policy.exposeHeaders !== undefined) res.setHeader('Access-Control-Expose-Headers', policy.exposeHeaders);
  return true;
}

/** Sets the headers of a preflight answer (the caller writes the 204). */
export function applyPreflight(res: ServerResponse, origin: string | undefined, policy: CorsPolicy): boolean {
  if (!applyCors(res, origin, policy)) return false;
  res.setHeader('Access-Control-Allow-Methods', policy.allowMethods);
  res.setHeader('Access-Control-Allow-Headers', policy.allowHeaders);
  res.setHeader('Access-Control-Max-Age', String(policy.maxAgeSeconds));
  return true;
}

const bound = new WeakMap<ServerResponse, CorsPolicy>();

/** The router records which policy answers this response (read by the sync reply helpers). */
export function bindCorsPolicy(res: ServerResponse, policy: CorsPolicy): void {
  bound.set(res, policy);
}

export function corsPolicyOf(res: ServerResponse): CorsPolicy | undefined {
  return bound.get(res);
}

/** The request's `Origin` header of a response (Node keeps the request on `res.req`). */
export function requestOriginOf(res: ServerResponse): string | undefined {
  const origin = (res as { req?: { headers?: Record<string, string | string[] | undefined> } }).req?.headers?.['origin'];
  return typeof origin === 'string' ? origin : undefined;
}
