/**
 * Subscriptions over graphql-ws: one lazy connection per API client, authenticated with
 * `connectionParams: { authorization: 'Bearer <token>' }`. Each subscription is an async iterator of
 * typed results; `return()` (or `break` in `for await`) unsubscribes.
 */
import { createClient } from 'graphql-ws';
import type { Client } from 'graphql-ws';
import { ClientError, ClientErrorCode, fromGraphQLErrors, networkError } from './errors.ts';
import type { GraphQLErrorPayload } from './errors.ts';
import { operationName } from './execute.ts';
import type { TypedDocument } from './types.ts';

export interface SubscriptionTransportOptions {
  /** ws:// or wss:// URL of the GraphQL endpoint. */
  url: string;
  token: string;
  /** A WebSocket constructor (e.g. `ws` on Node < 22); default: globalThis.WebSocket. */
  webSocketImpl?: unknown;
  /** Reconnect attempts after a dropped socket (default 5). Auth refusals are never retried. */
  retryAttempts?: number;
  retryWait?: (retries: number) => Promise<void>;
}

/** Close codes graphql-ws servers use to refuse credentials. */
const AUTH_CLOSE_CODES: ReadonlySet<number> = new Set([4401, 4403]);
const VALIDATION_CLOSE_CODES: ReadonlySet<number> = new Set([4400, 4406]);

function closeCode(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e) || !('reason' in e)) return undefined;
  const code = (e as { code: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

function isErrorList(e: unknown): e is readonly GraphQLErrorPayload[] {
  return Array.isArray(e) && e.every((x: unknown) => typeof x === 'object' && x !== null && typeof (x as { message?: unknown }).message === 'string');
}

/** Whatever graphql-ws rejects with (CloseEvent, Error, GraphQLError[]) → ClientError. */
export function toSubscriptionError(e: unknown): ClientError {
  if (e instanceof ClientError) return e;
  if (isErrorList(e)) return fromGraphQLErrors(e);
  const code = closeCode(e);
  if (code !== undefined) {
    const reason = String((e as { reason: unknown }).reason ?? '');
    const message = `WebSocket closed ${code}${reason === '' ? '' : `: ${reason}`}`;
    if (AUTH_CLOSE_CODES.has(code)) return new ClientError(ClientErrorCode.UNAUTHENTICATED, message, { status: code, cause: e });
    if (VALIDATION_CLOSE_CODES.has(code)) return new ClientError(ClientErrorCode.VALIDATION, message, { status: code, cause: e });
    if (code === 4500) return new ClientError(ClientErrorCode.SERVER, message, { status: code, cause: e });
    return new ClientError(ClientErrorCode.NETWORK, message, { status: code, cause: e });
  }
  return networkError('subscription failed', e);
}

export function createSubscriptionClient(options: SubscriptionTransportOptions): Client {
  return createClient({
    url: options.url,
    webSocketImpl: options.webSocketImpl,
    lazy: true,
    connectionParams: { authorization: `Bearer ${options.token}` },
    retryAttempts: options.retryAttempts ?? 5,
    ...(options.retryWait === undefined ? {} : { retryWait: options.retryWait }),
    shouldRetry: (e) => {
      const code = closeCode(e);
      return code !== undefined && !AUTH_CLOSE_CODES.has(code) && !VALIDATION_CLOSE_CODES.has(code);
    },
  });
}

/** Typed async iterator over one subscription; errors surface as ClientError from `next()`. */
export function subscribe<TResult, TVariables>(
  client: Client,
  document: TypedDocument<TResult, TVariables>,
  variables: TVariables | undefined,
): AsyncIterableIterator<TResult> {
  const query = document.toString();
  const name = operationName(query);
  const inner = client.iterate<TResult>({
    query,
    variables: (variables ?? {}) as Record<string, unknown>,
    ...(name === undefined ? {} : { operationName: name }),
  });
  const iterator: AsyncIterableIterator<TResult> = {
    async next(): Promise<IteratorResult<TResult>> {
      let step: IteratorResult<{ data?: TResult | null | undefined; errors?: readonly GraphQLErrorPayload[] | undefined }>;
      try {
        step = await inner.next();
      } catch (e) {
        throw toSubscriptionError(e);
      }
      if (step.done === true) return { done: true, value: undefined };
      const { data, errors } = step.value;
      if (errors !== undefined && errors.length > 0) {
        await inner.return?.();
        throw fromGraphQLErrors(errors, { data: data ?? null });
      }
      if (data === null || data === undefined) {
        await inner.return?.();
        throw new ClientError(ClientErrorCode.SERVER, 'subscription result without data');
      }
      return { done: false, value: data };
    },
    async return(): Promise<IteratorResult<TResult>> {
      await inner.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
