/** The sync domain: central databases, bookkeeping, artifacts and the SQLite Sync HTTP protocol. */
export { createSyncHttpHandler } from './http/handler.ts';
export type { SyncHttpHandler, SyncHttpOptions } from './http/handler.ts';
export { SyncService, createSyncService, normaliseSiteId } from './sync.service.ts';
export type { DownloadOptions, DownloadResult, ResolvedDatabase, SyncServiceOptions, SyncServiceSetup, UploadResult } from './sync.service.ts';
export { CentralDatabases, isValidDatabaseId } from './central-databases.ts';
export type { CentralDatabase } from './central-databases.ts';
export type { Central, CentralEnv, CentralScan, CentralUpload, SynchronousCentral } from './central.ts';
export { PeerState, coverage, unionWindows } from './peer-state.ts';
export type { PeerRecord, SyncStatus, VersionWindow } from './peer-state.ts';
export { ArtifactStore, ARTIFACT_PATH_PREFIX } from './artifacts.ts';
export { MAX_SEQ, compareCursor, scanPages } from './download-pages.ts';
export type { Cursor, PagePlan, ScanResult } from './download-pages.ts';
export { SyncError, SyncErrorCode, toSyncError } from './sync-errors.ts';
export { allowAllSyncDeps } from './sync-deps.ts';
export type {
  ChangesMerged, DatabaseTarget, DeviceSeen, Generation, Principal, PushTokenRegistration, RowFilter, SchemaHashMode, SyncDeps, SyncEngine, Traffic, RowJudge,
} from './sync-deps.ts';
export { ChunkBatches, chunkFieldsOf } from './chunk-batches.ts';
export type { Chunk, ChunkOutcome } from './chunk-batches.ts';
export { MemorySharedStore, RedisSharedStore, createRedisSharedStore } from './shared-store.ts';
export type { RedisKvClient, SharedStore } from './shared-store.ts';
export { createCentralFile, readFileIdentity } from './central-file.ts';
export { PgCentral } from './pg-central.ts';
export { rejectionLogOf } from './rejection-log.ts';
export type { RejectionEntry, RejectionInput } from './rejection-log.ts';
export { liveSessionsOf } from './graphql/live-sessions.ts';
export { changeHubOf } from './graphql/change-hub.ts';
export { decodeBlob, uint, windowOf } from './http/api-calls.ts';
export { parseJsonObject, readBody } from './http/io.ts';
export { parseSyncRoute, requestTarget } from './http/routes.ts';
export { compactDatabase, DEFAULT_RESYNC_HORIZON_MS, installCompaction, planCompaction } from './compaction.ts';
export type { Compaction, CompactionOptions, CompactionPlan, DatabaseCompaction, DeviceAck } from './compaction.ts';
