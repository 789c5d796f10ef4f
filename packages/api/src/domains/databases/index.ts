/** The databases domain: registered databases (SQLite files or PostgreSQL workspaces), their connection checks and client-integration snippets. */
export { createDatabasesService, sqliteDatabasePath } from './databases.service.ts';
export type { DatabaseFilter, DatabasesService, PgConnectionInput } from './databases.service.ts';
export { buildClientIntegration, clientIntegrationSnippet } from './client-integration.ts';
export type { ClientAuthMethod, ClientIntegration, ClientIntegrationInput, WorkspaceKind } from './client-integration.ts';
export type { ConnectionError, ConnectionStatus, PgSettings } from './connection.ts';
