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
 * After each `cloudsync_init(t)` one `cloudsync_set_column(t, c, 'algo', 'block')` per block column.
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
  return [
    '-- Load the SQLite Sync extension first (e.g. .load ./cloudsync).',
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
}

export async function buildClientIntegration(deps: ClientIntegrationDeps, databaseId: string): Promise<ClientIntegration> {
  const db = await deps.databases.getDatabase(databaseId);
  const [jwtConfigured, tables] = await Promise.all([deps.jwtConfigured(databaseId), deps.syncedTables(databaseId)]);
  const kind: WorkspaceKind = db.kind === 'POSTGRES' ? 'POSTGRES' : 'SQLITE';
  const rlsMode: 'BYPASS' | 'ENFORCE' = db.rlsMode === 'ENFORCE' ? 'ENFORCE' : 'BYPASS';
  const authMethod: ClientAuthMethod = rlsMode === 'BYPASS' ? 'API_KEY' : jwtConfigured ? 'JWT' : 'ACCESS_TOKEN';
  const postgresUser = kind === 'POSTGRES' ? db.pgUser : null;
  const snippet = clientIntegrationSnippet({ databaseId, publicUrl: deps.publicUrl, rlsMode, jwtConfigured, tables, kind, postgresUser });
  return { databaseId, kind, rlsMode, authMethod, postgresUser, serverUrl: deps.publicUrl, snippet };
}
