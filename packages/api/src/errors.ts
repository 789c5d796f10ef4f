/**
 * API errors. Every failure the control plane reports on purpose is an {@link ApiError} with a
 * stable `code` from {@link ApiErrorCode}; it reaches GraphQL clients as `extensions.code`.
 * Codes are never renamed or reused. Everything else is masked by Yoga.
 */
import { GraphQLError } from 'graphql';

export const ApiErrorCode = {
  /** No admin key, or an unknown one. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** Authenticated, but not allowed to do this. */
  FORBIDDEN: 'FORBIDDEN',
  /** The project, database, table, key or device does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** An input failed validation (name, host, port, URL, expression, …). */
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  /** Tables cannot be synced as they are (docs/PROTOCOL.md §P6); details per table. */
  SCHEMA_ISSUES: 'SCHEMA_ISSUES',
  /** The operation conflicts with existing state (duplicate name, wrong database kind, …). */
  CONFLICT: 'CONFLICT',
  /** The operation exists in the API but is not implemented for this database kind yet. */
  NOT_SUPPORTED_YET: 'NOT_SUPPORTED_YET',
  /** The database behind a database entry cannot be reached. */
  CONNECTION_FAILED: 'CONNECTION_FAILED',
  /** A live `changes` subscription ended: its credential was revoked (or is no longer valid). */
  CREDENTIAL_REVOKED: 'CREDENTIAL_REVOKED',
  /** A live `changes` subscription ended: its credential expired. */
  CREDENTIAL_EXPIRED: 'CREDENTIAL_EXPIRED',
  /** A live `changes` subscription ended: its device (site) was removed. */
  DEVICE_REMOVED: 'DEVICE_REMOVED',
  /** A live `changes` subscription ended: OffSync was disabled for its database (or the database deleted). */
  SYNC_DISABLED: 'SYNC_DISABLED',
  /** A live `changes` subscription of a user ended: the database's RLS mode changed. */
  RLS_MODE_CHANGED: 'RLS_MODE_CHANGED',
  /** alterTable: a statement outside the accepted ALTER TABLE grammar, of another table, or changing the key (details.reason); nothing changed. */
  ALTER_REFUSED: 'ALTER_REFUSED',
  /** alterTable: the database rejected a statement (details.statement, details.message); nothing changed. */
  ALTER_FAILED: 'ALTER_FAILED',
} as const;
export type ApiErrorCode = (typeof ApiErrorCode)[keyof typeof ApiErrorCode];

const httpStatus: Record<ApiErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  VALIDATION_FAILED: 400,
  SCHEMA_ISSUES: 422,
  CONFLICT: 409,
  NOT_SUPPORTED_YET: 501,
  CONNECTION_FAILED: 502,
  CREDENTIAL_REVOKED: 401,
  CREDENTIAL_EXPIRED: 401,
  DEVICE_REMOVED: 403,
  SYNC_DISABLED: 403,
  RLS_MODE_CHANGED: 409,
  ALTER_REFUSED: 422,
  ALTER_FAILED: 422,
};

/** Base class of every error the API throws on purpose. */
export class ApiError extends Error {
  override readonly name: string = 'ApiError';
  readonly code: ApiErrorCode;
  /** Machine-readable detail for clients (field, table, per-table issues). Never secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ApiErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details ?? {};
  }
}

export function isApiError(e: unknown, code?: ApiErrorCode): e is ApiError {
  return e instanceof ApiError && (code === undefined || e.code === code);
}

/**
 * Domain error → GraphQLError with `extensions.code` (kept unmasked by Yoga). `located` is the
 * GraphQLError graphql-js wrapped it in, whose path and locations are kept.
 */
export function toGraphQLError(e: ApiError, located?: GraphQLError): GraphQLError {
  return new GraphQLError(e.message, {
    ...(located?.nodes ? { nodes: located.nodes } : {}),
    ...(located?.path ? { path: located.path } : {}),
    extensions: { ...e.details, code: e.code, http: { status: httpStatus[e.code] } },
  });
}

/** Finds an ApiError in an error's `originalError` chain (duck-typed: graphql may be loaded twice). */
function findApiError(error: unknown): { api: ApiError; located: GraphQLError | undefined } | null {
  let current: unknown = error;
  let located: GraphQLError | undefined;
  for (let i = 0; i < 5 && current !== null && current !== undefined; i++) {
    if (current instanceof ApiError) return { api: current, located };
    if (typeof current === 'object' && 'path' in current && 'locations' in current) located ??= current as GraphQLError;
    current = (current as { originalError?: unknown }).originalError;
  }
  return null;
}

/** Yoga `maskError`: domain errors (ApiError anywhere in the chain) pass, everything else is masked. */
export function unmaskApiErrors(mask: (error: unknown, message: string, isDev?: boolean) => Error) {
  return (error: unknown, message: string, isDev?: boolean): Error => {
    const found = findApiError(error);
    return found === null ? mask(error, message, isDev) : toGraphQLError(found.api, found.located);
  };
}
