/** The SQL a device runs to sync with this server, for the database's RLS mode and auth method. */
export interface ClientIntegrationInput {
  databaseId: string;
  publicUrl: string;
  rlsMode: 'BYPASS' | 'ENFORCE';
  jwtConfigured: boolean;
  tables: string[];
}

export function clientIntegrationSnippet(i: ClientIntegrationInput): string {
  const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const tables = i.tables.length > 0 ? i.tables : ['<table>'];
  const auth = i.rlsMode === 'BYPASS'
    ? ['-- RLS mode BYPASS: authenticate with an API key (createApiKey); it sees every row.', "SELECT cloudsync_network_set_apikey('<API key>');"]
    : [
        `-- RLS mode ENFORCE: authenticate as a user; policies decide which rows sync.`,
        i.jwtConfigured
          ? "SELECT cloudsync_network_set_token('<JWT signed by your identity provider>');"
          : "SELECT cloudsync_network_set_token('<access token from createAccessToken>');",
      ];
  return [
    '-- Load the SQLite Sync extension first (e.g. .load ./cloudsync).',
    ...tables.map((t) => `SELECT cloudsync_init(${q(t)});`),
    `SELECT cloudsync_network_init_custom(${q(i.publicUrl)}, ${q(i.databaseId)});`,
    ...auth,
    'SELECT cloudsync_network_sync();',
    '',
  ].join('\n');
}
