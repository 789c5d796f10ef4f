/**
 * One typed GraphQL-over-HTTP call: POST { query, variables, operationName } through an injected
 * `fetch`; the result's `data` or one {@link ClientError}.
 */
import { fromGraphQLErrors, fromHttpStatus, networkError } from './errors.ts';
import type { GraphQLErrorPayload } from './errors.ts';
import type { TypedDocument } from './types.ts';

export interface ExecuteOptions {
  url: string;
  fetch: typeof globalThis.fetch;
  /** Sent with every request (authorization included by the caller). */
  headers: Readonly<Record<string, string>>;
  signal?: AbortSignal | undefined;
}

const OPERATION_NAME = /\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/;

/** The first operation's name in a document (documents from codegen always have one). */
export function operationName(query: string): string | undefined {
  return OPERATION_NAME.exec(query)?.[1];
}

interface GraphQLResponse {
  data?: unknown;
  errors?: readonly GraphQLErrorPayload[];
}

function isGraphQLResponse(body: unknown): body is GraphQLResponse {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const errors = (body as { errors?: unknown }).errors;
  return 'data' in body || Array.isArray(errors);
}

export async function execute<TResult, TVariables>(
  document: TypedDocument<TResult, TVariables>,
  variables: TVariables | undefined,
  options: ExecuteOptions,
): Promise<TResult> {
  const query = document.toString();
  const name = operationName(query);
  const payload = JSON.stringify({ query, variables: variables ?? {}, ...(name === undefined ? {} : { operationName: name }) });
  let response: Response;
  let text: string;
  try {
    response = await options.fetch(options.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...options.headers },
      body: payload,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    text = await response.text();
  } catch (e) {
    throw networkError(`${name ?? 'request'} to ${options.url} failed`, e);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw fromHttpStatus(response.status, `not a GraphQL response (${text.slice(0, 120)})`);
  }
  if (!isGraphQLResponse(body)) throw fromHttpStatus(response.status, 'not a GraphQL response');
  if (body.errors !== undefined && body.errors.length > 0) {
    throw fromGraphQLErrors(body.errors, { status: response.status, data: body.data ?? null });
  }
  if (body.data === null || body.data === undefined) throw fromHttpStatus(response.status, 'response without data');
  return body.data as TResult;
}
