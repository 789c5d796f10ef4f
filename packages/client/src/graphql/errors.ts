/**
 * The API client's one error class. `code` is stable and coarse (what went wrong from the caller's
 * point of view); `serverCode` carries the server's `extensions.code` (e.g. NOT_FOUND, CONFLICT,
 * SCHEMA_ISSUES) when the server sent one. Codes are never renamed or reused.
 */

export const ClientErrorCode = {
  /** The request did not get a GraphQL answer: connection refused/reset, timeout, abort, gateway 502/503/504, socket closed. */
  NETWORK: 'CLIENT_NETWORK',
  /** No token, or the server refused it (HTTP 401/403, extensions.code UNAUTHENTICATED/FORBIDDEN, close 4401/4403). */
  UNAUTHENTICATED: 'CLIENT_UNAUTHENTICATED',
  /** The document or variables do not validate against the server's schema (client and server disagree). */
  VALIDATION: 'CLIENT_VALIDATION',
  /** The server failed: masked internal error, 5xx, or an answer that is not a GraphQL response. */
  SERVER: 'CLIENT_SERVER',
  /** The server refused the operation on purpose; `serverCode` says why (NOT_FOUND, CONFLICT, VALIDATION_FAILED, …). */
  DOMAIN: 'CLIENT_DOMAIN',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** A GraphQL error as received on the wire (graphql-js `GraphQLFormattedError`). */
export interface GraphQLErrorPayload {
  readonly message: string;
  readonly path?: ReadonlyArray<string | number>;
  readonly locations?: ReadonlyArray<{ readonly line: number; readonly column: number }>;
  readonly extensions?: Readonly<Record<string, unknown>>;
}

export interface ClientErrorOptions {
  cause?: unknown;
  serverCode?: string;
  status?: number;
  errors?: readonly GraphQLErrorPayload[];
  /** Partial `data` the server returned alongside the errors. */
  data?: unknown;
}

export class ClientError extends Error {
  override readonly name = 'ClientError';
  readonly code: ClientErrorCode;
  /** The server's `extensions.code` of the first error, when present. */
  readonly serverCode: string | undefined;
  /** HTTP status, or the WebSocket close code for subscriptions. */
  readonly status: number | undefined;
  readonly errors: readonly GraphQLErrorPayload[];
  readonly data: unknown;

  constructor(code: ClientErrorCode, message: string, options: ClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.serverCode = options.serverCode;
    this.status = options.status;
    this.errors = options.errors ?? [];
    this.data = options.data;
  }

  /** Worth retrying as is (network trouble or a server failure); never for auth, validation or domain errors. */
  get retryable(): boolean {
    return this.code === ClientErrorCode.NETWORK || this.code === ClientErrorCode.SERVER;
  }
}

export function isClientError(e: unknown, code?: ClientErrorCode): e is ClientError {
  return e instanceof ClientError && (code === undefined || e.code === code);
}

/** Codes graphql-js / Yoga put on requests that do not validate. */
const VALIDATION_CODES: ReadonlySet<string> = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_FOUND']);
const AUTH_CODES: ReadonlySet<string> = new Set(['UNAUTHENTICATED', 'FORBIDDEN']);
const SERVER_CODES: ReadonlySet<string> = new Set(['INTERNAL_SERVER_ERROR']);

function serverCodeOf(error: GraphQLErrorPayload | undefined): string | undefined {
  const code = error?.extensions?.['code'];
  return typeof code === 'string' ? code : undefined;
}

/** Classifies a GraphQL `errors` array (HTTP or WebSocket) into one ClientError. */
export function fromGraphQLErrors(errors: readonly GraphQLErrorPayload[], extra: { status?: number; data?: unknown } = {}): ClientError {
  const first = errors[0];
  const serverCode = serverCodeOf(first);
  const message = errors.map((e) => e.message).join('; ') || 'GraphQL error';
  const base: ClientErrorOptions = { errors, ...(serverCode === undefined ? {} : { serverCode }), ...extra };
  let code: ClientErrorCode;
  if (serverCode !== undefined && AUTH_CODES.has(serverCode)) code = ClientErrorCode.UNAUTHENTICATED;
  else if (serverCode !== undefined && VALIDATION_CODES.has(serverCode)) code = ClientErrorCode.VALIDATION;
  else if (serverCode === undefined || SERVER_CODES.has(serverCode)) {
    // No code: a masked error, or graphql-js validation errors sent without extensions (graphql-ws).
    code = first?.locations !== undefined && first.path === undefined ? ClientErrorCode.VALIDATION : ClientErrorCode.SERVER;
  } else code = ClientErrorCode.DOMAIN;
  return new ClientError(code, message, base);
}

/** A response that is not a GraphQL result (no JSON, or neither data nor errors). */
export function fromHttpStatus(status: number, detail: string): ClientError {
  if (status === 401 || status === 403) return new ClientError(ClientErrorCode.UNAUTHENTICATED, `HTTP ${status}: ${detail}`, { status });
  if (status === 502 || status === 503 || status === 504) return new ClientError(ClientErrorCode.NETWORK, `HTTP ${status}: ${detail}`, { status });
  return new ClientError(ClientErrorCode.SERVER, `HTTP ${status}: ${detail}`, { status });
}

export function networkError(message: string, cause: unknown): ClientError {
  const reason = cause instanceof Error ? `: ${cause.message}` : '';
  return new ClientError(ClientErrorCode.NETWORK, `${message}${reason}`, { cause });
}
