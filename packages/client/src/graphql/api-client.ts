/**
 * createApiClient: typed calls to the OffSync control-plane API. `execute` over `fetch`,
 * `subscribe` over graphql-ws, plus one method per operation in `src/graphql/operations`
 * (derived from the generated `operations` map; e.g. `client.createProject({ name, kind })`).
 */
import type { Client } from 'graphql-ws';
import { operations } from '../generated/operations.ts';
import { execute } from './execute.ts';
import { createSubscriptionClient, subscribe } from './subscribe.ts';
import type { HeadersInit, TypedDocument, VariablesArg } from './types.ts';

export interface ApiClientOptions {
  /** The GraphQL endpoint, e.g. `http://127.0.0.1:4000/graphql`. */
  url: string;
  /** Admin key (or another bearer credential the server accepts). */
  token: string;
  /** Default: globalThis.fetch. */
  fetch?: typeof globalThis.fetch;
  /** WebSocket constructor for subscriptions (e.g. `ws`); default: globalThis.WebSocket. */
  webSocketImpl?: unknown;
  /** Extra HTTP headers; `authorization` is always `Bearer <token>`. */
  headers?: HeadersInit;
  /** Subscription endpoint; default: `url` with http(s) → ws(s). */
  wsUrl?: string;
  /** graphql-ws reconnect attempts (default 5); refused credentials are never retried. */
  retryAttempts?: number;
  retryWait?: (retries: number) => Promise<void>;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** Variables (optional when the operation has no required ones), then per-request options. */
export type ExecuteArgs<V> = Record<string, never> extends V
  ? [variables?: V, options?: RequestOptions]
  : [variables: V, options?: RequestOptions];

type Operations = typeof operations;
type Variables = Readonly<Record<string, unknown>>;

type OperationMethod<O> = O extends { kind: 'subscription'; document: TypedDocument<infer R, infer V> }
  ? (...args: VariablesArg<V>) => AsyncIterableIterator<R>
  : O extends { document: TypedDocument<infer R, infer V> }
    ? (...args: ExecuteArgs<V>) => Promise<R>
    : never;

/** One method per generated operation: queries/mutations return a Promise, subscriptions an async iterator. */
export type OperationMethods = { readonly [K in keyof Operations]: OperationMethod<Operations[K]> };

export type OperationName = keyof Operations;

export interface ApiClientCore {
  execute<TResult, TVariables>(document: TypedDocument<TResult, TVariables>, ...args: ExecuteArgs<TVariables>): Promise<TResult>;
  subscribe<TResult, TVariables>(document: TypedDocument<TResult, TVariables>, ...args: VariablesArg<TVariables>): AsyncIterableIterator<TResult>;
  /** Closes the subscription socket (if one was opened). */
  dispose(): Promise<void>;
}

export interface ApiClient extends ApiClientCore, OperationMethods {}

export function toWebSocketUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const authorization = `Bearer ${options.token}`;
  const headers = (): Readonly<Record<string, string>> => {
    const extra = typeof options.headers === 'function' ? options.headers() : (options.headers ?? {});
    return { ...extra, authorization };
  };
  let ws: Client | null = null;
  const socket = (): Client =>
    (ws ??= createSubscriptionClient({
      url: options.wsUrl ?? toWebSocketUrl(options.url),
      token: options.token,
      webSocketImpl: options.webSocketImpl,
      ...(options.retryAttempts === undefined ? {} : { retryAttempts: options.retryAttempts }),
      ...(options.retryWait === undefined ? {} : { retryWait: options.retryWait }),
    }));

  const core: ApiClientCore = {
    execute: (document, ...[variables, request]) =>
      execute(document, variables, { url: options.url, fetch: fetchImpl, headers: headers(), signal: request?.signal }),
    subscribe: (document, ...[variables]) => subscribe(socket(), document, variables),
    async dispose() {
      const current = ws;
      ws = null;
      await current?.dispose();
    },
  };

  const methods: Record<string, unknown> = {};
  for (const [name, op] of Object.entries(operations)) {
    if (name in core) throw new Error(`operation ${name} collides with an ApiClient method; rename it`);
    // Erased here; OperationMethods restores each operation's own types.
    const document = op.document as TypedDocument<unknown, never> as TypedDocument<unknown, Variables>;
    methods[name] =
      op.kind === 'subscription'
        ? (variables?: Variables) => subscribe(socket(), document, variables)
        : (variables?: Variables, request?: RequestOptions) =>
            execute(document, variables, { url: options.url, fetch: fetchImpl, headers: headers(), signal: request?.signal });
  }
  return Object.freeze({ ...(methods as OperationMethods), ...core });
}
