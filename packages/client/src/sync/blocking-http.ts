/**
 * Blocking HTTP for the synchronous SQL functions (`cloudsync_network_*`): SQLite calls them
 * synchronously, so a request must complete before the function returns.
 *
 * Handshake: the calling thread posts the request on a MessagePort to a `worker_thread` that runs
 * `fetch`, then sleeps in `Atomics.wait` on a shared Int32 cell. The worker posts the reply (body
 * transferred) and stores the request id in the cell with `Atomics.notify`; the caller wakes and
 * takes the reply with `receiveMessageOnPort`. The calling thread's event loop does not run in
 * the meantime, so the server must not live on that thread.
 */
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { SyncNetworkError } from './http.ts';
import type { BlockingHttpFetch, HttpRequest, HttpResponse } from './http.ts';

interface WireRequest {
  id: number;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: ArrayBuffer | null;
  timeoutMs: number;
}

type WireReply =
  | { id: number; ok: true; status: number; statusText: string; headers: Array<[string, string]>; body: ArrayBuffer }
  | { id: number; ok: false; error: string };

const WORKER = `
'use strict';
const { workerData } = require('node:worker_threads');
const { port, cell } = workerData;
const flag = new Int32Array(cell);
port.on('message', async (req) => {
  let reply;
  const transfer = [];
  try {
    const init = { method: req.method, headers: req.headers, redirect: 'manual', signal: AbortSignal.timeout(req.timeoutMs) };
    if (req.body !== null) init.body = new Uint8Array(req.body);
    const res = await fetch(req.url, init);
    const body = await res.arrayBuffer();
    transfer.push(body);
    reply = { id: req.id, ok: true, status: res.status, statusText: res.statusText, headers: [...res.headers.entries()], body };
  } catch (e) {
    const c = e && e.cause;
    reply = { id: req.id, ok: false, error: String(e && e.message ? e.message : e) + (c ? ' (' + (c.code || c.message || String(c)) + ')' : '') };
  }
  port.postMessage(reply, transfer);
  Atomics.store(flag, 0, req.id);
  Atomics.notify(flag, 0);
});
`;

function isReply(v: unknown): v is WireReply {
  return typeof v === 'object' && v !== null && 'id' in v && 'ok' in v;
}

/** A worker-backed blocking fetch; `close()` stops the worker. */
export interface BlockingHttp {
  fetch: BlockingHttpFetch;
  close(): Promise<void>;
}

export function createBlockingHttp(opts: { timeoutMs?: number } = {}): BlockingHttp {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let started: { worker: Worker; port: MessagePort; flag: Int32Array } | undefined;
  let nextId = 0;
  let crashed: string | undefined;

  const start = (): { worker: Worker; port: MessagePort; flag: Int32Array } => {
    const channel = new MessageChannel();
    const cell = new SharedArrayBuffer(4);
    const worker = new Worker(WORKER, { eval: true, workerData: { port: channel.port2, cell }, transferList: [channel.port2] });
    worker.on('error', (e: unknown) => (crashed = e instanceof Error ? e.message : String(e)));
    worker.unref();
    channel.port1.unref();
    return { worker, port: channel.port1, flag: new Int32Array(cell) };
  };

  const run = (req: HttpRequest): HttpResponse => {
    started ??= start();
    const { port, flag } = started;
    const id = ++nextId;
    const body = req.body === undefined ? null : req.body.slice().buffer;
    const wire: WireRequest = { id, method: req.method, url: req.url, headers: req.headers, body, timeoutMs };
    port.postMessage(wire, body === null ? [] : [body]);
    const deadline = Date.now() + timeoutMs + 1000;
    for (;;) {
      const got = receiveMessageOnPort(port);
      if (got !== undefined) {
        const m: unknown = got.message;
        if (!isReply(m) || m.id !== id) continue; // a late reply to an abandoned request
        if (!m.ok) throw new SyncNetworkError(m.error);
        return { status: m.status, statusText: m.statusText, headers: Object.fromEntries(m.headers.map(([k, v]) => [k.toLowerCase(), v])), body: new Uint8Array(m.body) };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new SyncNetworkError(`request timed out after ${timeoutMs} ms${crashed === undefined ? '' : ` (worker: ${crashed})`}`);
      const seen = Atomics.load(flag, 0);
      if (seen !== id) Atomics.wait(flag, 0, seen, Math.min(left, 1000));
    }
  };

  return {
    fetch: run,
    async close() {
      const s = started;
      started = undefined;
      if (s !== undefined) {
        s.port.close();
        await s.worker.terminate();
      }
    },
  };
}

/** Sleeps the calling thread (used by `cloudsync_network_sync(wait_ms, …)`). */
export function sleepBlocking(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
