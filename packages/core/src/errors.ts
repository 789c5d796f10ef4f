/**
 * Core errors. Every failure core reports carries a stable `code` from {@link CoreErrorCode};
 * codes are never renamed or reused (clients and the API map them to wire errors).
 */
export const CoreErrorCode = {
  /** Payload does not start with the `CLSY` signature. */
  PAYLOAD_BAD_SIGNATURE: 'CORE_PAYLOAD_BAD_SIGNATURE',
  /** Payload header version is not 1, 2 or 3. */
  PAYLOAD_UNSUPPORTED_VERSION: 'CORE_PAYLOAD_UNSUPPORTED_VERSION',
  /** Header field out of range (ncols = 0, absurd expanded size or row count). */
  PAYLOAD_BAD_HEADER: 'CORE_PAYLOAD_BAD_HEADER',
  /** v2 checksum does not match the body bytes. */
  PAYLOAD_BAD_CHECKSUM: 'CORE_PAYLOAD_BAD_CHECKSUM',
  /** LZ4 block is malformed or does not expand to the announced size. */
  PAYLOAD_BAD_COMPRESSION: 'CORE_PAYLOAD_BAD_COMPRESSION',
  /** Body ends before the announced rows or a value is cut short. */
  PAYLOAD_TRUNCATED: 'CORE_PAYLOAD_TRUNCATED',
  /** A value has an invalid type byte, width or a field of the wrong type. */
  PAYLOAD_BAD_VALUE: 'CORE_PAYLOAD_BAD_VALUE',
  /** Bytes left over after the announced rows. */
  PAYLOAD_TRAILING_BYTES: 'CORE_PAYLOAD_TRAILING_BYTES',
  /** Payload or value larger than the configured limit. */
  PAYLOAD_TOO_LARGE: 'CORE_PAYLOAD_TOO_LARGE',
  /** A fragment row (payload v3) is malformed, disagrees with its stream, or its value is incomplete at the end of the batch. */
  PAYLOAD_BAD_FRAGMENT: 'CORE_PAYLOAD_BAD_FRAGMENT',
  /** A clock (db_version, seq, col_version, cl) beyond `MAX_CLOCK` (2^48-1), or a merge that would take the local clock out of the safe-integer range. */
  CLOCK_OUT_OF_RANGE: 'CORE_CLOCK_OUT_OF_RANGE',
  /** Primary-key blob malformed. */
  PK_INVALID: 'CORE_PK_INVALID',
  /** A change names a table that is not synced here. */
  UNKNOWN_TABLE: 'CORE_UNKNOWN_TABLE',
  /** A change names a column the table does not have. */
  UNKNOWN_COLUMN: 'CORE_UNKNOWN_COLUMN',
  /** Payload schema hash is not in this database's history. */
  SCHEMA_HASH_UNKNOWN: 'CORE_SCHEMA_HASH_UNKNOWN',
  /** A table fails a schema rule of docs/PROTOCOL.md §P6. */
  SCHEMA_INVALID: 'CORE_SCHEMA_INVALID',
  /** Unknown or unsupported CRDT algorithm. */
  ALGORITHM_UNSUPPORTED: 'CORE_ALGORITHM_UNSUPPORTED',
  /** Table already initialised with another algorithm. */
  ALGORITHM_CHANGE: 'CORE_ALGORITHM_CHANGE',
  /** A change was refused by a row-level security policy. */
  RLS_DENIED: 'CORE_RLS_DENIED',
  /** An RLS expression failed validation. */
  RLS_INVALID_EXPRESSION: 'CORE_RLS_INVALID_EXPRESSION',
  /** A site id is not 16 bytes / 32 hex digits. */
  SITE_ID_INVALID: 'CORE_SITE_ID_INVALID',
  /** A change could not be written (constraint failure in the base table, …). */
  APPLY_FAILED: 'CORE_APPLY_FAILED',
  /** Operation not valid in the current state (e.g. commit_alter without begin_alter). */
  INVALID_STATE: 'CORE_INVALID_STATE',
  /** Bad argument passed to a core function. */
  INVALID_ARGUMENT: 'CORE_INVALID_ARGUMENT',
  /** A feed cursor is below the compaction floor (deletions it has not seen were forgotten): the device must download from 0 again (docs/PROTOCOL.md "Compaction and the resync horizon"). */
  RESYNC_REQUIRED: 'CORE_RESYNC_REQUIRED',
} as const;
export type CoreErrorCode = (typeof CoreErrorCode)[keyof typeof CoreErrorCode];

/** Base class of every error core throws on purpose. */
export class CoreError extends Error {
  override readonly name: string = 'CoreError';
  readonly code: CoreErrorCode;
  /** Extra machine-readable detail (table, column, offset, …). Never contains secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: CoreErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details ?? {};
  }
}

/** True when `e` is a {@link CoreError}, optionally with the given code. */
export function isCoreError(e: unknown, code?: CoreErrorCode): e is CoreError {
  return e instanceof CoreError && (code === undefined || e.code === code);
}
