/**
 * A synchronous `XMLHttpRequest` for Node, just enough for Emscripten Fetch in synchronous mode
 * (docs/PROTOCOL.md §P7). Requests are executed by a `fetch` in a worker thread while the
 * calling thread blocks in `Atomics.wait`; see fetch-worker.ts for the handshake.
 *
 * Members touched by the Emscripten glue (`fetchXHR` in sqlite3-node.mjs): `withCredentials`,
 * `open(method, url, async, user, password)`, `timeout` (async only), `responseType`,
 * `overrideMimeType`, `setRequestHeader`, `send`, `onload`/`onerror`/`ontimeout`/`onprogress`/
 * `onreadystatechange`, `readyState`, `status`, `statusText`, `response`, `responseURL`, `abort`,
 * and `getResponseHeader` (lazy file loading only). All of them are implemented here.
 */
import { receiveMessageOnPort } from 'node:worker_threads';
import {
  startFetchWorker,
  type FetchWorker,
  type FetchWorkerReply,
  type FetchWorkerRequest,
} from './fetch-worker.ts';

/** One request made through the polyfill, recorded for inspection by tests. */
export interface XhrLogEntry {
  readonly method: string;
  readonly url: string;
  /** Request headers as set by the caller (names as given). */
  readonly headers: Readonly<Record<string, string>>;
  readonly bodyLength: number;
  /** HTTP status, or 0 on network error / timeout. */
  readonly status: number;
  readonly responseLength: number;
  readonly durationMs: number;
  readonly error?: string;
}

/** The event object handed to the `on*` callbacks. */
export interface XhrEvent {
  readonly type: string;
  readonly target: SyncXMLHttpRequest;
  readonly loaded: number;
  readonly total: number;
  readonly lengthComputable: boolean;
}

type Handler = ((ev: XhrEvent) => void) | null;

const DEFAULT_TIMEOUT_MS = 30_000;
const state = {
  worker: undefined as FetchWorker | undefined,
  nextId: 0,
  log: [] as XhrLogEntry[],
  installed: false,
  previous: undefined as PropertyDescriptor | undefined,
  timeoutMs: DEFAULT_TIMEOUT_MS,
};

function isReply(value: unknown): value is FetchWorkerReply {
  return typeof value === 'object' && value !== null && 'id' in value && 'ok' in value;
}

function toArrayBuffer(body: unknown): ArrayBuffer | null {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') return new TextEncoder().encode(body).slice().buffer;
  if (body instanceof ArrayBuffer) return body.slice(0);
  if (ArrayBuffer.isView(body)) {
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength).slice().buffer;
  }
  throw new TypeError('SyncXMLHttpRequest: unsupported body type');
}

/** Synchronous-capable XMLHttpRequest. Asynchronous requests use the main thread's `fetch`. */
export class SyncXMLHttpRequest {
  static readonly UNSENT = 0;
  static readonly OPENED = 1;
  static readonly HEADERS_RECEIVED = 2;
  static readonly LOADING = 3;
  static readonly DONE = 4;

  readyState = 0;
  status = 0;
  statusText = '';
  responseURL = '';
  responseType = '';
  timeout = 0;
  withCredentials = false;
  onload: Handler = null;
  onerror: Handler = null;
  ontimeout: Handler = null;
  onabort: Handler = null;
  onprogress: Handler = null;
  onloadend: Handler = null;
  onreadystatechange: Handler = null;

  #method = 'GET';
  #url = '';
  #async = true;
  #headers: Array<[string, string]> = [];
  #responseHeaders: ReadonlyArray<readonly [string, string]> = [];
  #body: ArrayBuffer | null = null;
  #aborted = false;
  #mime: string | undefined;

  get response(): ArrayBuffer | string | null {
    if (this.readyState !== 4) return this.responseType === 'arraybuffer' ? null : '';
    if (this.responseType === 'arraybuffer') return this.#body;
    return this.responseText;
  }

  get responseText(): string {
    return this.#body === null ? '' : new TextDecoder().decode(this.#body);
  }

  /** The MIME type given to `overrideMimeType`, if any (kept for inspection only). */
  get overriddenMimeType(): string | undefined {
    return this.#mime;
  }

  open(method: string, url: string, async = true, user?: string | null, password?: string | null): void {
    this.#method = method.toUpperCase();
    this.#url = url;
    this.#async = async;
    this.#headers = [];
    this.#aborted = false;
    if (user !== undefined && user !== null) {
      const basic = Buffer.from(`${user}:${password ?? ''}`).toString('base64');
      this.#headers.push(['Authorization', `Basic ${basic}`]);
    }
    this.readyState = 1;
  }

  setRequestHeader(name: string, value: string): void {
    const existing = this.#headers.find(([k]) => k.toLowerCase() === name.toLowerCase());
    if (existing) existing[1] = `${existing[1]}, ${value}`;
    else this.#headers.push([name, value]);
  }

  overrideMimeType(mime: string): void {
    this.#mime = mime;
  }

  getResponseHeader(name: string): string | null {
    const hit = this.#responseHeaders.find(([k]) => k.toLowerCase() === name.toLowerCase());
    return hit ? hit[1] : null;
  }

  getAllResponseHeaders(): string {
    return this.#responseHeaders.map(([k, v]) => `${k.toLowerCase()}: ${v}\r\n`).join('');
  }

  abort(): void {
    this.#aborted = true;
    this.readyState = 0;
    this.#fire(this.onabort, 'abort');
  }

  send(body?: unknown): void {
    if (this.readyState !== 1) throw new Error('SyncXMLHttpRequest: send() before open()');
    const payload = this.#method === 'GET' || this.#method === 'HEAD' ? null : toArrayBuffer(body);
    const started = Date.now();
    const request = {
      id: ++state.nextId,
      method: this.#method,
      url: this.#url,
      headers: this.#headers.map(([k, v]): [string, string] => [k, v]),
      body: payload,
      timeoutMs: this.timeout > 0 ? this.timeout : state.timeoutMs,
    };
    const bodyLength = payload?.byteLength ?? 0;
    const done = (reply: FetchWorkerReply | undefined): void => {
      this.#finish(reply, bodyLength, started);
    };
    if (!this.#async) {
      done(this.#runSync(request));
      return;
    }
    const init: RequestInit = { method: request.method, headers: request.headers };
    if (payload !== null) init.body = new Uint8Array(payload);
    fetch(request.url, init)
      .then(async (res): Promise<FetchWorkerReply> => ({
        id: request.id, ok: true, status: res.status, statusText: res.statusText, url: res.url,
        headers: [...res.headers.entries()], body: await res.arrayBuffer(),
      }))
      .catch((e: unknown): FetchWorkerReply => ({ id: request.id, ok: false, error: String(e) }))
      .then((reply) => {
        if (!this.#aborted) done(reply);
      }, () => undefined);
  }

  #runSync(request: FetchWorkerRequest): FetchWorkerReply | undefined {
    state.worker ??= startFetchWorker();
    const worker = state.worker;
    worker.port.postMessage(request, request.body ? [request.body] : []);
    const deadline = Date.now() + request.timeoutMs;
    for (;;) {
      const received = receiveMessageOnPort(worker.port);
      if (received !== undefined) {
        if (isReply(received.message) && received.message.id === request.id) return received.message;
        continue; // a late reply to an earlier, timed-out request
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return undefined;
      const seen = Atomics.load(worker.ctrl, 0);
      if (seen !== request.id) Atomics.wait(worker.ctrl, 0, seen, remaining);
    }
  }

  #finish(reply: FetchWorkerReply | undefined, bodyLength: number, started: number): void {
    const entry = { method: this.#method, url: this.#url, headers: Object.fromEntries(this.#headers), bodyLength };
    this.readyState = 4;
    if (reply === undefined || !reply.ok) {
      const error = reply === undefined ? 'timeout' : reply.error;
      const detail = state.worker?.lastError ? ` (fetch worker: ${state.worker.lastError})` : '';
      state.log.push({ ...entry, status: 0, responseLength: 0, durationMs: Date.now() - started, error: error + detail });
      this.#fire(this.onreadystatechange, 'readystatechange');
      this.#fire(reply === undefined ? this.ontimeout : this.onerror, reply === undefined ? 'timeout' : 'error');
      this.#fire(this.onloadend, 'loadend');
      return;
    }
    this.status = reply.status;
    this.statusText = reply.statusText;
    this.responseURL = reply.url;
    this.#responseHeaders = reply.headers;
    this.#body = reply.body;
    const size = reply.body.byteLength;
    state.log.push({ ...entry, status: reply.status, responseLength: size, durationMs: Date.now() - started });
    this.#fire(this.onreadystatechange, 'readystatechange');
    this.#fire(this.onprogress, 'progress', size);
    this.#fire(this.onload, 'load', size);
    this.#fire(this.onloadend, 'loadend', size);
  }

  #fire(handler: Handler, type: string, size = 0): void {
    handler?.call(this, { type, target: this, loaded: size, total: size, lengthComputable: true });
  }
}

/** Options for {@link installSyncXhr}. */
export interface SyncXhrOptions {
  /** Upper bound for one synchronous request (default 30 s); a stuck server then fails the call. */
  readonly timeoutMs?: number;
}

/** Puts {@link SyncXMLHttpRequest} on `globalThis.XMLHttpRequest` (idempotent). */
export function installSyncXhr(options: SyncXhrOptions = {}): void {
  state.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (state.installed) return;
  state.previous = Object.getOwnPropertyDescriptor(globalThis, 'XMLHttpRequest');
  Object.defineProperty(globalThis, 'XMLHttpRequest', {
    value: SyncXMLHttpRequest, writable: true, configurable: true, enumerable: false,
  });
  state.installed = true;
}

/** Restores the previous `globalThis.XMLHttpRequest` and stops the fetch worker. */
export async function uninstallSyncXhr(): Promise<void> {
  if (state.installed) {
    if (state.previous) Object.defineProperty(globalThis, 'XMLHttpRequest', state.previous);
    else Reflect.deleteProperty(globalThis, 'XMLHttpRequest');
    state.installed = false;
    state.previous = undefined;
  }
  const worker = state.worker;
  state.worker = undefined;
  await worker?.terminate();
}

/** Every request made through the polyfill since the last {@link clearXhrLog}, oldest first. */
export function xhrLog(): readonly XhrLogEntry[] {
  return [...state.log];
}

export function clearXhrLog(): void {
  state.log.length = 0;
}
