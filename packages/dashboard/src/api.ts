/**
 * The dashboard's only way to the server: the generated typed client of `@offsync/client`
 * (GraphQL over HTTP for queries and mutations, graphql-ws for subscriptions), on the same origin.
 */
import { createApiClient, isClientError, ClientErrorCode } from '@offsync/client';
import type { ApiClient } from '@offsync/client';
import type { AlterRefusalInfo } from './logic/alter.ts';

export type { ApiClient };

/** sessionStorage key of the admin key: entered once per browser session, gone when the tab closes. */
export const ADMIN_KEY_STORAGE = 'offsync.adminKey';

export function graphqlUrl(origin: string): string {
  return new URL('/graphql', origin).toString();
}

export function createDashboardClient(token: string, origin: string = window.location.origin): ApiClient {
  return createApiClient({ url: graphqlUrl(origin), token, retryAttempts: 20, retryWait: (n) => new Promise((r) => setTimeout(r, Math.min(500 * 2 ** n, 10_000))) });
}

export interface ErrorInfo {
  message: string;
  /** What the user can do about it. */
  hint: string;
  /** The server's `extensions.code`, when it sent one. */
  code?: string | undefined;
}

const HINTS: Record<string, string> = {
  NOT_FOUND: 'It may have been deleted elsewhere: reload the list.',
  VALIDATION_FAILED: 'Correct the highlighted value and try again.',
  SCHEMA_ISSUES: 'Fix the table in your database (see the issues beside it), then deploy again.',
  CONFLICT: 'The current state does not allow this; reload and check the settings.',
  NOT_SUPPORTED_YET: 'This database kind does not support it yet.',
  CONNECTION_FAILED: 'Check the connection settings and that the database server is reachable.',
  FORBIDDEN: 'The admin key is not allowed to do this.',
  ALTER_REFUSED: 'Nothing was changed: correct the statement and run again.',
  ALTER_FAILED: 'Nothing was changed: correct the statement and run again.',
};

/** The API's message and what to do about it, for any error the client throws. */
export function describeError(e: unknown): ErrorInfo {
  if (isClientError(e)) {
    if (e.code === ClientErrorCode.NETWORK) return { message: e.message, hint: 'The server did not answer. Check that OffSync is running, then retry.' };
    if (e.code === ClientErrorCode.UNAUTHENTICATED) return { message: e.message, hint: 'The admin key was refused. Sign out and sign in with a valid admin key.', code: e.serverCode };
    if (e.code === ClientErrorCode.VALIDATION) return { message: e.message, hint: 'The dashboard and the server disagree on the API: rebuild the dashboard (npm run build -w @offsync/dashboard).', code: e.serverCode };
    if (e.code === ClientErrorCode.SERVER) return { message: e.message, hint: 'The server failed. Its log has the cause; retry in a moment.', code: e.serverCode };
    return { message: e.message, hint: (e.serverCode && HINTS[e.serverCode]) ?? 'Check the input and try again.', code: e.serverCode };
  }
  return { message: e instanceof Error ? e.message : String(e), hint: 'Retry; if it persists, reload the page.' };
}

/** Per-table refusals of a SCHEMA_ISSUES error (`extensions.refused`), else empty. */
export interface RefusedTable { table: string; issues: { rule: string; message: string }[] }

export function refusedTables(e: unknown): RefusedTable[] {
  if (!isClientError(e) || e.serverCode !== 'SCHEMA_ISSUES') return [];
  const refused = e.errors[0]?.extensions?.['refused'];
  if (!Array.isArray(refused)) return [];
  return refused.filter((r): r is RefusedTable => typeof r === 'object' && r !== null && typeof (r as RefusedTable).table === 'string' && Array.isArray((r as RefusedTable).issues));
}

/**
 * A deployTables refusal of block columns (VALIDATION_FAILED / NOT_SUPPORTED_YET with
 * `extensions.reason` BLOCK_… and the table), as a per-table refusal; else empty.
 */
export function blockColumnRefusals(e: unknown): RefusedTable[] {
  if (!isClientError(e)) return [];
  const ext = e.errors[0]?.extensions;
  const reason = ext?.['reason'];
  const table = ext?.['table'];
  if (typeof reason !== 'string' || !reason.startsWith('BLOCK_') || typeof table !== 'string') return [];
  return [{ table, issues: [{ rule: reason, message: e.message }] }];
}

/**
 * An alterTable refusal (ALTER_REFUSED with `extensions.reason`, or ALTER_FAILED: the database
 * rejected a statement), with the statement it concerns (`extensions.statement`); else undefined.
 */
export function alterRefusal(e: unknown): AlterRefusalInfo | undefined {
  if (!isClientError(e) || (e.serverCode !== 'ALTER_REFUSED' && e.serverCode !== 'ALTER_FAILED')) return undefined;
  const ext = e.errors[0]?.extensions ?? {};
  const reason = ext['reason'];
  const statement = ext['statement'];
  return {
    code: e.serverCode,
    reason: typeof reason === 'string' ? reason : undefined,
    statement: typeof statement === 'number' && Number.isInteger(statement) && statement >= 0 ? statement : undefined,
    message: e.message,
  };
}
