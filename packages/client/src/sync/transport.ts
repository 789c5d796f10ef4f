/**
 * The transport seam. {@link SyncTransport} is what the async API talks to: push/pull/download/
 * status over HTTP (G3), plus `subscribe` for live mode. {@link HttpSyncTransport.subscribe} polls
 * `check`; `GraphqlSyncTransport` (graphql-transport.ts) holds the server's `changes` subscription
 * open over graphql-ws and delivers {@link ChangeNotice}s with the payload and cursor inline.
 * {@link BlockingSyncTransport} is the synchronous twin used by the SQL functions.
 */
import { backoffDelay, wait } from './backoff.ts';
import type { BackoffOptions } from './backoff.ts';
import { SyncError } from './http.ts';
import type { BlockingHttpFetch, HttpFetch } from './http.ts';
import { downloadCall, pullCall, pushCall, runHttpAsync, runHttpBlocking, statusCall } from './protocol.ts';
import type { ProtocolContext } from './protocol.ts';
import type { Cursor, PullBatch, PullRequest, PushChunk, SyncStatus } from './types.ts';

/**
 * Something changed on the server: a payload to apply (push-style), a cursor-only batch of a
 * subscription, or `{}`: a hint to pull from the durable cursor.
 */
export interface ChangeNotice {
  payload?: Uint8Array;
  /** With a payload: the watermark to store (as `(watermark, 0)`) once it is applied. */
  watermark?: number;
  /** Subscription batch: the durable cursor after it, stored in the transaction that applies it. */
  cursor?: Cursor;
  /** Subscription batch: nothing was left after it on the server (replay done, live from here). */
  final?: boolean;
}

export interface SubscribeOptions {
  /** The durable cursor, read at every (re)subscription so nothing is missed after a disconnect. */
  cursor(): Cursor;
  onChanges(notice: ChangeNotice): Promise<void>;
  onError(error: unknown): void;
  /** Called whenever the subscription is (re)established or a poll succeeded. */
  onOpen?(): void;
  /** Subscription transports: a (re)connection attempt starts. */
  onConnecting?(): void;
  signal: AbortSignal;
}

export interface Subscription {
  close(): void;
}

export interface SyncTransport {
  push(chunk: PushChunk): Promise<SyncStatus | null>;
  pull(req: PullRequest): Promise<PullBatch>;
  download(url: string): Promise<Uint8Array>;
  status(): Promise<SyncStatus | null>;
  subscribe(opts: SubscribeOptions): Subscription;
}

export interface BlockingSyncTransport {
  push(chunk: PushChunk): SyncStatus | null;
  pull(req: PullRequest): PullBatch;
  download(url: string): Uint8Array;
  status(): SyncStatus | null;
}

/** The network context or the extension's error when `cloudsync_network_init` was not called. */
export type ContextSource = () => ProtocolContext;

export const NO_NETWORK_CONTEXT = 'Unable to retrieve CloudSync network context.';

export interface PollingOptions extends BackoffOptions {
  /** Delay between polls while healthy (default 1000 ms). */
  pollMs?: number;
  /** Injectable sleep (tests). */
  retryWait?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export class HttpSyncTransport implements SyncTransport {
  readonly #ctx: ContextSource;
  readonly #http: HttpFetch;
  readonly #poll: PollingOptions;
  constructor(ctx: ContextSource, http: HttpFetch, poll: PollingOptions = {}) {
    this.#ctx = ctx;
    this.#http = http;
    this.#poll = poll;
  }
  push(chunk: PushChunk): Promise<SyncStatus | null> {
    return runHttpAsync(pushCall(this.#ctx(), chunk), this.#http);
  }
  pull(req: PullRequest): Promise<PullBatch> {
    return runHttpAsync(pullCall(this.#ctx(), req), this.#http);
  }
  download(url: string): Promise<Uint8Array> {
    return runHttpAsync(downloadCall(url), this.#http);
  }
  status(): Promise<SyncStatus | null> {
    return runHttpAsync(statusCall(this.#ctx()), this.#http);
  }
  /** Polling stand-in for the GraphQL `changes` subscription: a pull hint every `pollMs`, backoff on errors. */
  subscribe(opts: SubscribeOptions): Subscription {
    const ctl = new AbortController();
    const signal = AbortSignal.any([ctl.signal, opts.signal]);
    const sleep = this.#poll.retryWait ?? wait;
    const poll = this.#poll;
    void (async () => {
      let attempt = 0;
      while (!signal.aborted) {
        try {
          await opts.onChanges({});
          attempt = 0;
          opts.onOpen?.();
          await sleep(poll.pollMs ?? 1000, signal);
        } catch (e) {
          if (signal.aborted) break;
          opts.onError(e);
          if (e instanceof SyncError && !e.retryable) break;
          await sleep(backoffDelay(attempt++, poll), signal);
        }
      }
    })();
    return { close: () => ctl.abort() };
  }
}

export class BlockingHttpTransport implements BlockingSyncTransport {
  readonly #ctx: ContextSource;
  readonly #http: BlockingHttpFetch;
  constructor(ctx: ContextSource, http: BlockingHttpFetch) {
    this.#ctx = ctx;
    this.#http = http;
  }
  push(chunk: PushChunk): SyncStatus | null {
    return runHttpBlocking(pushCall(this.#ctx(), chunk), this.#http);
  }
  pull(req: PullRequest): PullBatch {
    return runHttpBlocking(pullCall(this.#ctx(), req), this.#http);
  }
  download(url: string): Uint8Array {
    return runHttpBlocking(downloadCall(url), this.#http);
  }
  status(): SyncStatus | null {
    return runHttpBlocking(statusCall(this.#ctx()), this.#http);
  }
}
