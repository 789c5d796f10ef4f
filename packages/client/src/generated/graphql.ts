/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type ClientAuthMethod =
  | 'ACCESS_TOKEN'
  | 'API_KEY'
  | 'JWT';

export type ConflictFilter = {
  /** Primary key: a JSON array of the key values (e.g. ["t1"], [7]) or the text of a single-column key */
  key?: string | null | undefined;
  kind?: ConflictKind | null | undefined;
  /** Entries at or after this time */
  since?: string | null | undefined;
  /** Either side written by this device (32 hex digits) */
  siteId?: string | null | undefined;
  table?: string | null | undefined;
  /** Either side written by a device of this user, or the uploading user */
  userId?: string | null | undefined;
};

/** How a concurrent write lost in a merge */
export type ConflictKind =
  /** A delete ended a row last written by another device (the loser is the row) */
  | 'DELETE_OVER_UPDATE'
  /** An older edit of the cell (lower col_version) lost to a newer one of another device */
  | 'SUPERSEDED'
  /** Same col_version on both sides: the value order decided (LWW tiebreak) */
  | 'TIEBREAK'
  /** An edit of a cell arrived for a row a delete had ended */
  | 'UPDATE_LOST_TO_DELETE';

export type ConflictRestoreAction =
  /** The row was gone and was inserted again with the losing value */
  | 'INSERT'
  /** The cell (or the row’s columns) was updated to the losing value */
  | 'UPDATE';

/** OK; ERROR (see error); FILE_MISSING: the SQLite file is missing or replaced, sync refuses it until restoreConnection */
export type ConnectionState =
  | 'ERROR'
  | 'FILE_MISSING'
  | 'OK';

export type CrdtAlgorithm =
  | 'CLS'
  | 'GOS';

export type DatabaseFilter = {
  nameContains?: string | null | undefined;
  offSyncEnabled?: boolean | null | undefined;
};

export type DatabaseKind =
  | 'POSTGRES'
  | 'SQLITE';

export type DeployMode =
  /** `tables` are added to the synced set; the others stay */
  | 'ADD'
  /** `tables` stop syncing; the others stay */
  | 'REMOVE'
  /** The synced set becomes exactly `tables` (tables not listed stop syncing) */
  | 'REPLACE';

export type DeviceEventKind =
  | 'REGISTERED'
  | 'REMOVED'
  | 'SYNCED';

export type JwtMethod =
  | 'HS256'
  | 'JWKS';

export type MetricsBucket =
  | 'DAY'
  | 'HOUR'
  | 'MINUTE';

/** PostgreSQL connection settings. The password is write-only: stored encrypted, never returned */
export type PostgresConnectionInput = {
  database: string;
  host: string;
  /** Omit when the server needs none (trust authentication); on reconfigure, omit to keep the stored one */
  password?: string | null | undefined;
  port?: number;
  ssl?: boolean | null | undefined;
  user: string;
};

/** The operation the row transition amounted to (absent → alive INSERT, alive → alive UPDATE, alive → deleted DELETE) */
export type RejectedOperation =
  | 'DELETE'
  | 'INSERT'
  | 'UPDATE';

export type RejectionFilter = {
  code?: string | null | undefined;
  operation?: RejectedOperation | null | undefined;
  /** Entries at or after this time */
  since?: string | null | undefined;
  /** 32 hex digits */
  siteId?: string | null | undefined;
  table?: string | null | undefined;
  userId?: string | null | undefined;
};

export type RlsMode =
  | 'BYPASS'
  | 'ENFORCE';

export type RlsOperation =
  | 'DELETE'
  | 'INSERT'
  | 'SELECT'
  | 'UPDATE';

/** A cursor returned by pullChanges / changes; absent = from the beginning */
export type SyncCursorInput = {
  dbVersion: number;
  seq: number;
};

/** How one added table is initialised (cloudsync_init algorithm and flags, block columns) */
export type TableDeployOptions = {
  /** Default CLS */
  algorithm?: CrdtAlgorithm | null | undefined;
  /** Flag 1: allow a single-column INTEGER primary key (your ids are globally unique) */
  allowIntegerPk?: boolean | null | undefined;
  /** TEXT columns (not in the primary key) to mark block-LWW when the table is added (docs/PROTOCOL.md "Block columns"; devices call cloudsync_set_column(table, column, 'algo', 'block')). An already-synced table keeps its block columns: other ones are refused (VALIDATION_FAILED, reason BLOCK_COLUMNS_CHANGE). SQLITE and POSTGRES databases */
  blockColumns?: Array<string> | null | undefined;
  /** Flag 2: allow NOT NULL columns without a DEFAULT */
  skipNotNullDefault?: boolean | null | undefined;
  /** Flag 4: allow primary-key columns not declared NOT NULL (NULL values are still refused) */
  skipPkNotNull?: boolean | null | undefined;
  table: string;
};

export type TableFilter = {
  nameContains?: string | null | undefined;
  selected?: boolean | null | undefined;
};

export type UsagePeriod =
  | 'CURRENT'
  | 'PREVIOUS';

export type ApiKeyFieldsFragment = { id: string, name: string, prefix: string, createdAt: string, lastUsedAt: string | null, revokedAt: string | null };

export type AccessTokenFieldsFragment = { id: string, name: string, prefix: string, userId: string, attributes: unknown, createdAt: string, expiresAt: string | null, revokedAt: string | null };

export type JwtProviderFieldsFragment = { configured: boolean, method: JwtMethod | null, issuer: string | null, audience: string | null, jwksUri: string | null, updatedAt: string | null };

export type DatabaseAuthQueryVariables = Exact<{
  databaseId: string;
}>;


export type DatabaseAuthQuery = { database: { id: string, auth: { apiKeys: Array<{ id: string, name: string, prefix: string, createdAt: string, lastUsedAt: string | null, revokedAt: string | null }>, accessTokens: Array<{ id: string, name: string, prefix: string, userId: string, attributes: unknown, createdAt: string, expiresAt: string | null, revokedAt: string | null }>, jwtProvider: { configured: boolean, method: JwtMethod | null, issuer: string | null, audience: string | null, jwksUri: string | null, updatedAt: string | null } } } };

export type CreateApiKeyMutationVariables = Exact<{
  databaseId: string;
  name: string;
}>;


export type CreateApiKeyMutation = { createApiKey: { secret: string, apiKey: { id: string, name: string, prefix: string, createdAt: string, lastUsedAt: string | null, revokedAt: string | null } } };

export type RevokeApiKeyMutationVariables = Exact<{
  id: string;
}>;


export type RevokeApiKeyMutation = { revokeApiKey: { id: string, name: string, prefix: string, createdAt: string, lastUsedAt: string | null, revokedAt: string | null } };

export type CreateAccessTokenMutationVariables = Exact<{
  databaseId: string;
  name: string;
  userId: string;
  attributes?: unknown;
  expiresAt?: string | null | undefined;
}>;


export type CreateAccessTokenMutation = { createAccessToken: { token: string, accessToken: { id: string, name: string, prefix: string, userId: string, attributes: unknown, createdAt: string, expiresAt: string | null, revokedAt: string | null } } };

export type RevokeAccessTokenMutationVariables = Exact<{
  id: string;
}>;


export type RevokeAccessTokenMutation = { revokeAccessToken: { id: string, name: string, prefix: string, userId: string, attributes: unknown, createdAt: string, expiresAt: string | null, revokedAt: string | null } };

export type ConfigureJwtProviderMutationVariables = Exact<{
  databaseId: string;
  method: JwtMethod;
  secret?: string | null | undefined;
  issuer?: string | null | undefined;
  audience?: string | null | undefined;
  jwksUri?: string | null | undefined;
}>;


export type ConfigureJwtProviderMutation = { configureJwtProvider: { configured: boolean, method: JwtMethod | null, issuer: string | null, audience: string | null, jwksUri: string | null, updatedAt: string | null } };

export type RemoveJwtProviderMutationVariables = Exact<{
  databaseId: string;
}>;


export type RemoveJwtProviderMutation = { removeJwtProvider: boolean };

export type ConflictSideFieldsFragment = { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null };

export type ConflictFieldsFragment = { id: string, databaseId: string, at: string, kind: ConflictKind, table: string, pk: string, pkValues: unknown, column: string | null, row: unknown, uploaderSiteId: string, uploaderUserId: string | null, restoredAt: string | null, winner: { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null }, loser: { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null } };

export type ConflictsQueryVariables = Exact<{
  databaseId: string;
  first?: number | null | undefined;
  after?: string | null | undefined;
  filter?: ConflictFilter | null | undefined;
}>;


export type ConflictsQuery = { database: { id: string, conflictLog: boolean, conflicts: { totalCount: number, nodes: Array<{ id: string, databaseId: string, at: string, kind: ConflictKind, table: string, pk: string, pkValues: unknown, column: string | null, row: unknown, uploaderSiteId: string, uploaderUserId: string | null, restoredAt: string | null, winner: { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null }, loser: { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null } }>, pageInfo: { endCursor: string | null, hasNextPage: boolean } } } };

export type SetConflictLogMutationVariables = Exact<{
  databaseId: string;
  enabled: boolean;
}>;


export type SetConflictLogMutation = { setConflictLog: { id: string, conflictLog: boolean } };

export type RestoreConflictValueMutationVariables = Exact<{
  databaseId: string;
  conflictId: string;
}>;


export type RestoreConflictValueMutation = { restoreConflictValue: { action: ConflictRestoreAction, dbVersion: number, conflict: { id: string, databaseId: string, at: string, kind: ConflictKind, table: string, pk: string, pkValues: unknown, column: string | null, row: unknown, uploaderSiteId: string, uploaderUserId: string | null, restoredAt: string | null, winner: { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null }, loser: { value: unknown, colVersion: number, cl: number, siteId: string, userId: string | null } } } };

export type DatabaseConnectionFieldsFragment = { status: ConnectionState, checkedAt: string, host: string | null, port: number | null, database: string | null, extensionInstalled: boolean, error: { code: string, message: string, retryable: boolean } | null };

export type DatabaseFieldsFragment = { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, offSync: { enabled: boolean, enabledAt: string | null } };

export type DatabasesQueryVariables = Exact<{
  projectId: string;
  filter?: DatabaseFilter | null | undefined;
}>;


export type DatabasesQuery = { databases: Array<{ id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, offSync: { enabled: boolean, enabledAt: string | null } }> };

export type DatabaseQueryVariables = Exact<{
  id: string;
}>;


export type DatabaseQuery = { database: { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, project: { id: string, name: string, kind: DatabaseKind }, connection: { status: ConnectionState, checkedAt: string, host: string | null, port: number | null, database: string | null, extensionInstalled: boolean, error: { code: string, message: string, retryable: boolean } | null }, clientIntegration: { databaseId: string, kind: DatabaseKind, serverUrl: string, authMethod: ClientAuthMethod, rlsMode: RlsMode, postgresUser: string | null, snippet: string }, offSync: { enabled: boolean, enabledAt: string | null } } };

export type DatabaseConnectionQueryVariables = Exact<{
  id: string;
}>;


export type DatabaseConnectionQuery = { database: { id: string, connection: { status: ConnectionState, checkedAt: string, host: string | null, port: number | null, database: string | null, extensionInstalled: boolean, error: { code: string, message: string, retryable: boolean } | null } } };

export type CreateDatabaseMutationVariables = Exact<{
  projectId: string;
  name: string;
  connection?: PostgresConnectionInput | null | undefined;
}>;


export type CreateDatabaseMutation = { createDatabase: { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, offSync: { enabled: boolean, enabledAt: string | null } } };

export type DeleteDatabaseMutationVariables = Exact<{
  id: string;
  uninstall?: boolean | null | undefined;
}>;


export type DeleteDatabaseMutation = { deleteDatabase: { id: string, uninstalled: boolean } };

export type ConfigureConnectionMutationVariables = Exact<{
  databaseId: string;
  connection: PostgresConnectionInput;
}>;


export type ConfigureConnectionMutation = { configureConnection: { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, connection: { status: ConnectionState, checkedAt: string, host: string | null, port: number | null, database: string | null, extensionInstalled: boolean, error: { code: string, message: string, retryable: boolean } | null }, offSync: { enabled: boolean, enabledAt: string | null } } };

export type RestoreConnectionMutationVariables = Exact<{
  databaseId: string;
}>;


export type RestoreConnectionMutation = { restoreConnection: { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, connection: { status: ConnectionState, checkedAt: string, host: string | null, port: number | null, database: string | null, extensionInstalled: boolean, error: { code: string, message: string, retryable: boolean } | null }, offSync: { enabled: boolean, enabledAt: string | null } } };

export type EnableOffSyncMutationVariables = Exact<{
  databaseId: string;
}>;


export type EnableOffSyncMutation = { enableOffSync: { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, offSync: { enabled: boolean, enabledAt: string | null } } };

export type DisableOffSyncMutationVariables = Exact<{
  databaseId: string;
}>;


export type DisableOffSyncMutation = { disableOffSync: { id: string, name: string, kind: DatabaseKind, projectId: string, createdAt: string, rlsMode: RlsMode, offSync: { enabled: boolean, enabledAt: string | null } } };

export type CompactDatabaseMutationVariables = Exact<{
  databaseId: string;
}>;


export type CompactDatabaseMutation = { compactDatabase: { databaseId: string, upTo: number, floor: number, rows: number, cells: number, tombstones: number, evictions: number, devicesCounted: number, devicesPastHorizon: number } };

export type DeviceFieldsFragment = { siteId: string, userId: string | null, credentialKind: string, clientVersion: string | null, schemaHash: string | null, firstSeenAt: string, lastSyncAt: string, uploadBytes: number, downloadBytes: number };

export type DevicesQueryVariables = Exact<{
  databaseId: string;
  first?: number | null | undefined;
  after?: string | null | undefined;
}>;


export type DevicesQuery = { database: { id: string, devices: { totalCount: number, nodes: Array<{ siteId: string, userId: string | null, credentialKind: string, clientVersion: string | null, schemaHash: string | null, firstSeenAt: string, lastSyncAt: string, uploadBytes: number, downloadBytes: number }>, edges: Array<{ cursor: string }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } } };

export type RemoveDeviceMutationVariables = Exact<{
  databaseId: string;
  siteId: string;
}>;


export type RemoveDeviceMutation = { removeDevice: boolean };

export type DeviceEventsSubscriptionVariables = Exact<{
  databaseId: string;
}>;


export type DeviceEventsSubscription = { deviceEvents: { kind: DeviceEventKind, at: string, databaseId: string, siteId: string, device: { siteId: string, userId: string | null, credentialKind: string, clientVersion: string | null, schemaHash: string | null, firstSeenAt: string, lastSyncAt: string, uploadBytes: number, downloadBytes: number } | null } };

export type MetricsFieldsFragment = { databaseId: string, bucket: MetricsBucket, from: string, to: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, rejectedChanges: number, series: Array<{ start: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, rejectedChanges: number }> };

export type DatabaseMetricsQueryVariables = Exact<{
  databaseId: string;
  bucket?: MetricsBucket | null | undefined;
  from?: string | null | undefined;
  to?: string | null | undefined;
}>;


export type DatabaseMetricsQuery = { database: { id: string, metrics: { databaseId: string, bucket: MetricsBucket, from: string, to: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, rejectedChanges: number, series: Array<{ start: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, rejectedChanges: number }> } } };

export type UsageQueryVariables = Exact<{
  projectId: string;
  period?: UsagePeriod | null | undefined;
}>;


export type UsageQuery = { usage: { projectId: string, period: UsagePeriod, periodStart: string, periodEnd: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, databases: Array<{ databaseId: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number }> } };

export type LiveMetricsSubscriptionVariables = Exact<{
  databaseId: string;
  bucket?: MetricsBucket | null | undefined;
}>;


export type LiveMetricsSubscription = { metrics: { databaseId: string, bucket: MetricsBucket, from: string, to: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, rejectedChanges: number, series: Array<{ start: string, requests: number, activeDevices: number, uploadBytes: number, downloadBytes: number, rejectedChanges: number }> } };

export type ProjectFieldsFragment = { id: string, name: string, kind: DatabaseKind, createdAt: string };

export type ProjectsQueryVariables = Exact<{ [key: string]: never; }>;


export type ProjectsQuery = { projects: Array<{ id: string, name: string, kind: DatabaseKind, createdAt: string }> };

export type ProjectQueryVariables = Exact<{
  id: string;
  filter?: DatabaseFilter | null | undefined;
}>;


export type ProjectQuery = { project: { id: string, name: string, kind: DatabaseKind, createdAt: string, databases: Array<{ id: string, name: string, kind: DatabaseKind, rlsMode: RlsMode, offSync: { enabled: boolean, enabledAt: string | null } }> } };

export type CreateProjectMutationVariables = Exact<{
  name: string;
  kind: DatabaseKind;
}>;


export type CreateProjectMutation = { createProject: { id: string, name: string, kind: DatabaseKind, createdAt: string } };

export type DeleteProjectMutationVariables = Exact<{
  id: string;
}>;


export type DeleteProjectMutation = { deleteProject: { id: string, deletedDatabaseIds: Array<string> } };

export type PushNotificationsQueryVariables = Exact<{
  databaseId: string;
}>;


export type PushNotificationsQuery = { database: { id: string, pushNotifications: { enabled: boolean, expoAccessTokenConfigured: boolean, expoAccessTokenUpdatedAt: string | null, registeredTokens: number } } };

export type SetExpoAccessTokenMutationVariables = Exact<{
  databaseId: string;
  token: string;
}>;


export type SetExpoAccessTokenMutation = { setExpoAccessToken: boolean };

export type DeleteExpoAccessTokenMutationVariables = Exact<{
  databaseId: string;
}>;


export type DeleteExpoAccessTokenMutation = { deleteExpoAccessToken: boolean };

export type RejectionFieldsFragment = { id: string, databaseId: string, at: string, siteId: string, userId: string | null, credentialKind: string, credentialId: string | null, table: string, pk: string, pkValues: unknown, operation: RejectedOperation, code: string, policy: string | null, reason: string, values: unknown };

export type RejectionsQueryVariables = Exact<{
  databaseId: string;
  first?: number | null | undefined;
  after?: string | null | undefined;
  filter?: RejectionFilter | null | undefined;
}>;


export type RejectionsQuery = { database: { id: string, rejections: { totalCount: number, nodes: Array<{ id: string, databaseId: string, at: string, siteId: string, userId: string | null, credentialKind: string, credentialId: string | null, table: string, pk: string, pkValues: unknown, operation: RejectedOperation, code: string, policy: string | null, reason: string, values: unknown }>, pageInfo: { hasNextPage: boolean, hasPreviousPage: boolean, startCursor: string | null, endCursor: string | null } } } };

export type LiveRejectionsSubscriptionVariables = Exact<{
  databaseId: string;
  filter?: RejectionFilter | null | undefined;
}>;


export type LiveRejectionsSubscription = { rejections: { id: string, databaseId: string, at: string, siteId: string, userId: string | null, credentialKind: string, credentialId: string | null, table: string, pk: string, pkValues: unknown, operation: RejectedOperation, code: string, policy: string | null, reason: string, values: unknown } };

export type SyncChangesFieldsFragment = { payload: string | null, changes: number, final: boolean, cursor: { dbVersion: number, seq: number } };

export type PushChangesMutationVariables = Exact<{
  databaseId: string;
  siteId: string;
  payload: string;
  dbVersionMin?: number | null | undefined;
  dbVersionMax?: number | null | undefined;
}>;


export type PushChangesMutation = { pushChanges: { received: number, applied: number, dbVersion: number | null, lastOptimisticVersion: number, lastConfirmedVersion: number, gaps: Array<{ dbVersionMin: number, dbVersionMax: number }>, failures: Array<{ code: string, message: string, retryable: boolean }> } };

export type PullChangesQueryVariables = Exact<{
  databaseId: string;
  siteId: string;
  cursor?: SyncCursorInput | null | undefined;
  maxBytes?: number | null | undefined;
}>;


export type PullChangesQuery = { pullChanges: { payload: string | null, changes: number, final: boolean, cursor: { dbVersion: number, seq: number } } };

export type ChangesSubscriptionVariables = Exact<{
  databaseId: string;
  siteId: string;
  cursor?: SyncCursorInput | null | undefined;
  maxBytes?: number | null | undefined;
}>;


export type ChangesSubscription = { changes: { payload: string | null, changes: number, final: boolean, cursor: { dbVersion: number, seq: number } } };

export type TableFieldsFragment = { name: string, algorithm: CrdtAlgorithm | null, selected: boolean, enabled: boolean, blockColumns: Array<string>, columns: Array<{ name: string, type: string, notNull: boolean, defaultValue: string | null, primaryKeyPosition: number }>, schemaIssues: Array<{ rule: string, message: string }>, postgresRls: { enabled: boolean, forced: boolean, policies: Array<{ name: string, command: string, permissive: string, roles: Array<string>, using: string | null, withCheck: string | null }> } | null };

export type RlsPolicyFieldsFragment = { table: string, operation: RlsOperation, expression: string, updatedAt: string };

export type TablesQueryVariables = Exact<{
  databaseId: string;
  filter?: TableFilter | null | undefined;
}>;


export type TablesQuery = { database: { id: string, tables: { totalCount: number, selectedCount: number, nodes: Array<{ name: string, algorithm: CrdtAlgorithm | null, selected: boolean, enabled: boolean, blockColumns: Array<string>, columns: Array<{ name: string, type: string, notNull: boolean, defaultValue: string | null, primaryKeyPosition: number }>, schemaIssues: Array<{ rule: string, message: string }>, postgresRls: { enabled: boolean, forced: boolean, policies: Array<{ name: string, command: string, permissive: string, roles: Array<string>, using: string | null, withCheck: string | null }> } | null }> } } };

export type RlsPoliciesQueryVariables = Exact<{
  databaseId: string;
}>;


export type RlsPoliciesQuery = { database: { id: string, rlsMode: RlsMode, rlsPolicies: Array<{ table: string, operation: RlsOperation, expression: string, updatedAt: string }> } };

export type DeployTablesMutationVariables = Exact<{
  databaseId: string;
  tables: Array<string> | string;
  mode?: DeployMode | null | undefined;
  options?: Array<TableDeployOptions> | TableDeployOptions | null | undefined;
}>;


export type DeployTablesMutation = { deployTables: { added: Array<string>, removed: Array<string>, tables: { totalCount: number, selectedCount: number, nodes: Array<{ name: string, algorithm: CrdtAlgorithm | null, selected: boolean, enabled: boolean, blockColumns: Array<string>, columns: Array<{ name: string, type: string, notNull: boolean, defaultValue: string | null, primaryKeyPosition: number }>, schemaIssues: Array<{ rule: string, message: string }>, postgresRls: { enabled: boolean, forced: boolean, policies: Array<{ name: string, command: string, permissive: string, roles: Array<string>, using: string | null, withCheck: string | null }> } | null }> } } };

export type SetRlsModeMutationVariables = Exact<{
  databaseId: string;
  mode: RlsMode;
}>;


export type SetRlsModeMutation = { setRlsMode: { id: string, rlsMode: RlsMode } };

export type SetRlsPolicyMutationVariables = Exact<{
  databaseId: string;
  table: string;
  operation: RlsOperation;
  expression: string;
}>;


export type SetRlsPolicyMutation = { setRlsPolicy: { table: string, operation: RlsOperation, expression: string, updatedAt: string } };

export type RemoveRlsPolicyMutationVariables = Exact<{
  databaseId: string;
  table: string;
  operation: RlsOperation;
}>;


export type RemoveRlsPolicyMutation = { removeRlsPolicy: boolean };

export type PreviewRlsPolicyQueryVariables = Exact<{
  databaseId: string;
  table: string;
  operation: RlsOperation;
  expression: string;
  sampleSize?: number | null | undefined;
}>;


export type PreviewRlsPolicyQuery = { previewRlsPolicy: { table: string, operation: string, expression: string, currentExpression: string | null, enforced: boolean, changesVisibility: boolean, totalRows: number, affectedDevices: Array<string>, users: Array<{ userId: string, source: string, devices: Array<string>, rowsBefore: number, rowsAfter: number, gained: number, lost: number, sampleGained: Array<unknown>, sampleLost: Array<unknown> }> } };

export type AlterTableMutationVariables = Exact<{
  databaseId: string;
  table: string;
  statements: Array<string> | string;
}>;


export type AlterTableMutation = { alterTable: { statements: Array<string>, schemaHash: string, ddlSchemaHash: string, table: { name: string, algorithm: CrdtAlgorithm | null, selected: boolean, enabled: boolean, blockColumns: Array<string>, columns: Array<{ name: string, type: string, notNull: boolean, defaultValue: string | null, primaryKeyPosition: number }>, schemaIssues: Array<{ rule: string, message: string }>, postgresRls: { enabled: boolean, forced: boolean, policies: Array<{ name: string, command: string, permissive: string, roles: Array<string>, using: string | null, withCheck: string | null }> } | null } } };

export type DeviceDdlQueryVariables = Exact<{
  id: string;
}>;


export type DeviceDdlQuery = { database: { id: string, deviceDdl: Array<{ table: string, sql: string }> } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const ApiKeyFieldsFragmentDoc = new TypedDocumentString(`
    fragment ApiKeyFields on ApiKey {
  id
  name
  prefix
  createdAt
  lastUsedAt
  revokedAt
}
    `, {"fragmentName":"ApiKeyFields"}) as unknown as TypedDocumentString<ApiKeyFieldsFragment, unknown>;
export const AccessTokenFieldsFragmentDoc = new TypedDocumentString(`
    fragment AccessTokenFields on AccessToken {
  id
  name
  prefix
  userId
  attributes
  createdAt
  expiresAt
  revokedAt
}
    `, {"fragmentName":"AccessTokenFields"}) as unknown as TypedDocumentString<AccessTokenFieldsFragment, unknown>;
export const JwtProviderFieldsFragmentDoc = new TypedDocumentString(`
    fragment JwtProviderFields on JwtProvider {
  configured
  method
  issuer
  audience
  jwksUri
  updatedAt
}
    `, {"fragmentName":"JwtProviderFields"}) as unknown as TypedDocumentString<JwtProviderFieldsFragment, unknown>;
export const ConflictSideFieldsFragmentDoc = new TypedDocumentString(`
    fragment ConflictSideFields on ConflictSide {
  value
  colVersion
  cl
  siteId
  userId
}
    `, {"fragmentName":"ConflictSideFields"}) as unknown as TypedDocumentString<ConflictSideFieldsFragment, unknown>;
export const ConflictFieldsFragmentDoc = new TypedDocumentString(`
    fragment ConflictFields on Conflict {
  id
  databaseId
  at
  kind
  table
  pk
  pkValues
  column
  row
  uploaderSiteId
  uploaderUserId
  restoredAt
  winner {
    ...ConflictSideFields
  }
  loser {
    ...ConflictSideFields
  }
}
    fragment ConflictSideFields on ConflictSide {
  value
  colVersion
  cl
  siteId
  userId
}`, {"fragmentName":"ConflictFields"}) as unknown as TypedDocumentString<ConflictFieldsFragment, unknown>;
export const DatabaseConnectionFieldsFragmentDoc = new TypedDocumentString(`
    fragment DatabaseConnectionFields on DatabaseConnection {
  status
  checkedAt
  host
  port
  database
  extensionInstalled
  error {
    code
    message
    retryable
  }
}
    `, {"fragmentName":"DatabaseConnectionFields"}) as unknown as TypedDocumentString<DatabaseConnectionFieldsFragment, unknown>;
export const DatabaseFieldsFragmentDoc = new TypedDocumentString(`
    fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}
    `, {"fragmentName":"DatabaseFields"}) as unknown as TypedDocumentString<DatabaseFieldsFragment, unknown>;
export const DeviceFieldsFragmentDoc = new TypedDocumentString(`
    fragment DeviceFields on Device {
  siteId
  userId
  credentialKind
  clientVersion
  schemaHash
  firstSeenAt
  lastSyncAt
  uploadBytes
  downloadBytes
}
    `, {"fragmentName":"DeviceFields"}) as unknown as TypedDocumentString<DeviceFieldsFragment, unknown>;
export const MetricsFieldsFragmentDoc = new TypedDocumentString(`
    fragment MetricsFields on Metrics {
  databaseId
  bucket
  from
  to
  requests
  activeDevices
  uploadBytes
  downloadBytes
  rejectedChanges
  series {
    start
    requests
    activeDevices
    uploadBytes
    downloadBytes
    rejectedChanges
  }
}
    `, {"fragmentName":"MetricsFields"}) as unknown as TypedDocumentString<MetricsFieldsFragment, unknown>;
export const ProjectFieldsFragmentDoc = new TypedDocumentString(`
    fragment ProjectFields on Project {
  id
  name
  kind
  createdAt
}
    `, {"fragmentName":"ProjectFields"}) as unknown as TypedDocumentString<ProjectFieldsFragment, unknown>;
export const RejectionFieldsFragmentDoc = new TypedDocumentString(`
    fragment RejectionFields on Rejection {
  id
  databaseId
  at
  siteId
  userId
  credentialKind
  credentialId
  table
  pk
  pkValues
  operation
  code
  policy
  reason
  values
}
    `, {"fragmentName":"RejectionFields"}) as unknown as TypedDocumentString<RejectionFieldsFragment, unknown>;
export const SyncChangesFieldsFragmentDoc = new TypedDocumentString(`
    fragment SyncChangesFields on SyncChanges {
  payload
  changes
  final
  cursor {
    dbVersion
    seq
  }
}
    `, {"fragmentName":"SyncChangesFields"}) as unknown as TypedDocumentString<SyncChangesFieldsFragment, unknown>;
export const TableFieldsFragmentDoc = new TypedDocumentString(`
    fragment TableFields on Table {
  name
  algorithm
  selected
  enabled
  blockColumns
  columns {
    name
    type
    notNull
    defaultValue
    primaryKeyPosition
  }
  schemaIssues {
    rule
    message
  }
  postgresRls {
    enabled
    forced
    policies {
      name
      command
      permissive
      roles
      using
      withCheck
    }
  }
}
    `, {"fragmentName":"TableFields"}) as unknown as TypedDocumentString<TableFieldsFragment, unknown>;
export const RlsPolicyFieldsFragmentDoc = new TypedDocumentString(`
    fragment RlsPolicyFields on RlsPolicy {
  table
  operation
  expression
  updatedAt
}
    `, {"fragmentName":"RlsPolicyFields"}) as unknown as TypedDocumentString<RlsPolicyFieldsFragment, unknown>;
export const DatabaseAuthDocument = new TypedDocumentString(`
    query DatabaseAuth($databaseId: ID!) {
  database(id: $databaseId) {
    id
    auth {
      apiKeys {
        ...ApiKeyFields
      }
      accessTokens {
        ...AccessTokenFields
      }
      jwtProvider {
        ...JwtProviderFields
      }
    }
  }
}
    fragment ApiKeyFields on ApiKey {
  id
  name
  prefix
  createdAt
  lastUsedAt
  revokedAt
}
fragment AccessTokenFields on AccessToken {
  id
  name
  prefix
  userId
  attributes
  createdAt
  expiresAt
  revokedAt
}
fragment JwtProviderFields on JwtProvider {
  configured
  method
  issuer
  audience
  jwksUri
  updatedAt
}`) as unknown as TypedDocumentString<DatabaseAuthQuery, DatabaseAuthQueryVariables>;
export const CreateApiKeyDocument = new TypedDocumentString(`
    mutation CreateApiKey($databaseId: ID!, $name: String!) {
  createApiKey(databaseId: $databaseId, name: $name) {
    secret
    apiKey {
      ...ApiKeyFields
    }
  }
}
    fragment ApiKeyFields on ApiKey {
  id
  name
  prefix
  createdAt
  lastUsedAt
  revokedAt
}`) as unknown as TypedDocumentString<CreateApiKeyMutation, CreateApiKeyMutationVariables>;
export const RevokeApiKeyDocument = new TypedDocumentString(`
    mutation RevokeApiKey($id: ID!) {
  revokeApiKey(id: $id) {
    ...ApiKeyFields
  }
}
    fragment ApiKeyFields on ApiKey {
  id
  name
  prefix
  createdAt
  lastUsedAt
  revokedAt
}`) as unknown as TypedDocumentString<RevokeApiKeyMutation, RevokeApiKeyMutationVariables>;
export const CreateAccessTokenDocument = new TypedDocumentString(`
    mutation CreateAccessToken($databaseId: ID!, $name: String!, $userId: String!, $attributes: JSON, $expiresAt: DateTime) {
  createAccessToken(
    databaseId: $databaseId
    name: $name
    userId: $userId
    attributes: $attributes
    expiresAt: $expiresAt
  ) {
    token
    accessToken {
      ...AccessTokenFields
    }
  }
}
    fragment AccessTokenFields on AccessToken {
  id
  name
  prefix
  userId
  attributes
  createdAt
  expiresAt
  revokedAt
}`) as unknown as TypedDocumentString<CreateAccessTokenMutation, CreateAccessTokenMutationVariables>;
export const RevokeAccessTokenDocument = new TypedDocumentString(`
    mutation RevokeAccessToken($id: ID!) {
  revokeAccessToken(id: $id) {
    ...AccessTokenFields
  }
}
    fragment AccessTokenFields on AccessToken {
  id
  name
  prefix
  userId
  attributes
  createdAt
  expiresAt
  revokedAt
}`) as unknown as TypedDocumentString<RevokeAccessTokenMutation, RevokeAccessTokenMutationVariables>;
export const ConfigureJwtProviderDocument = new TypedDocumentString(`
    mutation ConfigureJwtProvider($databaseId: ID!, $method: JwtMethod!, $secret: String, $issuer: String, $audience: String, $jwksUri: String) {
  configureJwtProvider(
    databaseId: $databaseId
    method: $method
    secret: $secret
    issuer: $issuer
    audience: $audience
    jwksUri: $jwksUri
  ) {
    ...JwtProviderFields
  }
}
    fragment JwtProviderFields on JwtProvider {
  configured
  method
  issuer
  audience
  jwksUri
  updatedAt
}`) as unknown as TypedDocumentString<ConfigureJwtProviderMutation, ConfigureJwtProviderMutationVariables>;
export const RemoveJwtProviderDocument = new TypedDocumentString(`
    mutation RemoveJwtProvider($databaseId: ID!) {
  removeJwtProvider(databaseId: $databaseId)
}
    `) as unknown as TypedDocumentString<RemoveJwtProviderMutation, RemoveJwtProviderMutationVariables>;
export const ConflictsDocument = new TypedDocumentString(`
    query Conflicts($databaseId: ID!, $first: Int, $after: String, $filter: ConflictFilter) {
  database(id: $databaseId) {
    id
    conflictLog
    conflicts(first: $first, after: $after, filter: $filter) {
      totalCount
      nodes {
        ...ConflictFields
      }
      pageInfo {
        endCursor
        hasNextPage
      }
    }
  }
}
    fragment ConflictSideFields on ConflictSide {
  value
  colVersion
  cl
  siteId
  userId
}
fragment ConflictFields on Conflict {
  id
  databaseId
  at
  kind
  table
  pk
  pkValues
  column
  row
  uploaderSiteId
  uploaderUserId
  restoredAt
  winner {
    ...ConflictSideFields
  }
  loser {
    ...ConflictSideFields
  }
}`) as unknown as TypedDocumentString<ConflictsQuery, ConflictsQueryVariables>;
export const SetConflictLogDocument = new TypedDocumentString(`
    mutation SetConflictLog($databaseId: ID!, $enabled: Boolean!) {
  setConflictLog(databaseId: $databaseId, enabled: $enabled) {
    id
    conflictLog
  }
}
    `) as unknown as TypedDocumentString<SetConflictLogMutation, SetConflictLogMutationVariables>;
export const RestoreConflictValueDocument = new TypedDocumentString(`
    mutation RestoreConflictValue($databaseId: ID!, $conflictId: ID!) {
  restoreConflictValue(databaseId: $databaseId, conflictId: $conflictId) {
    action
    dbVersion
    conflict {
      ...ConflictFields
    }
  }
}
    fragment ConflictSideFields on ConflictSide {
  value
  colVersion
  cl
  siteId
  userId
}
fragment ConflictFields on Conflict {
  id
  databaseId
  at
  kind
  table
  pk
  pkValues
  column
  row
  uploaderSiteId
  uploaderUserId
  restoredAt
  winner {
    ...ConflictSideFields
  }
  loser {
    ...ConflictSideFields
  }
}`) as unknown as TypedDocumentString<RestoreConflictValueMutation, RestoreConflictValueMutationVariables>;
export const DatabasesDocument = new TypedDocumentString(`
    query Databases($projectId: ID!, $filter: DatabaseFilter) {
  databases(projectId: $projectId, filter: $filter) {
    ...DatabaseFields
  }
}
    fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<DatabasesQuery, DatabasesQueryVariables>;
export const DatabaseDocument = new TypedDocumentString(`
    query Database($id: ID!) {
  database(id: $id) {
    ...DatabaseFields
    project {
      id
      name
      kind
    }
    connection {
      ...DatabaseConnectionFields
    }
    clientIntegration {
      databaseId
      kind
      serverUrl
      authMethod
      rlsMode
      postgresUser
      snippet
    }
  }
}
    fragment DatabaseConnectionFields on DatabaseConnection {
  status
  checkedAt
  host
  port
  database
  extensionInstalled
  error {
    code
    message
    retryable
  }
}
fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<DatabaseQuery, DatabaseQueryVariables>;
export const DatabaseConnectionDocument = new TypedDocumentString(`
    query DatabaseConnection($id: ID!) {
  database(id: $id) {
    id
    connection {
      ...DatabaseConnectionFields
    }
  }
}
    fragment DatabaseConnectionFields on DatabaseConnection {
  status
  checkedAt
  host
  port
  database
  extensionInstalled
  error {
    code
    message
    retryable
  }
}`) as unknown as TypedDocumentString<DatabaseConnectionQuery, DatabaseConnectionQueryVariables>;
export const CreateDatabaseDocument = new TypedDocumentString(`
    mutation CreateDatabase($projectId: ID!, $name: String!, $connection: PostgresConnectionInput) {
  createDatabase(projectId: $projectId, name: $name, connection: $connection) {
    ...DatabaseFields
  }
}
    fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<CreateDatabaseMutation, CreateDatabaseMutationVariables>;
export const DeleteDatabaseDocument = new TypedDocumentString(`
    mutation DeleteDatabase($id: ID!, $uninstall: Boolean) {
  deleteDatabase(id: $id, uninstall: $uninstall) {
    id
    uninstalled
  }
}
    `) as unknown as TypedDocumentString<DeleteDatabaseMutation, DeleteDatabaseMutationVariables>;
export const ConfigureConnectionDocument = new TypedDocumentString(`
    mutation ConfigureConnection($databaseId: ID!, $connection: PostgresConnectionInput!) {
  configureConnection(databaseId: $databaseId, connection: $connection) {
    ...DatabaseFields
    connection {
      ...DatabaseConnectionFields
    }
  }
}
    fragment DatabaseConnectionFields on DatabaseConnection {
  status
  checkedAt
  host
  port
  database
  extensionInstalled
  error {
    code
    message
    retryable
  }
}
fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<ConfigureConnectionMutation, ConfigureConnectionMutationVariables>;
export const RestoreConnectionDocument = new TypedDocumentString(`
    mutation RestoreConnection($databaseId: ID!) {
  restoreConnection(databaseId: $databaseId) {
    ...DatabaseFields
    connection {
      ...DatabaseConnectionFields
    }
  }
}
    fragment DatabaseConnectionFields on DatabaseConnection {
  status
  checkedAt
  host
  port
  database
  extensionInstalled
  error {
    code
    message
    retryable
  }
}
fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<RestoreConnectionMutation, RestoreConnectionMutationVariables>;
export const EnableOffSyncDocument = new TypedDocumentString(`
    mutation EnableOffSync($databaseId: ID!) {
  enableOffSync(databaseId: $databaseId) {
    ...DatabaseFields
  }
}
    fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<EnableOffSyncMutation, EnableOffSyncMutationVariables>;
export const DisableOffSyncDocument = new TypedDocumentString(`
    mutation DisableOffSync($databaseId: ID!) {
  disableOffSync(databaseId: $databaseId) {
    ...DatabaseFields
  }
}
    fragment DatabaseFields on Database {
  id
  name
  kind
  projectId
  createdAt
  rlsMode
  offSync {
    enabled
    enabledAt
  }
}`) as unknown as TypedDocumentString<DisableOffSyncMutation, DisableOffSyncMutationVariables>;
export const CompactDatabaseDocument = new TypedDocumentString(`
    mutation CompactDatabase($databaseId: ID!) {
  compactDatabase(databaseId: $databaseId) {
    databaseId
    upTo
    floor
    rows
    cells
    tombstones
    evictions
    devicesCounted
    devicesPastHorizon
  }
}
    `) as unknown as TypedDocumentString<CompactDatabaseMutation, CompactDatabaseMutationVariables>;
export const DevicesDocument = new TypedDocumentString(`
    query Devices($databaseId: ID!, $first: Int, $after: String) {
  database(id: $databaseId) {
    id
    devices(first: $first, after: $after) {
      totalCount
      nodes {
        ...DeviceFields
      }
      edges {
        cursor
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
    }
  }
}
    fragment DeviceFields on Device {
  siteId
  userId
  credentialKind
  clientVersion
  schemaHash
  firstSeenAt
  lastSyncAt
  uploadBytes
  downloadBytes
}`) as unknown as TypedDocumentString<DevicesQuery, DevicesQueryVariables>;
export const RemoveDeviceDocument = new TypedDocumentString(`
    mutation RemoveDevice($databaseId: ID!, $siteId: String!) {
  removeDevice(databaseId: $databaseId, siteId: $siteId)
}
    `) as unknown as TypedDocumentString<RemoveDeviceMutation, RemoveDeviceMutationVariables>;
export const DeviceEventsDocument = new TypedDocumentString(`
    subscription DeviceEvents($databaseId: ID!) {
  deviceEvents(databaseId: $databaseId) {
    kind
    at
    databaseId
    siteId
    device {
      ...DeviceFields
    }
  }
}
    fragment DeviceFields on Device {
  siteId
  userId
  credentialKind
  clientVersion
  schemaHash
  firstSeenAt
  lastSyncAt
  uploadBytes
  downloadBytes
}`) as unknown as TypedDocumentString<DeviceEventsSubscription, DeviceEventsSubscriptionVariables>;
export const DatabaseMetricsDocument = new TypedDocumentString(`
    query DatabaseMetrics($databaseId: ID!, $bucket: MetricsBucket, $from: DateTime, $to: DateTime) {
  database(id: $databaseId) {
    id
    metrics(bucket: $bucket, from: $from, to: $to) {
      ...MetricsFields
    }
  }
}
    fragment MetricsFields on Metrics {
  databaseId
  bucket
  from
  to
  requests
  activeDevices
  uploadBytes
  downloadBytes
  rejectedChanges
  series {
    start
    requests
    activeDevices
    uploadBytes
    downloadBytes
    rejectedChanges
  }
}`) as unknown as TypedDocumentString<DatabaseMetricsQuery, DatabaseMetricsQueryVariables>;
export const UsageDocument = new TypedDocumentString(`
    query Usage($projectId: ID!, $period: UsagePeriod) {
  usage(projectId: $projectId, period: $period) {
    projectId
    period
    periodStart
    periodEnd
    requests
    activeDevices
    uploadBytes
    downloadBytes
    databases {
      databaseId
      requests
      activeDevices
      uploadBytes
      downloadBytes
    }
  }
}
    `) as unknown as TypedDocumentString<UsageQuery, UsageQueryVariables>;
export const LiveMetricsDocument = new TypedDocumentString(`
    subscription LiveMetrics($databaseId: ID!, $bucket: MetricsBucket) {
  metrics(databaseId: $databaseId, bucket: $bucket) {
    ...MetricsFields
  }
}
    fragment MetricsFields on Metrics {
  databaseId
  bucket
  from
  to
  requests
  activeDevices
  uploadBytes
  downloadBytes
  rejectedChanges
  series {
    start
    requests
    activeDevices
    uploadBytes
    downloadBytes
    rejectedChanges
  }
}`) as unknown as TypedDocumentString<LiveMetricsSubscription, LiveMetricsSubscriptionVariables>;
export const ProjectsDocument = new TypedDocumentString(`
    query Projects {
  projects {
    ...ProjectFields
  }
}
    fragment ProjectFields on Project {
  id
  name
  kind
  createdAt
}`) as unknown as TypedDocumentString<ProjectsQuery, ProjectsQueryVariables>;
export const ProjectDocument = new TypedDocumentString(`
    query Project($id: ID!, $filter: DatabaseFilter) {
  project(id: $id) {
    ...ProjectFields
    databases(filter: $filter) {
      id
      name
      kind
      rlsMode
      offSync {
        enabled
        enabledAt
      }
    }
  }
}
    fragment ProjectFields on Project {
  id
  name
  kind
  createdAt
}`) as unknown as TypedDocumentString<ProjectQuery, ProjectQueryVariables>;
export const CreateProjectDocument = new TypedDocumentString(`
    mutation CreateProject($name: String!, $kind: DatabaseKind!) {
  createProject(name: $name, kind: $kind) {
    ...ProjectFields
  }
}
    fragment ProjectFields on Project {
  id
  name
  kind
  createdAt
}`) as unknown as TypedDocumentString<CreateProjectMutation, CreateProjectMutationVariables>;
export const DeleteProjectDocument = new TypedDocumentString(`
    mutation DeleteProject($id: ID!) {
  deleteProject(id: $id) {
    id
    deletedDatabaseIds
  }
}
    `) as unknown as TypedDocumentString<DeleteProjectMutation, DeleteProjectMutationVariables>;
export const PushNotificationsDocument = new TypedDocumentString(`
    query PushNotifications($databaseId: ID!) {
  database(id: $databaseId) {
    id
    pushNotifications {
      enabled
      expoAccessTokenConfigured
      expoAccessTokenUpdatedAt
      registeredTokens
    }
  }
}
    `) as unknown as TypedDocumentString<PushNotificationsQuery, PushNotificationsQueryVariables>;
export const SetExpoAccessTokenDocument = new TypedDocumentString(`
    mutation SetExpoAccessToken($databaseId: ID!, $token: String!) {
  setExpoAccessToken(databaseId: $databaseId, token: $token)
}
    `) as unknown as TypedDocumentString<SetExpoAccessTokenMutation, SetExpoAccessTokenMutationVariables>;
export const DeleteExpoAccessTokenDocument = new TypedDocumentString(`
    mutation DeleteExpoAccessToken($databaseId: ID!) {
  deleteExpoAccessToken(databaseId: $databaseId)
}
    `) as unknown as TypedDocumentString<DeleteExpoAccessTokenMutation, DeleteExpoAccessTokenMutationVariables>;
export const RejectionsDocument = new TypedDocumentString(`
    query Rejections($databaseId: ID!, $first: Int, $after: String, $filter: RejectionFilter) {
  database(id: $databaseId) {
    id
    rejections(first: $first, after: $after, filter: $filter) {
      totalCount
      nodes {
        ...RejectionFields
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
    }
  }
}
    fragment RejectionFields on Rejection {
  id
  databaseId
  at
  siteId
  userId
  credentialKind
  credentialId
  table
  pk
  pkValues
  operation
  code
  policy
  reason
  values
}`) as unknown as TypedDocumentString<RejectionsQuery, RejectionsQueryVariables>;
export const LiveRejectionsDocument = new TypedDocumentString(`
    subscription LiveRejections($databaseId: ID!, $filter: RejectionFilter) {
  rejections(databaseId: $databaseId, filter: $filter) {
    ...RejectionFields
  }
}
    fragment RejectionFields on Rejection {
  id
  databaseId
  at
  siteId
  userId
  credentialKind
  credentialId
  table
  pk
  pkValues
  operation
  code
  policy
  reason
  values
}`) as unknown as TypedDocumentString<LiveRejectionsSubscription, LiveRejectionsSubscriptionVariables>;
export const PushChangesDocument = new TypedDocumentString(`
    mutation PushChanges($databaseId: ID!, $siteId: String!, $payload: String!, $dbVersionMin: Int, $dbVersionMax: Int) {
  pushChanges(
    databaseId: $databaseId
    siteId: $siteId
    payload: $payload
    dbVersionMin: $dbVersionMin
    dbVersionMax: $dbVersionMax
  ) {
    received
    applied
    dbVersion
    lastOptimisticVersion
    lastConfirmedVersion
    gaps {
      dbVersionMin
      dbVersionMax
    }
    failures {
      code
      message
      retryable
    }
  }
}
    `) as unknown as TypedDocumentString<PushChangesMutation, PushChangesMutationVariables>;
export const PullChangesDocument = new TypedDocumentString(`
    query PullChanges($databaseId: ID!, $siteId: String!, $cursor: SyncCursorInput, $maxBytes: Int) {
  pullChanges(
    databaseId: $databaseId
    siteId: $siteId
    cursor: $cursor
    maxBytes: $maxBytes
  ) {
    ...SyncChangesFields
  }
}
    fragment SyncChangesFields on SyncChanges {
  payload
  changes
  final
  cursor {
    dbVersion
    seq
  }
}`) as unknown as TypedDocumentString<PullChangesQuery, PullChangesQueryVariables>;
export const ChangesDocument = new TypedDocumentString(`
    subscription Changes($databaseId: ID!, $siteId: String!, $cursor: SyncCursorInput, $maxBytes: Int) {
  changes(
    databaseId: $databaseId
    siteId: $siteId
    cursor: $cursor
    maxBytes: $maxBytes
  ) {
    ...SyncChangesFields
  }
}
    fragment SyncChangesFields on SyncChanges {
  payload
  changes
  final
  cursor {
    dbVersion
    seq
  }
}`) as unknown as TypedDocumentString<ChangesSubscription, ChangesSubscriptionVariables>;
export const TablesDocument = new TypedDocumentString(`
    query Tables($databaseId: ID!, $filter: TableFilter) {
  database(id: $databaseId) {
    id
    tables(filter: $filter) {
      totalCount
      selectedCount
      nodes {
        ...TableFields
      }
    }
  }
}
    fragment TableFields on Table {
  name
  algorithm
  selected
  enabled
  blockColumns
  columns {
    name
    type
    notNull
    defaultValue
    primaryKeyPosition
  }
  schemaIssues {
    rule
    message
  }
  postgresRls {
    enabled
    forced
    policies {
      name
      command
      permissive
      roles
      using
      withCheck
    }
  }
}`) as unknown as TypedDocumentString<TablesQuery, TablesQueryVariables>;
export const RlsPoliciesDocument = new TypedDocumentString(`
    query RlsPolicies($databaseId: ID!) {
  database(id: $databaseId) {
    id
    rlsMode
    rlsPolicies {
      ...RlsPolicyFields
    }
  }
}
    fragment RlsPolicyFields on RlsPolicy {
  table
  operation
  expression
  updatedAt
}`) as unknown as TypedDocumentString<RlsPoliciesQuery, RlsPoliciesQueryVariables>;
export const DeployTablesDocument = new TypedDocumentString(`
    mutation DeployTables($databaseId: ID!, $tables: [String!]!, $mode: DeployMode, $options: [TableDeployOptions!]) {
  deployTables(
    databaseId: $databaseId
    tables: $tables
    mode: $mode
    options: $options
  ) {
    added
    removed
    tables {
      totalCount
      selectedCount
      nodes {
        ...TableFields
      }
    }
  }
}
    fragment TableFields on Table {
  name
  algorithm
  selected
  enabled
  blockColumns
  columns {
    name
    type
    notNull
    defaultValue
    primaryKeyPosition
  }
  schemaIssues {
    rule
    message
  }
  postgresRls {
    enabled
    forced
    policies {
      name
      command
      permissive
      roles
      using
      withCheck
    }
  }
}`) as unknown as TypedDocumentString<DeployTablesMutation, DeployTablesMutationVariables>;
export const SetRlsModeDocument = new TypedDocumentString(`
    mutation SetRlsMode($databaseId: ID!, $mode: RlsMode!) {
  setRlsMode(databaseId: $databaseId, mode: $mode) {
    id
    rlsMode
  }
}
    `) as unknown as TypedDocumentString<SetRlsModeMutation, SetRlsModeMutationVariables>;
export const SetRlsPolicyDocument = new TypedDocumentString(`
    mutation SetRlsPolicy($databaseId: ID!, $table: String!, $operation: RlsOperation!, $expression: String!) {
  setRlsPolicy(
    databaseId: $databaseId
    table: $table
    operation: $operation
    expression: $expression
  ) {
    ...RlsPolicyFields
  }
}
    fragment RlsPolicyFields on RlsPolicy {
  table
  operation
  expression
  updatedAt
}`) as unknown as TypedDocumentString<SetRlsPolicyMutation, SetRlsPolicyMutationVariables>;
export const RemoveRlsPolicyDocument = new TypedDocumentString(`
    mutation RemoveRlsPolicy($databaseId: ID!, $table: String!, $operation: RlsOperation!) {
  removeRlsPolicy(databaseId: $databaseId, table: $table, operation: $operation)
}
    `) as unknown as TypedDocumentString<RemoveRlsPolicyMutation, RemoveRlsPolicyMutationVariables>;
export const PreviewRlsPolicyDocument = new TypedDocumentString(`
    query PreviewRlsPolicy($databaseId: ID!, $table: String!, $operation: RlsOperation!, $expression: String!, $sampleSize: Int) {
  previewRlsPolicy(
    databaseId: $databaseId
    table: $table
    operation: $operation
    expression: $expression
    sampleSize: $sampleSize
  ) {
    table
    operation
    expression
    currentExpression
    enforced
    changesVisibility
    totalRows
    affectedDevices
    users {
      userId
      source
      devices
      rowsBefore
      rowsAfter
      gained
      lost
      sampleGained
      sampleLost
    }
  }
}
    `) as unknown as TypedDocumentString<PreviewRlsPolicyQuery, PreviewRlsPolicyQueryVariables>;
export const AlterTableDocument = new TypedDocumentString(`
    mutation AlterTable($databaseId: ID!, $table: String!, $statements: [String!]!) {
  alterTable(databaseId: $databaseId, table: $table, statements: $statements) {
    statements
    schemaHash
    ddlSchemaHash
    table {
      ...TableFields
    }
  }
}
    fragment TableFields on Table {
  name
  algorithm
  selected
  enabled
  blockColumns
  columns {
    name
    type
    notNull
    defaultValue
    primaryKeyPosition
  }
  schemaIssues {
    rule
    message
  }
  postgresRls {
    enabled
    forced
    policies {
      name
      command
      permissive
      roles
      using
      withCheck
    }
  }
}`) as unknown as TypedDocumentString<AlterTableMutation, AlterTableMutationVariables>;
export const DeviceDdlDocument = new TypedDocumentString(`
    query DeviceDdl($id: ID!) {
  database(id: $id) {
    id
    deviceDdl {
      table
      sql
    }
  }
}
    `) as unknown as TypedDocumentString<DeviceDdlQuery, DeviceDdlQueryVariables>;