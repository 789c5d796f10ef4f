/** Small HTTP helpers of the sync routes: bounded bodies, replies, CORS, origin. */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyCors, applyPreflight, corsPolicy, corsPolicyOf, requestOriginOf } from '../../../http/cors.ts';
import type { CorsOrigins, CorsPolicy } from '../../../http/cors.ts';
import { SyncError } from '../sync-errors.ts';

export const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, x-cloudsync-version, x-cloudsync-capabilities, x-cloudsync-ticket';
export const CORS_ALLOW_METHODS = 'GET, POST, PUT, OPTIONS';

/**
 * CORS of the sync endpoints (http/cors.ts): default any origin (`*`) without credentials, so
 * browser devices with a bearer credential work from any page; an allowlist when configured.
 */
export function syncCorsPolicy(origins: CorsOrigins = '*'): CorsPolicy {
  return corsPolicy(origins, {
    allowMethods: CORS_ALLOW_METHODS,
    allowHeaders: CORS_ALLOW_HEADERS,
    exposeHeaders: 'x-cloudsync-ticket, x-cloudsync-ticket-expires-at',
    maxAgeSeconds: 600,
  });
}

const ANY_ORIGIN = syncCorsPolicy('*');

/** The policy the router bound to this response, else any origin (the handler used on its own). */
function policyOf(res: ServerResponse): CorsPolicy {
  return corsPolicyOf(res) ?? ANY_ORIGIN;
}

export function setCors(res: ServerResponse): void {
  applyCors(res, requestOriginOf(res), policyOf(res));
}

/** Answers a CORS preflight (no CORS headers for an origin outside the allowlist). */
export function sendPreflight(res: ServerResponse): void {
  applyPreflight(res, requestOriginOf(res), policyOf(res));
  res.setHeader('Content-Length', '0');
  res.writeHead(204).end();
}

/** Reads a request body of at most `limit` bytes; larger bodies are refused with 413 (the rest is discarded). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new SyncError('payload_too_large', `body larger than ${limit} bytes`));
  }
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        fail(new SyncError('payload_too_large', `body larger than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) ok(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => fail(e));
  });
}

/** Parses a JSON object body; anything else is `invalid_request`. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new SyncError('invalid_request', 'body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SyncError('invalid_request', 'body must be a JSON object');
  return v as Record<string, unknown>;
}

function finish(res: ServerResponse, status: number, body: Buffer | undefined, contentType: string | undefined, statusText?: string): void {
  setCors(res);
  res.setHeader('Cache-Control', 'no-store');
  if (contentType !== undefined) res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', String(body?.length ?? 0));
  if (statusText !== undefined) res.writeHead(status, statusText);
  else res.writeHead(status);
  res.end(body);
}

/** 2xx with an empty body: "nothing" / "OK" for every generation. */
export function sendEmpty(res: ServerResponse, status = 200): void {
  finish(res, status, undefined, undefined);
}

export function sendText(res: ServerResponse, text: string): void {
  finish(res, 200, Buffer.from(text, 'utf8'), 'text/plain; charset=utf-8');
}

export function sendJson(res: ServerResponse, value: unknown, status = 200): number {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  finish(res, status, body, 'application/json');
  return body.length;
}

/** Per process: no string of a reply can be mistaken for a payload's place (`jsonWithPayloads`). */
const PAYLOAD_MARK = `\u0000offsync-payload-${randomBytes(8).toString('hex')}-`;

/**
 * Stands in a value for the base64 text of `payloads[i]` in {@link sendJsonWithPayloads}.
 */
export function payloadPlace(i: number): string {
  return `${PAYLOAD_MARK}${i}\u0000`;
}

/**
 * The JSON text of `value` with each {@link payloadPlace}`(i)` string replaced by the base64 text
 * of `payloads[i]`, as bytes. JSON.stringify of a reply holding a page's base64 (megabytes) and
 * its UTF-8 copy cost ~6 ms a MB here; base64 needs no escaping, so the small rest is stringified
 * and each payload is encoded once and copied into the body (~1 ms a MB).
 */
export function jsonWithPayloads(value: unknown, payloads: readonly Uint8Array[]): Buffer {
  const json = JSON.stringify(value);
  const segments: Array<[text: string, encoding: 'utf8' | 'latin1']> = [];
  let at = 0;
  payloads.forEach((p, i) => {
    const place = JSON.stringify(payloadPlace(i));
    const found = json.indexOf(place, at);
    if (found < 0) throw new Error(`jsonWithPayloads: payload ${i} has no place in the value`);
    segments.push([json.slice(at, found), 'utf8'], [`"${Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('base64')}"`, 'latin1']);
    at = found + place.length;
  });
  segments.push([json.slice(at), 'utf8']);
  const body = Buffer.allocUnsafe(segments.reduce((n, [text, encoding]) => n + Buffer.byteLength(text, encoding), 0));
  let off = 0;
  for (const [text, encoding] of segments) off += body.write(text, off, encoding);
  return body;
}

/** {@link sendJson} of a value whose payloads stand at {@link payloadPlace}s; returns the body's length. */
export function sendJsonWithPayloads(res: ServerResponse, value: unknown, payloads: readonly Uint8Array[], status = 200): number {
  const body = jsonWithPayloads(value, payloads);
  finish(res, status, body, 'application/json');
  return body.length;
}

export function sendBytes(res: ServerResponse, bytes: Uint8Array): void {
  finish(res, 200, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'application/octet-stream');
}

/** JSON:API style error; the status text is the standard one (WASM clients show it as the SQL error). */
export function sendError(res: ServerResponse, err: SyncError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err.status === 413) res.setHeader('Connection', 'close');
  finish(res, err.status, Buffer.from(JSON.stringify(err.toBody()), 'utf8'), 'application/json');
}

/** `Authorization: Bearer <credential>` → credential ('' when empty), undefined when absent. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  const m = /^\s*Bearer(?:\s+(.*))?$/i.exec(h);
  return m === null ? undefined : (m[1] ?? '').trim();
}

/** The origin artifact URLs are built on: the configured public URL, else the request's Host. */
export function originOf(req: IncomingMessage, publicUrl: string | undefined): string {
  if (publicUrl !== undefined && publicUrl !== '') return publicUrl.replace(/\/+$/, '');
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  const host = req.headers.host ?? `${req.socket.localAddress ?? '127.0.0.1'}:${req.socket.localPort ?? 80}`;
  return `${encrypted ? 'https' : 'http'}://${host}`;
}
