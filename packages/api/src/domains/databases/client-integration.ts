/**
 * The SQL a device runs to sync with this server, for the database's workspace type, RLS mode and
 * auth method (docs/CONTROL-PLANE.md "Client integration").
 *
 * - SQLITE + BYPASS: an API key.
 * - POSTGRES + BYPASS: `<db-user>:<password>` presented as the API key (checked by logging in to
 *   PostgreSQL; RLS bypassed), or an API key. The password is a placeholder, never the real one.
 * - ENFORCE: a per-user token (`cloudsync_network_set_token`): a JWT from the identity provider
 *   when one is configured, else an access token; on POSTGRES the database's own row-level
 *   security policies decide (each request runs under `SET LOCAL ROLE <role claim>` with
 *   `request.jwt.claims`).
 *
 * First the CREATE TABLE statements of the synced tables as the server has them (`deviceDdl`,
 * alter.ts), in the order a device must run them: a 0.8.x – 0.9.99 device hashes this text
 * (docs/PROTOCOL.md §P6 "DDL text"). After each `cloudsync_init(t)` one
 * `cloudsync_set_column(t, c, 'algo', 'block')` per block column.
 */
import type { DatabasesService } from './databases.service.ts';

export type WorkspaceKind = 'SQLITE' | 'POSTGRES';
export type ClientAuthMethod = 'API_KEY' | 'ACCESS_TOKEN' | 'JWT';

export interface ClientIntegrationTable { name: string; blockColumns?: readonly string[] | undefined }

export interface ClientIntegrationInput {
  databaseId: string;
  publicUrl: string;
  rlsMode: 'BYPASS' | 'ENFORCE';
  jwtConfigured: boolean;
  /** Synced tables (names, or names with their block columns). */
  tables: readonly (string | ClientIntegrationTable)[];
  /** Default SQLITE. */
  kind?: WorkspaceKind | undefined;
  /** POSTGRES: the database user of the connection (devices present `<user>:<password>`). */
  postgresUser?: string | null | undefined;
  /** CREATE TABLE statements of the synced tables, in the order devices create them (none: no table setup shown). */
  deviceDdl?: readonly string[] | undefined;
}

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

function authLines(i: ClientIntegrationInput): string[] {
  const kind = i.kind ?? 'SQLITE';
  if (i.rlsMode === 'BYPASS') {
    if (kind === 'POSTGRES') {
      const user = i.postgresUser ?? '<db-user>';
      return [
        '-- RLS mode BYPASS: the device presents the PostgreSQL user and its password as the API key;',
        '-- OffSync checks them by logging in to PostgreSQL. Row-level security is bypassed: every row syncs.',
        `SELECT cloudsync_network_set_apikey(${q(`${user}:<password>`)});`,
        "-- Or an API key (createApiKey): SELECT cloudsync_network_set_apikey('<API key>');",
      ];
    }
    return ['-- RLS mode BYPASS: authenticate with an API key (createApiKey); it sees every row.', "SELECT cloudsync_network_set_apikey('<API key>');"];
  }
  const token = i.jwtConfigured
    ? "SELECT cloudsync_network_set_token('<JWT signed by your identity provider>');"
    : "SELECT cloudsync_network_set_token('<access token from createAccessToken>');";
  if (kind === 'POSTGRES') {
    return [
      '-- RLS mode ENFORCE: authenticate as a user. The database\'s own PostgreSQL row-level security policies apply:',
      '-- each request runs under SET LOCAL ROLE <role claim, default authenticated> with request.jwt.claims set (as Supabase does).',
      token,
    ];
  }
  return ['-- RLS mode ENFORCE: authenticate as a user; policies decide which rows sync.', token];
}

export function clientIntegrationSnippet(i: ClientIntegrationInput): string {
  const tables: ClientIntegrationTable[] = i.tables.length > 0 ? i.tables.map((t) => (typeof t === 'string' ? { name: t } : t)) : [{ name: '<table>' }];
  const ddl = i.deviceDdl ?? [];
  return [
    '-- Load the SQLite Sync extension first (e.g. .load ./cloudsync).',
    ...(ddl.length === 0
      ? []
      : [
          '-- Create the synced tables exactly as the server has them, in this order (0.8.x – 0.9.99 clients compare a hash of this text):',
          ...ddl.map((sql) => `${sql.trim().replace(/;\s*$/, '')};`),
        ]),
    ...tables.flatMap((t) => [
      `SELECT cloudsync_init(${q(t.name)});`,
      ...(t.blockColumns ?? []).map((c) => `SELECT cloudsync_set_column(${q(t.name)}, ${q(c)}, 'algo', 'block');`),
    ]),
    `SELECT cloudsync_network_init_custom(${q(i.publicUrl)}, ${q(i.databaseId)});`,
    ...authLines(i),
    'SELECT cloudsync_network_sync();',
    '',
  ].join('\n');
}

export interface ClientIntegration {
  databaseId: string;
  kind: WorkspaceKind;
  rlsMode: 'BYPASS' | 'ENFORCE';
  authMethod: ClientAuthMethod;
  /** POSTGRES: the connection's database user; null for SQLITE. */
  postgresUser: string | null;
  serverUrl: string;
  snippet: string;
}

/** What {@link buildClientIntegration} reads: the databases service, the JWT provider and the synced tables. */
export interface ClientIntegrationDeps {
  databases: Pick<DatabasesService, 'getDatabase'>;
  publicUrl: string;
  jwtConfigured(databaseId: string): Promise<boolean>;
  /** Synced tables with their block columns, by name. */
  syncedTables(databaseId: string): Promise<ClientIntegrationTable[]>;
  /** CREATE TABLE statements devices create the synced tables with (tables service `deviceDdl`); a failure leaves the table setup out. */
  deviceDdl?(databaseId: string): Promise<readonly { sql: string }[]>;
}

export async function buildClientIntegration(deps: ClientIntegrationDeps, databaseId: string): Promise<ClientIntegration> {
  const db = await deps.databases.getDatabase(databaseId);
  const [jwtConfigured, tables, ddl] = await Promise.all([
    deps.jwtConfigured(databaseId),
    deps.syncedTables(databaseId),
    // Unreachable database or missing file: the snippet still shows the rest (the connection card says why).
    deps.deviceDdl?.(databaseId).catch(() => []) ?? Promise.resolve([]),
  ]);
  const kind: WorkspaceKind = db.kind === 'POSTGRES' ? 'POSTGRES' : 'SQLITE';
  const rlsMode: 'BYPASS' | 'ENFORCE' = db.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS';
  const authMethod: ClientAuthMethod = rlsMode === 'BYPASS' ? 'API_KEY' : jwtConfigured ? 'JWT' : 'ACCESS_TOKEN';
  const postgresUser = kind === 'POSTGRES' ? db.pgUser : null;
  const snippet = clientIntegrationSnippet({ databaseId, publicUrl: deps.publicUrl, rlsMode, jwtConfigured, tables, kind, postgresUser, deviceDdl: ddl.map((d) => d.sql) });
  return { databaseId, kind, rlsMode, authMethod, postgresUser, serverUrl: deps.publicUrl, snippet };
}
