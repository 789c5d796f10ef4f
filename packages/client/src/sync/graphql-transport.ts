/**
 * Live mode over graphql-ws: {@link GraphqlSyncTransport} holds the server's
 * `changes(databaseId, siteId, cursor, maxBytes)` subscription open and hands every batch to the
 * live loop as a {@link ChangeNotice} (payload decoded, cursor converted to the durable
 * convention). push/pull/download/status go to the wrapped HTTP (G3) transport.
 *
 * - Every (re)subscription reads the durable cursor, so after a disconnect the server replays
 *   exactly what the device has not applied (the cursor only moves in the apply's transaction).
 * - graphql-ws's own retries are off (they would resubscribe with the stale first cursor); this
 *   loop reconnects with randomised exponential backoff (`backoffDelay`), reset on every ack.
 * - Keep-alive pings every `keepAliveMs`; no pong within `pongTimeoutMs` closes the socket (4408),
 *   which counts as a network error: a half-open connection is noticed, not waited on forever.
 * - Auth: `connectionParams = { authorization: 'Bearer <credential>', databaseId }` (the admin key,
 *   or a device credential of that database). Auth, validation and domain refusals
 *   (non-retryable) stop the loop (state `error`) — among them the codes a live subscription ends
 *   with (docs/PROTOCOL.md "Live subscriptions end with their credential"): CREDENTIAL_REVOKED,
 *   CREDENTIAL_EXPIRED, DEVICE_REMOVED, SYNC_DISABLED (SyncError `credential_revoked`, …) and a
 *   4401 close. RLS_MODE_CHANGED is retryable: the loop resubscribes under the new mode.
 *
 * Cursor conventions: the durable cursor reads `seq = 0` as "all of version N seen" (HTTP
 * watermark), the subscription as the row key `(N, 0)`. {@link toFeedCursor} and
 * {@link toDurableCursor} translate, never skipping a change (at worst one re-delivery).
 */
import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
import { ChangesDocument } from '../generated/graphql.ts';
import type { SyncCursorInput } from '../generated/graphql.ts';
import { toWebSocketUrl } from '../graphql/api-client.ts';
import { ClientError, ClientErrorCode } from '../graphql/errors.ts';
import { subscribe } from '../graphql/subscribe.ts';
import { backoffDelay, wait } from './backoff.ts';
import type { BackoffOptions } from './backoff.ts';
import { SyncError, SyncNetworkError } from './http.ts';
import type { ChangeNotice, ContextSource, SubscribeOptions, Subscription, SyncTransport } from './transport.ts';
import type { Cursor, NetworkConfig, PullBatch, PullRequest, PushChunk, SyncStatus } from './types.ts';

/** Largest GraphQL `Int`: as a seq, "after every change of the version". */
export const SEQ_ALL = 2_147_483_647;

/** The GraphQL endpoint of a server address (`http://host:4000` → `ws://host:4000/graphql`). */
export function graphqlWsUrl(address: string): string {
  return toWebSocketUrl(`${address.replace(/\/+$/, '')}/graphql`);
}

/** Durable cursor → subscription cursor (`null` = from the beginning). */
export function toFeedCursor(c: Cursor): SyncCursorInput | null {
  if (c.dbVersion === 0 && c.seq === 0) return null;
  return c.seq === 0 ? { dbVersion: c.dbVersion, seq: SEQ_ALL } : { dbVersion: c.dbVersion, seq: c.seq };
}

/** Subscription cursor → durable cursor: a row key with seq 0 is stored as "all of the previous version". */
export function toDurableCursor(c: Cursor): Cursor {
  if (c.seq !== 0 || c.dbVersion === 0) return { dbVersion: c.dbVersion, seq: c.seq };
  return { dbVersion: c.dbVersion - 1, seq: SEQ_ALL };
}

/** Server codes a `changes` subscription ends with that a resubscription resolves (the credential still holds). */
const RESUBSCRIBE_CODES: ReadonlySet<string> = new Set(['RLS_MODE_CHANGED']);

/** ClientError (graphql-ws, GraphQL errors) → the SyncError family the state machine understands. */
export function toSyncError(e: unknown): unknown {
  if (!(e instanceof ClientError)) return e;
  if (e.code === ClientErrorCode.NETWORK) return new SyncNetworkError(e.message);
  // CONFLICT with syncCode resync_required: a cursor below the compaction floor (resync.ts). The
  // live loop resyncs; retryable so the subscription comes back from the new cursor.
  if (e.errors[0]?.extensions?.['syncCode'] === 'resync_required') return new SyncError('resync_required', e.message, true);
  const code = (e.serverCode ?? e.code.replace(/^CLIENT_/, '')).toLowerCase();
  return new SyncError(code, e.message, e.retryable || (e.serverCode !== undefined && RESUBSCRIBE_CODES.has(e.serverCode)));
}

export interface GraphqlTransportOptions extends BackoffOptions {
  /** push/pull/download/status (the HTTP G3 transport). */
  http: SyncTransport;
  /** Address, database id, credential and site id (read at every connection). */
  context: ContextSource;
  /** Subscription endpoint; default: the network address + `/graphql`, http(s) → ws(s). */
  wsUrl?: string;
  /** WebSocket constructor (e.g. the `ws` package on Node < 22); default: globalThis.WebSocket. */
  webSocketImpl?: unknown;
  /** `maxBytes` of each batch (default: the server's page size). */
  maxBytes?: number;
  /** Ping interval (default 10 s; 0 = no pings). */
  keepAliveMs?: number;
  /** Close the socket when a ping is not answered within this (default 5 s). */
  pongTimeoutMs?: number;
  /** Sleep between reconnection attempts (tests inject a fake). */
  retryWait?: (ms: number, signal: AbortSignal) => Promise<void>;
}

interface ClosableSocket {
  readyState: number;
  close(code: number, reason: string): void;
}

function isClosable(s: unknown): s is ClosableSocket {
  return typeof s === 'object' && s !== null && typeof Reflect.get(s, 'close') === 'function' && typeof Reflect.get(s, 'readyState') === 'number';
}

function decodeBase64(text: string): Uint8Array {
  const b = Buffer.from(text, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export class GraphqlSyncTransport implements SyncTransport {
  readonly #o: GraphqlTransportOptions;
  constructor(options: GraphqlTransportOptions) {
    this.#o = options;
  }
  push(chunk: PushChunk): Promise<SyncStatus | null> {
    return this.#o.http.push(chunk);
  }
  pull(req: PullRequest): Promise<PullBatch> {
    return this.#o.http.pull(req);
  }
  download(url: string): Promise<Uint8Array> {
    return this.#o.http.download(url);
  }
  status(): Promise<SyncStatus | null> {
    return this.#o.http.status();
  }

  subscribe(opts: SubscribeOptions): Subscription {
    const ctl = new AbortController();
    const signal = AbortSignal.any([ctl.signal, opts.signal]);
    void this.#loop(opts, signal);
    return { close: () => ctl.abort() };
  }

  async #loop(opts: SubscribeOptions, signal: AbortSignal): Promise<void> {
    const sleep = this.#o.retryWait ?? wait;
    let attempt = 0;
    while (!signal.aborted) {
      opts.onConnecting?.();
      try {
        await this.#session(opts, signal, () => (attempt = 0));
        if (signal.aborted) break;
        throw new SyncNetworkError('the changes subscription ended');
      } catch (e) {
        if (signal.aborted) break;
        const error = toSyncError(e);
        opts.onError(error);
        if (error instanceof SyncError && !error.retryable) break;
      }
      await sleep(backoffDelay(attempt++, this.#o), signal);
    }
  }

  /** One connection: subscribe from the durable cursor, apply batches in order until it fails. */
  async #session(opts: SubscribeOptions, signal: AbortSignal, onAck: () => void): Promise<void> {
    const ctx = this.#o.context();
    const impl: unknown = this.#o.webSocketImpl ?? Reflect.get(globalThis, 'WebSocket');
    if (impl === undefined) {
      throw new SyncError('no_websocket', 'live mode over graphql-ws needs a WebSocket implementation: pass webSocketImpl (e.g. the ws package) on Node < 22', false);
    }
    const client = this.#client(impl, ctx.net, () => {
      onAck();
      opts.onOpen?.();
    });
    const dispose = (): void => void client.dispose();
    signal.addEventListener('abort', dispose, { once: true });
    try {
      if (signal.aborted) return;
      const maxBytes = this.#o.maxBytes;
      const vars = { databaseId: ctx.net.databaseId, siteId: ctx.siteHex, cursor: toFeedCursor(opts.cursor()), ...(maxBytes === undefined ? {} : { maxBytes }) };
      for await (const { changes: b } of subscribe(client, ChangesDocument, vars)) {
        if (signal.aborted) return;
        const notice: ChangeNotice = { cursor: toDurableCursor(b.cursor), final: b.final };
        if (b.payload !== null) notice.payload = decodeBase64(b.payload);
        await opts.onChanges(notice);
      }
    } finally {
      signal.removeEventListener('abort', dispose);
      await client.dispose();
    }
  }

  #client(impl: unknown, net: NetworkConfig, onAck: () => void): Client {
    const keepAlive = this.#o.keepAliveMs ?? 10_000;
    const pongTimeout = this.#o.pongTimeoutMs ?? 5_000;
    let socket: unknown;
    let timer: ReturnType<typeof setTimeout> | undefined;
    return createClient({
      url: this.#o.wsUrl ?? graphqlWsUrl(net.address),
      webSocketImpl: impl,
      lazy: true,
      retryAttempts: 0,
      keepAlive,
      // A device credential (API key, token) is checked against `databaseId` at connection time.
      connectionParams: { databaseId: net.databaseId, ...(net.credential === undefined ? {} : { authorization: `Bearer ${net.credential}` }) },
      on: {
        connected: (s) => {
          socket = s;
          onAck();
        },
        ping: (received) => {
          if (received || keepAlive <= 0) return;
          clearTimeout(timer);
          timer = setTimeout(() => {
            if (isClosable(socket) && socket.readyState === 1) socket.close(4408, 'Pong timeout');
          }, pongTimeout);
          timer.unref();
        },
        pong: (received) => {
          if (received) clearTimeout(timer);
        },
        closed: () => clearTimeout(timer),
      },
    });
  }
}

export type LiveMode = 'graphql' | 'poll';

/** `live` when given; otherwise graphql-ws when a WebSocket or endpoint was configured, else polling. */
export function liveModeOf(o: { live?: LiveMode; wsUrl?: string; webSocketImpl?: unknown }): LiveMode {
  return o.live ?? (o.wsUrl !== undefined || o.webSocketImpl !== undefined ? 'graphql' : 'poll');
}
