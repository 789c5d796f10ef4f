/**
 * `@offsync/core`: the CRDT engine shared by the OffSync server and clients — payload codec
 * (SQLite Sync wire format), clocks, merge rules, schema rules and the engine over the storage
 * port. Driver-specific code lives in `@offsync/core/sqlite`; test support in `@offsync/core/testing`.
 */
export { CoreError, CoreErrorCode, isCoreError } from './errors.ts';
export { CrdtAlgorithm, RIP_SENTINEL } from './types.ts';
export type { Change, SqlValue } from './types.ts';

export { checksum48, fnv1a64 } from './codec/fnv.ts';
export { lz4BlockCompress, lz4BlockDecompress } from './codec/lz4-block.ts';
export { decodePk, encodePk } from './codec/pk.ts';
export {
  DEFAULT_LIB_VERSION,
  decodePayload,
  decodePayloadHeader,
  encodePayload,
  DEFAULT_PAYLOAD_LIMITS,
  hasPayloadSignature,
  MAX_CLOCK,
  PAYLOAD_HEADER_SIZE,
  PayloadEncoder,
  fragmentAssemblerFor,
  fragmentChange,
  parseFragmentName,
} from './codec/payload.ts';
export type { DecodedPayload, PayloadDecodeLimits, PayloadEncodeOptions, PayloadHeader } from './codec/payload.ts';

export { parseSiteId, toHex, fromHex, uuidText, uuidv7, SITE_ID_BYTES } from './clock/site-id.ts';
export { compareForMerge } from './merge/compare.ts';
export { InitFlags, listUserTableNames, readTableSchema, schemaIssues } from './schema/introspect.ts';
export type { ColumnInfo, SchemaIssue, TableSchema } from './schema/introspect.ts';
export { columnListSchemaHash, ddlTextSchemaHash, normalizedFnv64, schemaHashFromInt64, schemaHashToInt64 } from './schema/schema-hash.ts';

export { SyncEngine } from './engine/engine.ts';
export { primaryKeyChangeError } from './engine/contract.ts';
export type { ContractApplyOptions, ContractFeedRequest, ContractPayloadOptions, SyncEngineContract } from './engine/contract.ts';
export type { EngineOptions, FeedRequest, PayloadApplyOptions, SyncedTable, TableInfo } from './engine/engine.ts';
export type { ApplyOptions, ApplyResult, ConflictKind, ConflictSide, MergeConflict, RejectedRow, RowOperation, RowTransition, RowVerdict, RowWrite } from './engine/apply.ts';
export { RejectionCode, pkTypeProblem } from './engine/apply.ts';
export type { Tombstone } from './engine/tombstones.ts';
export { readTombstone } from './engine/tombstones.ts';
export type { Cursor, FeedOptions } from './engine/extract.ts';
export { acknowledgedBy, COMPACTED_UPTO_SETTING } from './engine/compaction.ts';
export type { CompactionResult } from './engine/compaction.ts';
export { SyncErrorCode } from './protocol/wire.ts';
export type { ApplyFailure, CheckChunk, CheckData, RejectedReport, SyncStatus, SyncStatusReply, VersionWindow } from './protocol/wire.ts';
export { resolveAlgorithm } from './engine/algorithms.ts';
export type { SqlDriver, SqlRow, SqlStatement } from './storage/driver.ts';
