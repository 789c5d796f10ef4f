/** Options, events and status of {@link OffSyncDatabase} (database.ts). */
import type { BackoffOptions } from './backoff.ts';
import type { LiveMode } from './graphql-transport.ts';
import type { HttpFetch } from './http.ts';
import type { Progress, ResyncResult } from './session.ts';
import type { ConnectionEvent, ConnectionState } from './state-machine.ts';
import type { SyncTransport } from './transport.ts';
import type { Cursor } from './types.ts';

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:4000';

export interface OpenDatabaseOptions extends BackoffOptions {
  /** Base address for `cloudsync_network_init(databaseId)` and the async API (default http://127.0.0.1:4000). */
  serverUrl?: string;
  /** Database id for the async API (the SQL API sets it with `cloudsync_network_init`). */
  databaseId?: string;
  apiKey?: string;
  token?: string;
  /** Replace the transport of the async API (then `live`, `wsUrl`, `webSocketImpl` are not used). */
  transport?: SyncTransport;
  /**
   * Live mode transport: `'graphql'` holds the `changes` subscription open over graphql-ws,
   * `'poll'` polls `check` every `pollMs`. Default: `'graphql'` when `wsUrl` or `webSocketImpl` is
   * given, else `'poll'`.
   */
  live?: LiveMode;
  /** graphql-ws endpoint (default: the server address + `/graphql`, http(s) → ws(s)). */
  wsUrl?: string;
  /** WebSocket constructor for `live: 'graphql'` (the `ws` package on Node < 22; default globalThis.WebSocket). */
  webSocketImpl?: unknown;
  /** graphql-ws keep-alive ping interval (default 10 s; 0 = off) and pong timeout (default 5 s). */
  keepAliveMs?: number;
  pongTimeoutMs?: number;
  /** Live mode: a local write is pushed this long after it is seen (default 10 ms). */
  pushDebounceMs?: number;
  /** Live mode: how often the connection is probed for local writes (default 10 ms). */
  watchMs?: number;
  /** Replace `fetch` for the async API. */
  fetch?: HttpFetch;
  /** Attempts per `sync()`/`send()`/`receive()` on retryable failures (default 5). */
  maxAttempts?: number;
  /** Sleep between attempts (default setTimeout); tests inject a fake. */
  retryWait?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Live mode: delay between polls of `check` (default 1000 ms). */
  pollMs?: number;
  /** Upload chunk budget before compression (default 5 MB). */
  maxChunkBytes?: number;
  /** `maxChunks` per `check` (default 1: the next page is fetched while this one is applied). */
  maxChunks?: number;
  /** Timeout of one HTTP request (default 30 s). */
  httpTimeoutMs?: number;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  event: ConnectionEvent;
}

export interface ErrorEvent {
  error: Error;
  retryable: boolean;
  attempt: number;
}

export interface OffSyncEvents {
  state: StateEvent;
  progress: Progress;
  changes: { tables: string[]; rows: number };
  error: ErrorEvent;
  /** The server required a resync (`resync_required`): the device downloaded from 0 and kept its un-uploaded writes. */
  resync: ResyncResult;
}

export interface ClientStatus {
  state: ConnectionState;
  siteId: string;
  dbVersion: number;
  /** Own changes the server has not acknowledged yet (local check, no request). */
  pendingLocal: boolean;
  sendVersion: number;
  cursor: Cursor;
  network: { address: string; databaseId: string } | null;
}

