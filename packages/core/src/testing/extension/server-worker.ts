/**
 * Runs an HTTP server in a `worker_thread`, so that it keeps serving while the main thread is
 * blocked in a synchronous XMLHttpRequest of the extension (see sync-xhr.ts).
 *
 * The module at `modulePath` (`.ts` via tsx's `tsImport`, or plain `.js`/`.mjs`) must export, under
 * `exportName`, a factory `(options) => ServerLike | Promise<ServerLike>` where `ServerLike` is a
 * Node `http.Server` (listening or not) or `{ server, control? }`. `control(message)` is optional and
 * answers {@link WorkerServer.call} from the test (e.g. to read a request log kept by the server).
 * `options` must be structured-cloneable.
 */
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const { moduleUrl, exportName, options, host, port, tsxApiUrl } = workerData;
let server, control;
async function main() {
  const mod = /\\.[cm]?tsx?$/.test(moduleUrl)
    ? await (await import(tsxApiUrl)).tsImport(moduleUrl, moduleUrl)
    : await import(moduleUrl);
  const factory = mod[exportName];
  if (typeof factory !== 'function') throw new Error('export ' + exportName + ' is not a function');
  const made = await factory(options);
  server = made && made.server ? made.server : made;
  control = made && typeof made.control === 'function' ? made.control : undefined;
  if (!server.listening) {
    await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, host, ok); });
  }
  parentPort.on('message', async (msg) => {
    if (msg.type === 'close') {
      if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
      server.close(() => parentPort.postMessage({ type: 'closed' }));
      return;
    }
    try {
      if (!control) throw new Error('the server factory returned no control() function');
      parentPort.postMessage({ type: 'reply', seq: msg.seq, ok: true, value: await control(msg.message) });
    } catch (e) {
      parentPort.postMessage({ type: 'reply', seq: msg.seq, ok: false, error: String(e && e.stack || e) });
    }
  });
  parentPort.postMessage({ type: 'ready', port: server.address().port });
}
main().catch((e) => parentPort.postMessage({ type: 'failed', error: String(e && e.stack || e) }));
`;

export interface ServerWorkerOptions {
  /** Structured-cloneable options passed to the factory. */
  readonly options?: unknown;
  /** Listen address when the factory returns a server that is not listening (default 127.0.0.1). */
  readonly host?: string;
  /** Listen port (default 0 = ephemeral). */
  readonly port?: number;
}

export interface WorkerServer {
  readonly port: number;
  /** `http://127.0.0.1:PORT` (uses `host`). */
  readonly origin: string;
  /** Sends `message` to the factory's `control()` in the worker and returns its (cloned) answer. */
  call(message: unknown): Promise<unknown>;
  /** Closes the server (dropping keep-alive connections) and terminates the worker. */
  close(): Promise<void>;
}

type WorkerMessage =
  | { type: 'ready'; port: number }
  | { type: 'failed'; error: string }
  | { type: 'closed' }
  | { type: 'reply'; seq: number; ok: true; value: unknown }
  | { type: 'reply'; seq: number; ok: false; error: string };

function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && 'type' in value;
}

/** Starts `modulePath`'s `exportName` server factory in a worker thread; resolves once it listens. */
export async function startServerInWorker(
  modulePath: string,
  exportName: string,
  opts: ServerWorkerOptions = {},
): Promise<WorkerServer> {
  const host = opts.host ?? '127.0.0.1';
  const moduleUrl = modulePath.startsWith('file:')
    ? modulePath
    : pathToFileURL(isAbsolute(modulePath) ? modulePath : resolve(modulePath)).href;
  // tsx is only needed (and only resolved) for TypeScript server modules. Its ESM API is used: the
  // CJS build of `tsx/esm/api` mis-resolves its loader when called from an eval worker.
  const tsxApiUrl = /\.[cm]?tsx?$/.test(moduleUrl)
    ? pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href
    : '';
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { moduleUrl, exportName, options: opts.options, host, port: opts.port ?? 0, tsxApiUrl },
  });
  const pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
  let closed: (() => void) | undefined;
  let seq = 0;
  const port = await new Promise<number>((ok, fail) => {
    worker.on('error', (e) => {
      fail(e);
      for (const p of pending.values()) p.fail(e);
    });
    worker.on('exit', (code) => fail(new Error(`server worker exited with code ${code}`)));
    worker.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) return;
      if (m.type === 'ready') ok(m.port);
      else if (m.type === 'failed') fail(new Error(`server worker failed: ${m.error}`));
      else if (m.type === 'closed') closed?.();
      else {
        const p = pending.get(m.seq);
        pending.delete(m.seq);
        if (m.ok) p?.ok(m.value);
        else p?.fail(new Error(m.error));
      }
    });
  }).catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  return {
    port,
    origin: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    call(message: unknown): Promise<unknown> {
      const id = ++seq;
      return new Promise((ok, fail) => {
        pending.set(id, { ok, fail });
        worker.postMessage({ type: 'call', seq: id, message });
      });
    },
    async close(): Promise<void> {
      await new Promise<void>((ok) => {
        closed = ok;
        worker.postMessage({ type: 'close' });
        setTimeout(ok, 2_000).unref();
      });
      await worker.terminate();
    },
  };
}
