/**
 * A tiny relay server speaking the G2a protocol (docs/PROTOCOL.md §P1) for harness tests.
 * It does NOT merge anything: every payload a site uploads is handed, unchanged, to every other
 * site on its next `check`. Meant to run in a worker via `startServerInWorker(path,
 * 'createG2aStubServer', { options })`; it is not a model for the real server.
 *
 * Control messages (via `WorkerServer.call`): `{ type: 'log' }` → {@link StubRequest}[],
 * `{ type: 'uploads' }` → {@link StubUpload}[], `{ type: 'clear' }` → forgets log, uploads and blobs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';

export interface G2aStubOptions {
  /** When set, API calls must carry `Authorization: Bearer <apiKey>` (else 401 Unauthorized). */
  readonly apiKey?: string;
}

/** One request as seen by the stub. */
export interface StubRequest {
  readonly method: string;
  readonly path: string;
  /** Lower-cased header names, as received. */
  readonly headers: Readonly<Record<string, string>>;
  readonly bodyLength: number;
  /** Hex of the first 8 body bytes (`434c5359…` = "CLSY" for payloads). */
  readonly bodyHeadHex: string;
  /** Body as UTF-8 text for JSON requests, otherwise ''. */
  readonly bodyText: string;
  readonly status: number;
  /** Reply body as text (blobs: ''). */
  readonly reply: string;
}

/** A payload a site announced through `POST …/apply`. */
export interface StubUpload {
  readonly site: string;
  readonly db: string;
  readonly url: string;
  readonly dbVersionMin: number;
  readonly dbVersionMax: number;
  readonly bytes: Uint8Array;
}

const API_PATH = /^\/v2\/cloudsync\/(.+)\/([0-9a-f]{32})\/(upload|apply|check)$/;
const BLOB_PATH = /^\/blobs\/([A-Za-z0-9._-]+)$/;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => ok(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}

function jsonNumber(body: unknown, key: string): number {
  if (typeof body !== 'object' || body === null) return Number.NaN;
  const v: unknown = Reflect.get(body, key);
  return typeof v === 'number' ? v : Number.NaN;
}

/** Factory for {@link startServerInWorker}: returns the (not yet listening) server and its control. */
export function createG2aStubServer(options: G2aStubOptions = {}): {
  server: Server;
  control: (message: unknown) => unknown;
} {
  const log: StubRequest[] = [];
  const blobs = new Map<string, Uint8Array>();
  const uploads: StubUpload[] = [];
  const delivered = new Map<string, Set<number>>();
  let counter = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const origin = `http://${req.headers.host ?? '127.0.0.1'}`;
    const isJson = (req.headers['content-type'] ?? '').includes('json');
    const send = (status: number, reply: string | Uint8Array, statusText?: string): void => {
      const text = typeof reply === 'string' ? reply : '';
      log.push({
        method: req.method ?? '', path, bodyLength: body.length, status, reply: text,
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
        bodyHeadHex: body.subarray(0, 8).toString('hex'), bodyText: isJson ? body.toString('utf8') : '',
      });
      const type = typeof reply === 'string' ? 'text/plain' : 'application/octet-stream';
      if (statusText === undefined) res.writeHead(status, { 'content-type': type });
      else res.writeHead(status, statusText, { 'content-type': type });
      res.end(reply);
    };
    const api = API_PATH.exec(path);
    if (api) {
      const [, db = '', site = '', action] = api;
      if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        send(401, '{"errors":[{"status":"401","title":"Unauthorized"}]}', 'Unauthorized');
        return;
      }
      if (action === 'upload' && req.method === 'GET') {
        send(200, `${origin}/blobs/up-${++counter}-${randomBytes(8).toString('hex')}.bin`);
        return;
      }
      if (action === 'apply' && req.method === 'POST') {
        const parsed: unknown = JSON.parse(body.toString('utf8'));
        const url = typeof parsed === 'object' && parsed !== null ? String(Reflect.get(parsed, 'url')) : '';
        const bytes = blobs.get(new URL(url, origin).pathname);
        if (bytes === undefined) {
          send(400, 'unknown upload url', 'Bad Request');
          return;
        }
        const dbVersionMin = jsonNumber(parsed, 'dbVersionMin');
        const dbVersionMax = jsonNumber(parsed, 'dbVersionMax');
        uploads.push({ site, db, url, dbVersionMin, dbVersionMax, bytes });
        send(200, '');
        return;
      }
      if (action === 'check' && req.method === 'POST') {
        const seen = delivered.get(site) ?? new Set<number>();
        delivered.set(site, seen);
        const index = uploads.findIndex((u, i) => u.db === db && u.site !== site && !seen.has(i));
        const next = uploads[index];
        if (next === undefined) {
          send(200, '');
          return;
        }
        seen.add(index);
        const name = `/blobs/dl-${++counter}-${randomBytes(8).toString('hex')}.bin`;
        blobs.set(name, next.bytes);
        send(200, `${origin}${name}`);
        return;
      }
    }
    const blob = BLOB_PATH.exec(path);
    if (blob && req.method === 'PUT') {
      blobs.set(path, new Uint8Array(body));
      send(200, '');
      return;
    }
    if (blob && req.method === 'GET') {
      const bytes = blobs.get(path);
      if (bytes === undefined) send(404, 'not found', 'Not Found');
      else send(200, bytes);
      return;
    }
    send(404, 'not found', 'Not Found');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, 'Internal Server Error');
      res.end(String(e));
    });
  });

  const control = (message: unknown): unknown => {
    const type = typeof message === 'object' && message !== null ? Reflect.get(message, 'type') : undefined;
    if (type === 'log') return log;
    if (type === 'uploads') return uploads;
    if (type === 'clear') {
      log.length = 0;
      uploads.length = 0;
      blobs.clear();
      delivered.clear();
      return true;
    }
    throw new Error(`unknown control message ${JSON.stringify(message)}`);
  };
  return { server, control };
}
