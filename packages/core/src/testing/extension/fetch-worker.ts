/**
 * The `worker_thread` that performs the HTTP requests of the synchronous XMLHttpRequest polyfill.
 *
 * Handshake (see sync-xhr.ts): the main thread posts `{ id, method, url, headers, body }` on a
 * MessagePort and blocks in `Atomics.wait` on a shared Int32 cell. The worker runs `fetch`, posts the
 * reply (body transferred, any size) on the same port and then stores the request id into the cell
 * and notifies. The main thread wakes and takes the reply with `receiveMessageOnPort`.
 *
 * The worker runs as an `eval` worker (plain JavaScript string) so that it needs no TypeScript loader.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

/** A request as posted to the fetch worker. */
export interface FetchWorkerRequest {
  readonly id: number;
  readonly method: string;
  readonly url: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: ArrayBuffer | null;
  /** The worker aborts the fetch after this long (the caller has given up by then). */
  readonly timeoutMs: number;
}

/** A reply as posted back by the fetch worker. */
export type FetchWorkerReply =
  | {
      readonly id: number;
      readonly ok: true;
      readonly status: number;
      readonly statusText: string;
      readonly url: string;
      readonly headers: ReadonlyArray<readonly [string, string]>;
      readonly body: ArrayBuffer;
    }
  | { readonly id: number; readonly ok: false; readonly error: string };

const WORKER_SOURCE = `
'use strict';
const { workerData } = require('node:worker_threads');
const { port, cell } = workerData;
const ctrl = new Int32Array(cell);
port.on('message', async (req) => {
  let reply;
  const transfer = [];
  try {
    const init = { method: req.method, headers: req.headers, redirect: 'follow', signal: AbortSignal.timeout(req.timeoutMs) };
    if (req.body !== null && req.method !== 'GET' && req.method !== 'HEAD') init.body = new Uint8Array(req.body);
    const res = await fetch(req.url, init);
    const body = await res.arrayBuffer();
    transfer.push(body);
    reply = { id: req.id, ok: true, status: res.status, statusText: res.statusText, url: res.url,
      headers: [...res.headers.entries()], body };
  } catch (e) {
    const cause = e && e.cause ? ' (' + (e.cause.code || e.cause.message || String(e.cause)) + ')' : '';
    reply = { id: req.id, ok: false, error: String(e && e.message ? e.message : e) + cause };
  }
  port.postMessage(reply, transfer);
  Atomics.store(ctrl, 0, req.id);
  Atomics.notify(ctrl, 0);
});
`;

/** Handle on the running fetch worker, used by the synchronous XHR. */
export interface FetchWorker {
  /** Main-thread end of the channel. No listener is attached: replies are read synchronously. */
  readonly port: MessagePort;
  /** Cell 0 holds the id of the last completed request. */
  readonly ctrl: Int32Array;
  /** Set when the worker itself crashed. */
  readonly lastError: string | undefined;
  terminate(): Promise<void>;
}

/** Starts the fetch worker. It is `unref`'d so it never keeps the process alive. */
export function startFetchWorker(): FetchWorker {
  const channel = new MessageChannel();
  const cell = new SharedArrayBuffer(4);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { port: channel.port2, cell },
    transferList: [channel.port2],
  });
  const handle = {
    port: channel.port1,
    ctrl: new Int32Array(cell),
    lastError: undefined as string | undefined,
    async terminate(): Promise<void> {
      channel.port1.close();
      await worker.terminate();
    },
  };
  // A crashed worker makes pending requests time out; the reason is kept for the error message.
  worker.on('error', (e: unknown) => {
    handle.lastError = e instanceof Error ? e.message : String(e);
  });
  worker.unref();
  channel.port1.unref();
  return handle;
}
