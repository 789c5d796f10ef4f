/**
 * The sync protocol's wire shapes (docs/PROTOCOL.md "Response shapes per generation", §P1), in one
 * place for the server (packages/api) and OffSync's client (packages/client): the JSON the G2b/G3
 * endpoints answer and take, cursors, upload windows and the stable error codes. Types and
 * constants only.
 */
import type { Cursor } from '../engine/extract.ts';

export type { Cursor };

/** Own versions `[dbVersionMin, dbVersionMax]` of the device an upload covers (device version space). */
export interface VersionWindow {
  dbVersionMin: number;
  dbVersionMax: number;
}

/** A refusal reported inside a 200 SyncStatus (G3 `failures.apply`: the batch was not applied). */
export interface ApplyFailure {
  code: string;
  message: string;
  retryable: boolean;
  failedAt?: string;
}

/** G3 `failures.rejected`: the batch was applied; these changes were rejected on their own and compensated. */
export interface RejectedReport {
  code: string;
  message: string;
  retryable: false;
  count: number;
  changes: Array<{ table: string; operation: string; code: string; reason: string }>;
}

/** SyncStatus: the reply of `status`, `apply` (G2b/G3) and the chunks of a batch. */
export interface SyncStatus {
  /** Highest own db_version the server has accepted (every window covering 1..v). */
  lastOptimisticVersion: number;
  lastConfirmedVersion: number;
  /** Version ranges announced but not contiguous with what is covered; non-empty = out of sync. */
  gaps: VersionWindow[];
}

/** A G3 SyncStatus reply that reports a refusal (`apply`) or changes rejected on their own (`rejected`). */
export interface SyncStatusReply extends SyncStatus {
  failures?: { apply?: ApplyFailure; rejected?: RejectedReport; check?: ApplyFailure };
}

/** One chunk of a G3 `check` reply with `check-chunks`: inline bytes (base64) or a URL to GET without credentials. */
export interface CheckChunk {
  url?: string;
  payload?: string;
  /** Resume position after this chunk (send it back as `cursor`). */
  cursor: number;
  /** On the last chunk of a complete reply: everything up to this server version was sent. */
  watermark?: number;
}

/** The `data` of a G3 `check` reply: one inline payload, or a batch of chunks. */
export type CheckData =
  | { payload: string; watermark: number; final: true }
  | { chunks: CheckChunk[]; final: boolean; nextCursor: number; watermark?: number };

/** Stable error codes of the sync endpoints (docs/PROTOCOL.md "Errors"). */
export const SyncErrorCode = {
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  /** The site id belongs to another principal (docs/PROTOCOL.md "Device identity"). */
  SITE_FORBIDDEN: 'site_forbidden',
  DATABASE_NOT_FOUND: 'database_not_found',
  SYNC_DISABLED: 'sync_disabled',
  INVALID_SITE_ID: 'invalid_site_id',
  INVALID_REQUEST: 'invalid_request',
  INVALID_PAYLOAD: 'invalid_payload',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  /** G3 chunked batch (docs/PROTOCOL.md "Chunked batches"): out of order, other window, conflicting re-send. */
  BATCH_INVALID: 'batch_invalid',
  /** A site's buffered G3 batch exceeds the per-site limit. */
  BATCH_TOO_LARGE: 'batch_too_large',
  /** All buffered G3 batches together exceed the global limit (retry later). */
  BATCH_BUFFERS_FULL: 'batch_buffers_full',
  SCHEMA_HASH_UNKNOWN: 'schema_hash_unknown',
  UNKNOWN_TABLE: 'unknown_table',
  UNKNOWN_COLUMN: 'unknown_column',
  APPLY_FAILED: 'apply_failed',
  ARTIFACT_INVALID: 'artifact_invalid',
  ARTIFACT_EXPIRED: 'artifact_expired',
  ARTIFACT_USED: 'artifact_used',
  ARTIFACT_MISMATCH: 'artifact_mismatch',
  NOT_FOUND: 'not_found',
  METHOD_NOT_ALLOWED: 'method_not_allowed',
  SERVER_BUSY: 'server_busy',
  /** The central database file is missing or was replaced; refused until `restoreConnection` (docs/ARCHITECTURE.md "Central files"). */
  DATABASE_FILE_MISSING: 'database_file_missing',
  /** Too many requests of one credential (token bucket); `Retry-After` says when to retry. */
  RATE_LIMITED: 'rate_limited',
  /** A per-credential quota (pending upload bytes, concurrent uploads) is full; `Retry-After`. */
  QUOTA_EXCEEDED: 'quota_exceeded',
  /** The central database (PostgreSQL) cannot be reached right now; retry later. */
  DATABASE_UNAVAILABLE: 'database_unavailable',
  /** The operation exists but not for this kind of database yet (e.g. a SQLite-only feature on POSTGRES). */
  NOT_SUPPORTED: 'not_supported',
  /** The device's download cursor is below the compaction floor: it must drop its synced state and download from 0 (docs/PROTOCOL.md "Compaction and the resync horizon"). */
  RESYNC_REQUIRED: 'resync_required',
  INTERNAL: 'internal_error',
} as const;
export type SyncErrorCode = (typeof SyncErrorCode)[keyof typeof SyncErrorCode];
