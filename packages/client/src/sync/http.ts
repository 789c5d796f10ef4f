/**
 * HTTP exchange types shared by the asynchronous transport (`fetch`) and the blocking one used
 * by the SQL functions (blocking-http.ts). Errors follow the SQLite Sync rules (docs/PROTOCOL.md
 * §P1): a status ≥ 400 is an error whose message is the response body when there is
 * one (libcurl clients show it verbatim), otherwise the status text.
 */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Performs one request; throws {@link SyncNetworkError} when no HTTP answer arrives. */
export type HttpFetch = (req: HttpRequest) => Promise<HttpResponse>;
/** The blocking variant: returns only when the answer (or a failure) is there. */
export type BlockingHttpFetch = (req: HttpRequest) => HttpResponse;

/** Base class of every sync failure; `retryable` tells the retry loop whether to try again. */
export class SyncError extends Error {
  readonly retryable: boolean;
  readonly code: string;
  constructor(code: string, message: string, retryable: boolean) {
    super(message);
    this.name = 'SyncError';
    this.code = code;
    this.retryable = retryable;
  }
}

/** No HTTP answer at all: connection refused, reset, DNS, timeout. Always retryable. */
export class SyncNetworkError extends SyncError {
  constructor(message: string) {
    super('network', message, true);
    this.name = 'SyncNetworkError';
  }
}

/** The server answered with status ≥ 400 (or an artifact call with a non-2xx status). */
export class SyncHttpError extends SyncError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(`http_${status}`, message, status >= 500 || status === 408 || status === 429);
    this.name = 'SyncHttpError';
    this.status = status;
  }
}

/** The server's answer does not have a shape the protocol allows. */
export class SyncProtocolError extends SyncError {
  constructor(message: string) {
    super('protocol', message, false);
    this.name = 'SyncProtocolError';
  }
}

const decoder = new TextDecoder();

export function bodyText(res: HttpResponse): string {
  return decoder.decode(res.body);
}

/** Throws the protocol's error for a failed API call (`okBelow` 400) or artifact call (`okBelow` 300). */
export function ensureOk(res: HttpResponse, okBelow = 400): HttpResponse {
  if (res.status >= 200 && res.status < okBelow) return res;
  const text = bodyText(res).trim();
  throw new SyncHttpError(res.status, text !== '' ? text : res.statusText || `HTTP ${res.status}`);
}

/** The default asynchronous fetch, with a per-request timeout. */
export function createFetchHttp(opts: { timeoutMs?: number; fetch?: typeof fetch } = {}): HttpFetch {
  const f = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return async (req) => {
    const init: RequestInit = { method: req.method, headers: req.headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) };
    if (req.body !== undefined) init.body = new Uint8Array(req.body);
    let res: Response;
    let body: Uint8Array;
    try {
      res = await f(req.url, init);
      body = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new SyncNetworkError(describeFetchError(e));
    }
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
    return { status: res.status, statusText: res.statusText, headers, body };
  };
}

export function describeFetchError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause: unknown = e.cause;
  if (cause instanceof Error) {
    const code = Reflect.get(cause, 'code');
    return `${e.message} (${typeof code === 'string' ? code : cause.message})`;
  }
  return e.message;
}
