import { builder } from '../../builder.ts';
import { DatabaseKindEnum, ProjectRef } from '../projects/projects.schema.ts';
import type { ConnectionStatus } from './connection.ts';
import type { ClientIntegration } from './client-integration.ts';

export const RlsModeEnum = builder.enumType('RlsMode', { values: ['BYPASS', 'ENFORCE'] as const });

const OffSyncStatus = builder.objectRef<{ enabled: boolean; enabledAt: Date | null }>('OffSyncStatus').implement({
  fields: (t) => ({
    enabled: t.exposeBoolean('enabled'),
    enabledAt: t.expose('enabledAt', { type: 'DateTime', nullable: true }),
  }),
});

const ConnectionErrorRef = builder.objectRef<{ code: string; message: string; retryable: boolean }>('ConnectionError').implement({
  fields: (t) => ({ code: t.exposeString('code'), message: t.exposeString('message'), retryable: t.exposeBoolean('retryable') }),
});

const ConnectionStateEnum = builder.enumType('ConnectionState', {
  description: 'OK; ERROR (see error); FILE_MISSING: the SQLite file is missing or replaced, sync refuses it until restoreConnection',
  values: ['OK', 'ERROR', 'FILE_MISSING'] as const,
});

const ConnectionRef = builder.objectRef<ConnectionStatus>('DatabaseConnection').implement({
  description: 'A live check: SQLite file reachable and writable; PostgreSQL connect, authenticate, look for the offsync schema',
  fields: (t) => ({
    status: t.field({ type: ConnectionStateEnum, resolve: (c) => c.status }),
    host: t.exposeString('host', { nullable: true }),
    port: t.exposeInt('port', { nullable: true }),
    database: t.exposeString('database', { nullable: true }),
    checkedAt: t.expose('checkedAt', { type: 'DateTime' }),
    error: t.field({ type: ConnectionErrorRef, nullable: true, resolve: (c) => c.error }),
    extensionInstalled: t.exposeBoolean('extensionInstalled'),
  }),
});

const AuthMethodEnum = builder.enumType('ClientAuthMethod', { values: ['API_KEY', 'ACCESS_TOKEN', 'JWT'] as const });

const ClientIntegrationRef = builder.objectRef<ClientIntegration>('ClientIntegration').implement({
  fields: (t) => ({
    databaseId: t.exposeID('databaseId'),
    kind: t.field({ type: DatabaseKindEnum, description: 'The workspace type the snippet is written for', resolve: (c) => c.kind }),
    rlsMode: t.field({ type: RlsModeEnum, resolve: (c) => c.rlsMode }),
    authMethod: t.field({ type: AuthMethodEnum, resolve: (c) => c.authMethod }),
    postgresUser: t.exposeString('postgresUser', {
      nullable: true,
      description: 'POSTGRES: the database user of the connection. In BYPASS mode a device may present `<postgresUser>:<password>` as its API key (checked by logging in to PostgreSQL; RLS bypassed). The password is never returned. Null for SQLITE',
    }),
    serverUrl: t.exposeString('serverUrl'),
    snippet: t.exposeString('snippet', {
      description: 'SQL a device runs (SQLite Sync extension) for the workspace type, RLS mode and auth method: cloudsync_init per synced table, cloudsync_set_column(…, \'algo\', \'block\') per block column, network init, credential, sync. Passwords are placeholders',
    }),
  }),
});

export const DatabaseRef = builder.prismaObject('Database', {
  description: 'A sync database; `id` is the Database ID clients pass to cloudsync_network_init',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    kind: t.field({ type: DatabaseKindEnum, resolve: (d) => (d.kind === 'POSTGRES' ? 'POSTGRES' : 'SQLITE') }),
    projectId: t.exposeID('projectId'),
    project: t.field({ type: ProjectRef, resolve: (d, _a, ctx) => ctx.services.projects.getProject(d.projectId) }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    offSync: t.field({ type: OffSyncStatus, resolve: (d) => ({ enabled: d.offSyncEnabled, enabledAt: d.offSyncEnabledAt }) }),
    rlsMode: t.field({ type: RlsModeEnum, resolve: (d) => (d.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS') }),
    connection: t.field({
      type: ConnectionRef,
      resolve: async (d, _a, ctx) => {
        const c = await ctx.services.databases.checkConnection(d);
        // Same identity but another inode than the file sync had open: this process refuses it.
        if (c.status !== 'OK' || !ctx.sync.databases.isRefused(d.id, d.fileIdentity)) return c;
        return { ...c, status: 'FILE_MISSING' as const, error: { code: 'FILE_REPLACED', message: 'The database file was deleted or replaced while sync had it open; sync is refused until restoreConnection', retryable: false } };
      },
    }),
    clientIntegration: t.field({
      type: ClientIntegrationRef,
      resolve: (d, _a, ctx) => ctx.services.clientIntegration(d.id),
    }),
  }),
});

const DatabaseFilterInput = builder.inputType('DatabaseFilter', {
  fields: (t) => ({ nameContains: t.string(), offSyncEnabled: t.boolean() }),
});

const PostgresConnectionInput = builder.inputType('PostgresConnectionInput', {
  description: 'PostgreSQL connection settings. The password is write-only: stored encrypted, never returned',
  fields: (t) => ({
    host: t.string({ required: true }),
    port: t.int({ required: true, defaultValue: 5432 }),
    database: t.string({ required: true }),
    user: t.string({ required: true }),
    password: t.string({ description: 'Omit when the server needs none (trust authentication); on reconfigure, omit to keep the stored one' }),
    ssl: t.boolean({ defaultValue: false }),
  }),
});

builder.prismaObjectFields('Project', (t) => ({
  databases: t.field({
    type: [DatabaseRef],
    args: { filter: t.arg({ type: DatabaseFilterInput }) },
    resolve: (p, { filter }, ctx) => ctx.services.databases.listDatabases(p.id, filter ?? {}),
  }),
}));

const DeleteDatabasePayload = builder.objectRef<{ id: string; uninstalled: boolean }>('DeleteDatabasePayload').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    uninstalled: t.exposeBoolean('uninstalled', { description: 'POSTGRES: OffSync\'s triggers, trigger functions and `offsync` schema were removed from the customer database (deleteDatabase uninstall: true)' }),
  }),
});

builder.queryFields((t) => ({
  databases: t.field({
    type: [DatabaseRef],
    args: { projectId: t.arg.id({ required: true }), filter: t.arg({ type: DatabaseFilterInput }) },
    resolve: (_r, { projectId, filter }, ctx) => ctx.services.databases.listDatabases(String(projectId), filter ?? {}),
  }),
  database: t.field({
    type: DatabaseRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_r, { id }, ctx) => ctx.services.databases.getDatabase(String(id)),
  }),
}));

builder.mutationFields((t) => ({
  createDatabase: t.field({
    type: DatabaseRef,
    description: 'SQLITE projects: creates the database file. POSTGRES projects: registers the database (connection required)',
    args: { projectId: t.arg.id({ required: true }), name: t.arg.string({ required: true }), connection: t.arg({ type: PostgresConnectionInput }) },
    resolve: (_r, args, ctx) => ctx.services.databases.createDatabase({ projectId: String(args.projectId), name: args.name, connection: args.connection ?? null }),
  }),
  deleteDatabase: t.field({
    type: DeleteDatabasePayload,
    description: 'Removes the database from OffSync with its credentials, devices and metrics. SQLITE: the file is deleted. POSTGRES: the customer database keeps its tables and data; with `uninstall: true` OffSync\'s triggers, trigger functions and the `offsync` metadata schema are removed from it first (CONNECTION_FAILED and nothing deleted when it cannot be reached)',
    args: {
      id: t.arg.id({ required: true }),
      uninstall: t.arg.boolean({ defaultValue: false, description: 'POSTGRES: also remove OffSync\'s triggers, trigger functions and `offsync` schema from the customer database (default: keep them)' }),
    },
    resolve: async (_r, { id, uninstall }, ctx) => ctx.services.databases.deleteDatabaseWith(String(id), { uninstall: uninstall === true }),
  }),
  enableOffSync: t.field({
    type: DatabaseRef,
    description: 'Refuses, with nothing changed, a database that cannot serve: CONNECTION_FAILED (POSTGRES connection failing, details.reason CONNECTION_FAILED), CONFLICT with details.reason FILE_MISSING / FILE_REPLACED / FILE_NOT_WRITABLE (SQLITE file; restoreConnection) or NO_SYNCED_TABLES (POSTGRES without deployed tables / metadata not installed: deployTables first)',
    args: { databaseId: t.arg.id({ required: true }) },
    resolve: (_r, { databaseId }, ctx) => ctx.services.databases.setOffSync(String(databaseId), true),
  }),
  disableOffSync: t.field({
    type: DatabaseRef,
    args: { databaseId: t.arg.id({ required: true }) },
    resolve: (_r, { databaseId }, ctx) => ctx.services.databases.setOffSync(String(databaseId), false),
  }),
  configureConnection: t.field({
    type: DatabaseRef,
    args: { databaseId: t.arg.id({ required: true }), connection: t.arg({ type: PostgresConnectionInput, required: true }) },
    resolve: (_r, { databaseId, connection }, ctx) => ctx.services.databases.configureConnection(String(databaseId), connection),
  }),
  restoreConnection: t.field({
    type: DatabaseRef,
    description: 'SQLITE: accepts the file as it is now (re-creates a missing one empty; a replaced one gets a new identity) so sync serves it again, and regenerates the internal service key',
    args: { databaseId: t.arg.id({ required: true }) },
    resolve: (_r, { databaseId }, ctx) => ctx.services.databases.restoreConnection(String(databaseId)),
  }),
}));
