/**
 * @offsync/client: the typed API client for the OffSync control plane (the sync client is at
 * `@offsync/client/sync`). Explicit named exports only; test/api-client.test.ts checks that every
 * generated document and type is listed here.
 */
export { createApiClient, toWebSocketUrl } from './graphql/api-client.ts';
export type { ApiClient, ApiClientCore, ApiClientOptions, ExecuteArgs, OperationMethods, OperationName, RequestOptions } from './graphql/api-client.ts';
export { ClientError, ClientErrorCode, isClientError } from './graphql/errors.ts';
export type { ClientErrorOptions, GraphQLErrorPayload } from './graphql/errors.ts';
export { execute } from './graphql/execute.ts';
export type { ExecuteOptions } from './graphql/execute.ts';
export type { HeadersInit, ResultOf, TypedDocument, VariablesArg, VariablesOf } from './graphql/types.ts';
export { operations } from './generated/operations.ts';

// Generated documents (src/generated/graphql.ts)
export {
  ChangesDocument, ConfigureConnectionDocument, ConfigureJwtProviderDocument, CreateAccessTokenDocument,
  CreateApiKeyDocument, CreateDatabaseDocument, CreateProjectDocument, DatabaseAuthDocument,
  DatabaseConnectionDocument, DatabaseDocument, DatabaseMetricsDocument, DatabasesDocument,
  DeleteDatabaseDocument, DeleteExpoAccessTokenDocument, DeployTablesDocument, DeviceEventsDocument,
  DevicesDocument, DisableOffSyncDocument, EnableOffSyncDocument, LiveMetricsDocument, LiveRejectionsDocument, ProjectDocument,
  ProjectsDocument, PullChangesDocument, PushChangesDocument, PushNotificationsDocument,
  RemoveDeviceDocument, RemoveJwtProviderDocument, RemoveRlsPolicyDocument, RestoreConnectionDocument,
  RevokeAccessTokenDocument, RevokeApiKeyDocument, RlsPoliciesDocument, SetExpoAccessTokenDocument,
  RejectionsDocument, SetRlsModeDocument, SetRlsPolicyDocument, TablesDocument, UsageDocument,
  ConflictsDocument, SetConflictLogDocument, RestoreConflictValueDocument, DeleteProjectDocument, PreviewRlsPolicyDocument,
  AlterTableDocument, DeviceDdlDocument, CompactDatabaseDocument,
  TypedDocumentString,
} from './generated/graphql.ts';

// Generated types: schema enums and inputs, fragments, operation results and variables
export type {
  AccessTokenFieldsFragment, ApiKeyFieldsFragment, ChangesSubscription, ChangesSubscriptionVariables,
  ClientAuthMethod, ConfigureConnectionMutation, ConfigureConnectionMutationVariables,
  ConfigureJwtProviderMutation, ConfigureJwtProviderMutationVariables, ConnectionState, CrdtAlgorithm,
  CreateAccessTokenMutation, CreateAccessTokenMutationVariables, CreateApiKeyMutation,
  CreateApiKeyMutationVariables, CreateDatabaseMutation, CreateDatabaseMutationVariables,
  CreateProjectMutation, CreateProjectMutationVariables, DatabaseAuthQuery, DatabaseAuthQueryVariables,
  DatabaseConnectionFieldsFragment, DatabaseConnectionQuery, DatabaseConnectionQueryVariables,
  DatabaseFieldsFragment, DatabaseFilter, DatabaseKind, DatabaseMetricsQuery, DatabaseMetricsQueryVariables,
  DatabaseQuery, DatabaseQueryVariables, DatabasesQuery, DatabasesQueryVariables, DeleteDatabaseMutation,
  DeleteDatabaseMutationVariables, DeleteExpoAccessTokenMutation, DeleteExpoAccessTokenMutationVariables,
  DeployTablesMutation, DeployTablesMutationVariables, DeviceEventKind, DeviceEventsSubscription,
  DeviceEventsSubscriptionVariables, DeviceFieldsFragment, DevicesQuery, DevicesQueryVariables,
  DisableOffSyncMutation, DisableOffSyncMutationVariables, EnableOffSyncMutation,
  EnableOffSyncMutationVariables, JwtMethod, JwtProviderFieldsFragment, LiveMetricsSubscription,
  LiveMetricsSubscriptionVariables, LiveRejectionsSubscription, LiveRejectionsSubscriptionVariables,
  MetricsBucket, MetricsFieldsFragment, PostgresConnectionInput,
  ProjectFieldsFragment, ProjectQuery, ProjectQueryVariables, ProjectsQuery, ProjectsQueryVariables,
  PullChangesQuery, PullChangesQueryVariables, PushChangesMutation, PushChangesMutationVariables,
  PushNotificationsQuery, PushNotificationsQueryVariables, RejectedOperation, RejectionFieldsFragment,
  RejectionFilter, RejectionsQuery, RejectionsQueryVariables, RemoveDeviceMutation,
  RemoveDeviceMutationVariables, RemoveJwtProviderMutation, RemoveJwtProviderMutationVariables,
  RemoveRlsPolicyMutation, RemoveRlsPolicyMutationVariables, RestoreConnectionMutation,
  RestoreConnectionMutationVariables, RevokeAccessTokenMutation, RevokeAccessTokenMutationVariables,
  RevokeApiKeyMutation, RevokeApiKeyMutationVariables, RlsMode, RlsOperation, RlsPoliciesQuery,
  RlsPoliciesQueryVariables, RlsPolicyFieldsFragment, SetExpoAccessTokenMutation,
  SetExpoAccessTokenMutationVariables, SetRlsModeMutation, SetRlsModeMutationVariables, SetRlsPolicyMutation,
  SetRlsPolicyMutationVariables, SyncChangesFieldsFragment, SyncCursorInput, TableFieldsFragment, TableDeployOptions, DeployMode,
  TableFilter, TablesQuery, TablesQueryVariables, UsagePeriod, UsageQuery, UsageQueryVariables,
  ConflictFilter, ConflictKind, ConflictRestoreAction, ConflictSideFieldsFragment, ConflictFieldsFragment, ConflictsQueryVariables, ConflictsQuery, SetConflictLogMutationVariables, SetConflictLogMutation, RestoreConflictValueMutationVariables, RestoreConflictValueMutation, DeleteProjectMutationVariables, DeleteProjectMutation, PreviewRlsPolicyQueryVariables, PreviewRlsPolicyQuery,
  AlterTableMutation, AlterTableMutationVariables, DeviceDdlQuery, DeviceDdlQueryVariables, CompactDatabaseMutation, CompactDatabaseMutationVariables,
} from './generated/graphql.ts';
