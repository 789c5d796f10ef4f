/**
 * Sync errors with stable wire codes (docs/PROTOCOL.md "Errors"). HTTP answers them with a
 * JSON:API style body; G3 `apply` reports payload failures inside SyncStatus `failures.apply`.
 */

import { SyncErrorCode } from '@offsync/core';

// The codes are part of the wire protocol (core protocol/wire.ts), shared with OffSync's client.
export { SyncErrorCode };

const STATUS: Record<SyncErrorCode, number> = {
  unauthorized: 401,
  forbidden: 403,
  site_forbidden: 403,
  database_not_found: 404,
  sync_disabled: 403,
  invalid_site_id: 400,
  invalid_request: 400,
  invalid_payload: 400,
  payload_too_large: 413,
  batch_invalid: 409,
  batch_too_large: 413,
  batch_buffers_full: 429,
  schema_hash_unknown: 422,
  unknown_table: 422,
  unknown_column: 422,
  apply_failed: 422,
  artifact_invalid: 403,
  artifact_expired: 410,
  artifact_used: 410,
  artifact_mismatch: 403,
  not_found: 404,
  method_not_allowed: 405,
  server_busy: 503,
  database_file_missing: 503,
  rate_limited: 429,
  quota_exceeded: 429,
  database_unavailable: 503,
  not_supported: 501,
  resync_required: 410,
  internal_error: 500,
};

const TITLE: Record<SyncErrorCode, string> = {
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  site_forbidden: 'Site belongs to another principal',
  database_not_found: 'Database not found',
  sync_disabled: 'Sync disabled',
  invalid_site_id: 'Invalid site id',
  invalid_request: 'Invalid request',
  invalid_payload: 'Invalid payload',
  payload_too_large: 'Payload too large',
  batch_invalid: 'Chunked batch refused',
  batch_too_large: 'Chunked batch too large',
  batch_buffers_full: 'Chunked batch buffers full',
  schema_hash_unknown: 'Schema hash unknown',
  unknown_table: 'Unknown table',
  unknown_column: 'Unknown column',
  apply_failed: 'Apply failed',
  artifact_invalid: 'Invalid artifact URL',
  artifact_expired: 'Artifact URL expired',
  artifact_used: 'Artifact URL already used',
  artifact_mismatch: 'Artifact URL belongs to another database or site',
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed',
  server_busy: 'Server busy',
  database_file_missing: 'Database file missing',
  rate_limited: 'Too many requests',
  quota_exceeded: 'Quota exceeded',
  database_unavailable: 'Database unavailable',
  not_supported: 'Not supported for this database',
  resync_required: 'Resync required',
  internal_error: 'Internal error',
};

/**
 * Codes a client may retry unchanged later (the server side may change: deploy, migrate, restart).
 * Not `schema_hash_unknown`: the device's tables differ from the server's, and re-sending the same
 * payload cannot succeed until someone changes a schema (the message names the tables).
 */
const RETRYABLE = new Set<SyncErrorCode>(['unknown_table', 'unknown_column', 'server_busy', 'database_file_missing', 'rate_limited', 'quota_exceeded', 'batch_buffers_full', 'database_unavailable', 'internal_error']);

export class SyncError extends Error {
  override readonly name = 'SyncError';
  readonly code: SyncErrorCode;
  readonly status: number;
  readonly title: string;
  /** Safe to show the caller (never for 401). */
  readonly detail: string | undefined;
  /** Whole seconds for a `Retry-After` header (429 answers). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: SyncErrorCode, detail?: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(detail ?? TITLE[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = STATUS[code];
    this.title = TITLE[code];
    this.detail = code === 'unauthorized' ? undefined : detail;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /** JSON:API style error document. */
  toBody(): { errors: Array<{ status: string; code: string; title: string; detail?: string }> } {
    const e: { status: string; code: string; title: string; detail?: string } = { status: String(this.status), code: this.code, title: this.title };
    if (this.detail !== undefined) e.detail = this.detail;
    return { errors: [e] };
  }
}

const CORE_MAP: Record<string, SyncErrorCode> = {
  CORE_PAYLOAD_TOO_LARGE: 'payload_too_large',
  /** A clock beyond MAX_CLOCK (docs/PROTOCOL.md "Limits"): the payload is refused whole, never retryable. */
  CORE_CLOCK_OUT_OF_RANGE: 'invalid_payload',
  CORE_SCHEMA_HASH_UNKNOWN: 'schema_hash_unknown',
  CORE_UNKNOWN_TABLE: 'unknown_table',
  CORE_UNKNOWN_COLUMN: 'unknown_column',
  CORE_RLS_DENIED: 'forbidden',
  CORE_APPLY_FAILED: 'apply_failed',
  /** The cursor is below the compaction floor (docs/PROTOCOL.md "Compaction and the resync horizon"): download from 0 again. */
  CORE_RESYNC_REQUIRED: 'resync_required',
};

function errorCode(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const code: unknown = Reflect.get(e, 'code');
  return typeof code === 'string' ? code : undefined;
}

/**
 * Maps a failure of decoding or merging an uploaded payload (CoreError codes of
 * `@offsync/core`, SQLite constraint errors) to a SyncError. Unknown errors become
 * `internal_error` without detail.
 */
export function toSyncError(e: unknown): SyncError {
  if (e instanceof SyncError) return e;
  const code = errorCode(e);
  const message = e instanceof Error ? e.message : String(e);
  if (code !== undefined) {
    const mapped = CORE_MAP[code];
    if (mapped !== undefined) return new SyncError(mapped, message, { cause: e });
    if (code.startsWith('CORE_PAYLOAD_') || code === 'CORE_PK_INVALID' || code === 'CORE_SITE_ID_INVALID') {
      return new SyncError('invalid_payload', message, { cause: e });
    }
    if (code.startsWith('SQLITE_CONSTRAINT')) return new SyncError('apply_failed', message, { cause: e });
    // Another connection (a central worker's long merge) holds the write lock past the busy timeout.
    if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_')) return new SyncError('server_busy', 'The database is busy; retry shortly', { cause: e });
    // PostgreSQL SQLSTATEs: integrity and data errors refuse the payload; a lost or refused
    // connection (class 08, 57P0x shutdown, 53xxx resources, node's ECONN*) is retryable.
    if (code === '42501') return new SyncError('forbidden', message, { cause: e }); // insufficient_privilege, RLS WITH CHECK
    if (/^(22|23)[0-9A-Z]{3}$/.test(code)) return new SyncError('apply_failed', message, { cause: e });
    if (/^(08|53)[0-9A-Z]{3}$/.test(code) || /^57P0[1-3]$/.test(code) || /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT)$/.test(code) || code === 'ENOTFOUND') {
      return new SyncError('database_unavailable', 'The database cannot be reached right now; retry later', { cause: e });
    }
  }
  // node-postgres: no pooled connection became free in time (an overloaded database): retry later.
  if (e instanceof Error && /^timeout exceeded when trying to connect$|^Connection terminated due to connection timeout$/.test(e.message)) {
    return new SyncError('database_unavailable', 'The database is busy; retry shortly', { cause: e });
  }
  return new SyncError('internal_error', undefined, { cause: e });
}
