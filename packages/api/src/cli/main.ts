/**
 * `offsync`: the operator CLI (docs/CONTROL-PLANE.md "Operator CLI"). Commands that talk to a
 * running server use its GraphQL API with an admin key (`--url`, `--admin-key`; env OFFSYNC_URL,
 * OFFSYNC_ADMIN_KEY or OFFSYNC_ADMIN_KEY_FILE); `admin-key`, `recover`, the schema step of
 * `db create` and `backup` work on DATA_DIR directly (run them where the server's DATA_DIR is,
 * with the environment of `npm start`). `--json` prints one JSON document on stdout; errors go to
 * stderr (as `{"error":{code,message}}` with `--json`); exit codes in {@link Exit}.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { splitSqlStatements } from '@offsync/core/sql-text';
import { checkOptions, CliError, Exit, opt, parseArgs, positional, required, table, usageError } from './args.ts';
import type { CommandSpec, Parsed } from './args.ts';
import { adminKeys, applySchema, backup } from './local.ts';

interface Ctx { parsed: Parsed; json: boolean; cwd: string }
type Output = { json: unknown; text: string };
type Run = (ctx: Ctx) => Promise<Output>;

// ── GraphQL over HTTP ────────────────────────────────────────────────────────────────────────

function serverUrl(p: Parsed): string {
  const explicit = opt(p, 'url') ?? process.env['OFFSYNC_URL'];
  if (explicit !== undefined && explicit !== '') return explicit.replace(/\/+$/, '').replace(/\/graphql$/, '');
  const host = process.env['HOST'] || '127.0.0.1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${process.env['PORT'] || '4000'}`;
}

function adminKey(p: Parsed): string {
  const direct = opt(p, 'admin-key') ?? process.env['OFFSYNC_ADMIN_KEY'];
  if (direct !== undefined && direct !== '') return direct.trim();
  const file = process.env['OFFSYNC_ADMIN_KEY_FILE'];
  if (file !== undefined && file !== '') return readFileSync(file, 'utf8').trim();
  throw new CliError(Exit.UNAUTHORIZED, 'NO_ADMIN_KEY', 'an admin key is needed: --admin-key, OFFSYNC_ADMIN_KEY or OFFSYNC_ADMIN_KEY_FILE (lost it? offsync recover)');
}

async function fetchOrUnreachable(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new CliError(Exit.UNREACHABLE, 'UNREACHABLE', `no answer from ${url}: ${e instanceof Error ? e.message : String(e)} (is the server running? --url)`);
  }
}

/** A GraphQL error of the API: its `extensions` beyond `code` (e.g. alterTable's reason and statement) as `details`. */
class ApiCliError extends CliError {
  readonly details: Readonly<Record<string, unknown>>;
  constructor(exitCode: number, code: string, message: string, details: Readonly<Record<string, unknown>>) {
    super(exitCode, code, message);
    this.details = details;
  }
}

async function gql<T>(ctx: Ctx, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const url = `${serverUrl(ctx.parsed)}/graphql`;
  const key = adminKey(ctx.parsed);
  const res = await fetchOrUnreachable(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) });
  let body: { data?: T; errors?: { message: string; extensions?: { code?: string; [k: string]: unknown } }[] };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new CliError(Exit.UNREACHABLE, 'NOT_OFFSYNC', `${url} answered ${res.status} without a GraphQL body`);
  }
  const err = body.errors?.[0];
  if (err !== undefined) {
    const { code = 'GRAPHQL_ERROR', http: _http, ...details } = err.extensions ?? {};
    throw new ApiCliError(code === 'UNAUTHENTICATED' ? Exit.UNAUTHORIZED : Exit.FAILED, code, err.message, details);
  }
  return body.data as T;
}

async function projectId(ctx: Ctx, idOrName: string, create: boolean): Promise<string> {
  const { projects } = await gql<{ projects: { id: string; name: string }[] }>(ctx, '{ projects { id name } }');
  const hit = projects.find((p) => p.id === idOrName) ?? projects.find((p) => p.name === idOrName);
  if (hit !== undefined) return hit.id;
  if (!create) throw new CliError(Exit.FAILED, 'NOT_FOUND', `no project ${idOrName}`);
  return (await gql<{ createProject: { id: string } }>(ctx, 'mutation($n: String!) { createProject(name: $n, kind: SQLITE) { id } }', { n: idOrName })).createProject.id;
}

const TABLES_FIELDS = 'tables { selectedCount totalCount nodes { name selected enabled algorithm initFlags schemaIssues { rule message } } }';
type TableNode = { name: string; selected: boolean; enabled: boolean; algorithm: string | null; initFlags: number; schemaIssues: { rule: string; message: string }[] };
const tableRows = (nodes: TableNode[]) => nodes.map((n) => ({ name: n.name, synced: n.selected, enabled: n.enabled, algorithm: n.algorithm, flags: n.initFlags, issues: n.schemaIssues.map((i) => i.rule).join(',') || null }));

async function deploy(ctx: Ctx, databaseId: string, tables: string[], mode: string, algorithm: string | undefined, allowIntegerPk: boolean) {
  const options = algorithm === undefined && !allowIntegerPk ? [] : tables.map((t) => ({ table: t, ...(algorithm === undefined ? {} : { algorithm: algorithm.toUpperCase() }), ...(allowIntegerPk ? { allowIntegerPk: true } : {}) }));
  const r = await gql<{ deployTables: { added: string[]; removed: string[]; tables: { nodes: TableNode[] } } }>(
    ctx,
    `mutation($d: ID!, $t: [String!]!, $m: DeployMode, $o: [TableDeployOptions!]) { deployTables(databaseId: $d, tables: $t, mode: $m, options: $o) { added removed ${TABLES_FIELDS} } }`,
    { d: databaseId, t: tables, m: mode, o: options },
  );
  return r.deployTables;
}

/** For people (without --json): alterTable's refusal (ALTER_REFUSED: details.reason; ALTER_FAILED: the database's message) with the statement it concerns. */
function alterRefusal(e: ApiCliError, statements: readonly string[]): ApiCliError {
  const reason = typeof e.details['reason'] === 'string' ? ` (reason ${e.details['reason']})` : '';
  const index = e.details['statement'];
  const text = typeof index === 'number' ? statements[index] : undefined;
  const which = typeof index === 'number' && text !== undefined ? `, statement ${index + 1} of ${statements.length}: ${text}` : '';
  return new ApiCliError(e.exitCode, e.code, `${e.code}${reason}${which}\n  ${e.message}\n  Nothing was changed.`, e.details);
}

// ── commands ─────────────────────────────────────────────────────────────────────────────────

interface Command extends CommandSpec { run: Run }

const MODES = ['REPLACE', 'ADD', 'REMOVE'];

const commands: Command[] = [
  {
    name: 'start',
    usage: 'offsync start',
    summary: 'Start the server (same as npm start; configured by the environment: PORT, HOST, DATA_DIR, DATABASE_URL, …)',
    run: async () => {
      await import('../main.ts');
      return await new Promise<Output>(() => {}); // serves until a signal ends the process
    },
  },
  {
    name: 'admin-key list',
    usage: 'offsync admin-key list',
    summary: 'List admin keys (ids and dates; secrets are never stored) — direct DATA_DIR access',
    run: async () => {
      const keys = await adminKeys.list();
      return { json: { adminKeys: keys }, text: table(keys, ['id', 'createdAt', 'lastUsedAt']) };
    },
  },
  {
    name: 'admin-key create',
    usage: 'offsync admin-key create',
    summary: 'Create an admin key and print it once — direct DATA_DIR access',
    run: async () => {
      const k = await adminKeys.create();
      return { json: k, text: `Admin key ${k.id} (shown once): ${k.secret}\n` };
    },
  },
  {
    name: 'admin-key rotate',
    usage: 'offsync admin-key rotate <id>',
    summary: 'Replace an admin key by a new one (printed once); the old one stops working at once',
    run: async ({ parsed }) => {
      const k = await adminKeys.rotate(positional(parsed, 2, 'admin key id'));
      return { json: k, text: `Admin key ${k.id} replaces ${k.replaced} (shown once): ${k.secret}\n` };
    },
  },
  {
    name: 'admin-key revoke',
    usage: 'offsync admin-key revoke <id> [--force]',
    summary: 'Revoke (delete) an admin key; refuses the last one unless --force',
    flags: ['force'],
    run: async ({ parsed }) => {
      const r = await adminKeys.revoke(positional(parsed, 2, 'admin key id'), parsed.options.has('force'));
      return { json: r, text: `Admin key ${r.revoked} revoked.\n` };
    },
  },
  {
    name: 'recover',
    usage: 'offsync recover [--revoke-others]',
    summary: 'Lost the admin key? Create a new one from DATA_DIR access alone (server may be running); --revoke-others deletes every other key',
    details: 'Run it on the server host with the environment of npm start (DATA_DIR, DATABASE_URL). A key given by OFFSYNC_ADMIN_KEY to the server is stored again at its next start.',
    flags: ['revoke-others'],
    run: async ({ parsed }) => {
      const r = await adminKeys.recover(parsed.options.has('revoke-others'));
      return { json: r, text: `New admin key ${r.id} (shown once): ${r.secret}\n${r.revoked.length > 0 ? `Revoked: ${r.revoked.join(', ')}\n` : ''}` };
    },
  },
  {
    name: 'db list',
    usage: 'offsync db list [--project <id|name>]',
    summary: 'List databases (all projects, or one)',
    options: ['project'],
    run: async (ctx) => {
      const { projects } = await gql<{ projects: { id: string; name: string; databases: { id: string; name: string; kind: string; offSync: { enabled: boolean }; rlsMode: string }[] }[] }>(ctx, '{ projects { id name databases { id name kind offSync { enabled } rlsMode } } }');
      const want = opt(ctx.parsed, 'project');
      const rows = projects.filter((p) => want === undefined || p.id === want || p.name === want).flatMap((p) => p.databases.map((d) => ({ id: d.id, name: d.name, project: p.name, projectId: p.id, kind: d.kind, enabled: d.offSync.enabled, rlsMode: d.rlsMode })));
      return { json: { databases: rows }, text: table(rows, ['id', 'name', 'project', 'kind', 'enabled', 'rlsMode']) };
    },
  },
  {
    name: 'db create',
    usage: 'offsync db create --project <id|name> --name <name> [--schema file.sql] [--deploy] [--enable]',
    summary: 'Create a SQLITE database (and the project when no project has that id or name), run a schema file on it with OffSync\'s bundled SQLite, deploy its tables, enable sync',
    details: '--schema runs on the central file directly (the CLI must see the server\'s DATA_DIR). --deploy deploys every table the schema created (mode ADD); --enable switches sync on.',
    options: ['project', 'name', 'schema'],
    flags: ['deploy', 'enable'],
    run: async (ctx) => {
      const { parsed } = ctx;
      const name = required(parsed, 'name');
      const schemaFile = opt(parsed, 'schema');
      const sql = schemaFile === undefined ? undefined : readFileSync(resolve(ctx.cwd, schemaFile), 'utf8');
      const pid = await projectId(ctx, required(parsed, 'project'), true);
      const { createDatabase } = await gql<{ createDatabase: { id: string } }>(ctx, 'mutation($p: ID!, $n: String!) { createDatabase(projectId: $p, name: $n) { id } }', { p: pid, n: name });
      const id = createDatabase.id;
      const out: Record<string, unknown> = { databaseId: id, projectId: pid, name };
      let text = `Database ${id} created in project ${pid}.\n`;
      if (sql !== undefined) {
        const s = applySchema(id, sql);
        Object.assign(out, { tablesCreated: s.created, sqliteVersion: s.sqliteVersion });
        text += `Schema applied with SQLite ${s.sqliteVersion}: ${s.created.join(', ') || 'no new table'}.\n`;
        if (parsed.options.has('deploy') && s.created.length > 0) {
          const d = await deploy(ctx, id, s.created, 'ADD', undefined, false);
          out['deployed'] = d.added;
          text += `Deployed for sync: ${d.added.join(', ')}.\n`;
        }
      } else if (parsed.options.has('deploy')) throw usageError('--deploy needs --schema');
      if (parsed.options.has('enable')) {
        await gql(ctx, 'mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: id });
        out['enabled'] = true;
        text += 'Sync enabled.\n';
      }
      return { json: out, text };
    },
  },
  {
    name: 'db enable',
    usage: 'offsync db enable <databaseId>',
    summary: 'Switch sync on for a database',
    run: async (ctx) => {
      const id = positional(ctx.parsed, 2, 'database id');
      await gql(ctx, 'mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: id });
      return { json: { databaseId: id, enabled: true }, text: `Sync enabled for ${id}.\n` };
    },
  },
  {
    name: 'api-key create',
    usage: 'offsync api-key create <databaseId> --name <name>',
    summary: 'Create a database API key for devices (bypasses RLS) and print it once',
    options: ['name'],
    run: async (ctx) => {
      const id = positional(ctx.parsed, 2, 'database id');
      const r = await gql<{ createApiKey: { secret: string; apiKey: { id: string } } }>(ctx, 'mutation($d: ID!, $n: String!) { createApiKey(databaseId: $d, name: $n) { secret apiKey { id } } }', { d: id, n: required(ctx.parsed, 'name') });
      return { json: { databaseId: id, id: r.createApiKey.apiKey.id, secret: r.createApiKey.secret }, text: `API key ${r.createApiKey.apiKey.id} (shown once): ${r.createApiKey.secret}\n` };
    },
  },
  {
    name: 'tables list',
    usage: 'offsync tables list <databaseId>',
    summary: 'List a database\'s tables: synced or not, algorithm, flags, schema issues',
    run: async (ctx) => {
      const id = positional(ctx.parsed, 2, 'database id');
      const r = await gql<{ database: { tables: { nodes: TableNode[] } } }>(ctx, `query($d: ID!) { database(id: $d) { ${TABLES_FIELDS} } }`, { d: id });
      return { json: { databaseId: id, tables: r.database.tables.nodes }, text: table(tableRows(r.database.tables.nodes), ['name', 'synced', 'enabled', 'algorithm', 'flags', 'issues']) };
    },
  },
  {
    name: 'tables deploy',
    usage: 'offsync tables deploy <databaseId> <table>... [--mode replace|add|remove] [--algorithm cls|gos] [--allow-integer-pk]',
    summary: 'Deploy tables for sync. --mode replace (default): the synced set becomes exactly these; add; remove',
    details: '--algorithm and --allow-integer-pk apply to the tables being added.',
    options: ['mode', 'algorithm'],
    flags: ['allow-integer-pk'],
    run: async (ctx) => {
      const id = positional(ctx.parsed, 2, 'database id');
      const tables = ctx.parsed.positionals.slice(3);
      const mode = (opt(ctx.parsed, 'mode') ?? 'replace').toUpperCase();
      if (!MODES.includes(mode)) throw usageError('--mode must be replace, add or remove');
      if (tables.length === 0 && mode !== 'REPLACE') throw usageError('missing table names');
      const algorithm = opt(ctx.parsed, 'algorithm');
      if (algorithm !== undefined && !['cls', 'gos'].includes(algorithm.toLowerCase())) throw usageError('--algorithm must be cls or gos');
      const d = await deploy(ctx, id, tables, mode, algorithm, ctx.parsed.options.has('allow-integer-pk'));
      return { json: { databaseId: id, added: d.added, removed: d.removed, tables: d.tables.nodes }, text: `Added: ${d.added.join(', ') || '-'}\nRemoved: ${d.removed.join(', ') || '-'}\n${table(tableRows(d.tables.nodes), ['name', 'synced', 'enabled', 'algorithm', 'flags', 'issues'])}` };
    },
  },
  {
    name: 'tables alter',
    usage: 'offsync tables alter <databaseId> <table> [<statement>...] [--file <path>]',
    summary: 'Change a synced table\'s schema: ALTER TABLE statements run in one transaction, all or nothing (alterTable)',
    details:
      'Each argument after the table is one statement (quote it for the shell). --file reads statements from a file (- for stdin), separated by ";"; they run after the arguments. ' +
      'Accepted: ADD COLUMN, DROP COLUMN, RENAME COLUMN and ALTER COLUMN of that table (not its primary key); devices on the old schema keep syncing. ' +
      'Prints the statements that ran (as rebuilt by the server) and the new schema hashes. A refusal prints its code (ALTER_REFUSED with its reason, or ALTER_FAILED), ' +
      'the statement it concerns (1-based) and the server\'s message, and exits 1; with --json the error has details.reason and details.statement (0-based).',
    options: ['file'],
    run: async (ctx) => {
      const id = positional(ctx.parsed, 2, 'database id');
      const tableName = positional(ctx.parsed, 3, 'table name');
      const file = opt(ctx.parsed, 'file');
      const fromFile = file === undefined ? [] : splitSqlStatements(file === '-' ? readFileSync(0, 'utf8') : readFileSync(resolve(ctx.cwd, file), 'utf8'));
      const statements = [...ctx.parsed.positionals.slice(4), ...fromFile];
      if (statements.length === 0) throw usageError(file === undefined ? 'missing ALTER TABLE statements (one per argument, or --file)' : `no statement in ${file}`);
      type Altered = { statements: string[]; schemaHash: string; ddlSchemaHash: string; table: { name: string } };
      let r: { alterTable: Altered };
      try {
        r = await gql<{ alterTable: Altered }>(
          ctx,
          'mutation($d: ID!, $t: String!, $s: [String!]!) { alterTable(databaseId: $d, table: $t, statements: $s) { statements schemaHash ddlSchemaHash table { name } } }',
          { d: id, t: tableName, s: statements },
        );
      } catch (e) {
        if (!ctx.json && e instanceof ApiCliError && (e.code === 'ALTER_REFUSED' || e.code === 'ALTER_FAILED')) throw alterRefusal(e, statements);
        throw e;
      }
      const a = r.alterTable;
      return {
        json: { databaseId: id, table: a.table.name, statements: a.statements, schemaHash: a.schemaHash, ddlSchemaHash: a.ddlSchemaHash },
        text: `Altered ${a.table.name} (${a.statements.length} ${a.statements.length === 1 ? 'statement' : 'statements'} ran):\n${a.statements.map((x) => `  ${x}\n`).join('')}Schema hash: ${a.schemaHash}\nDDL schema hash: ${a.ddlSchemaHash}\n`,
      };
    },
  },
  {
    name: 'devices list',
    usage: 'offsync devices list <databaseId>',
    summary: 'List a database\'s devices (most recent first): user, client, last sync, traffic, backlog, last error',
    run: async (ctx) => {
      const id = positional(ctx.parsed, 2, 'database id');
      type Dev = { siteId: string; userId: string | null; credentialKind: string; clientVersion: string | null; schemaHash: string | null; lastSyncAt: string; uploadBytes: number; downloadBytes: number; lastError: { code: string; message: string } | null; backlog: { changes: number; bytes: number; versionsBehind: number; resyncRequired: boolean } | null };
      // Pages of 50 (the query-cost limit), most recent first.
      const all: Dev[] = [];
      let after: string | null = null;
      let totalCount = 0;
      for (;;) {
        const r: { database: { devices: { totalCount: number; nodes: Dev[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } } = await gql(
          ctx,
          'query($d: ID!, $a: String) { database(id: $d) { devices(first: 50, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { siteId userId credentialKind clientVersion schemaHash lastSyncAt uploadBytes downloadBytes lastError { code message } backlog { changes bytes versionsBehind resyncRequired } } } } }',
          { d: id, a: after },
        );
        all.push(...r.database.devices.nodes);
        totalCount = r.database.devices.totalCount;
        if (!r.database.devices.pageInfo.hasNextPage || all.length >= 100_000) break;
        after = r.database.devices.pageInfo.endCursor;
      }
      const rows = all.map((d) => ({ siteId: d.siteId, user: d.userId, auth: d.credentialKind, client: d.clientVersion, lastSync: d.lastSyncAt, up: d.uploadBytes, down: d.downloadBytes, backlog: d.backlog?.resyncRequired === true ? 'resync' : (d.backlog?.changes ?? null), error: d.lastError?.code ?? null }));
      return { json: { databaseId: id, totalCount, devices: all }, text: table(rows, ['siteId', 'user', 'auth', 'client', 'lastSync', 'up', 'down', 'backlog', 'error']) };
    },
  },
  {
    name: 'status',
    usage: 'offsync status',
    summary: 'Server health and readiness, projects, databases, device counts',
    run: async (ctx) => {
      const base = serverUrl(ctx.parsed);
      const health = await fetchOrUnreachable(`${base}/healthz`);
      const ready = await fetchOrUnreachable(`${base}/readyz`);
      const readyBody = (await ready.json().catch(() => ({}))) as Record<string, unknown>;
      const { projects } = await gql<{ projects: { id: string; name: string; databases: { id: string; name: string; offSync: { enabled: boolean }; devices: { totalCount: number } }[] }[] }>(ctx, '{ projects { id name databases { id name offSync { enabled } devices(first: 1) { totalCount } } } }');
      const rows = projects.flatMap((p) => p.databases.map((d) => ({ project: p.name, database: d.id, name: d.name, enabled: d.offSync.enabled, devices: d.devices.totalCount })));
      const out = { url: base, healthy: health.status === 200, ready: ready.status === 200, readiness: readyBody, projects: projects.length, databases: rows };
      return { json: out, text: `Server ${base}: ${out.healthy ? 'healthy' : `unhealthy (${health.status})`}, ${out.ready ? 'ready' : `not ready (${ready.status})`}\n${table(rows, ['project', 'database', 'name', 'enabled', 'devices'])}` };
    },
  },
  {
    name: 'usage',
    usage: 'offsync usage --project <id|name> [--period current|previous]',
    summary: 'Billing-period usage of a project: bytes up and down, requests, active devices, per database',
    options: ['project', 'period'],
    run: async (ctx) => {
      const period = (opt(ctx.parsed, 'period') ?? 'current').toUpperCase();
      if (period !== 'CURRENT' && period !== 'PREVIOUS') throw usageError('--period must be current or previous');
      const pid = await projectId(ctx, required(ctx.parsed, 'project'), false);
      type U = { databaseId: string; uploadBytes: number; downloadBytes: number; requests: number; activeDevices: number };
      const r = await gql<{ usage: { periodStart: string; periodEnd: string; uploadBytes: number; downloadBytes: number; requests: number; activeDevices: number; databases: U[] } }>(
        ctx,
        'query($p: ID!, $period: UsagePeriod) { usage(projectId: $p, period: $period) { periodStart periodEnd uploadBytes downloadBytes requests activeDevices databases { databaseId uploadBytes downloadBytes requests activeDevices } } }',
        { p: pid, period },
      );
      const u = r.usage;
      return { json: { projectId: pid, period, ...u }, text: `Project ${pid}, ${u.periodStart} – ${u.periodEnd}: up ${u.uploadBytes} B, down ${u.downloadBytes} B, ${u.requests} requests, ${u.activeDevices} active devices\n${table(u.databases, ['databaseId', 'uploadBytes', 'downloadBytes', 'requests', 'activeDevices'])}` };
    },
  },
  {
    name: 'backup',
    usage: 'offsync backup <databaseId> <file>',
    summary: 'Online backup of a central database (SQLite backup API, while the server runs); the copy is integrity-checked',
    run: async (ctx) => {
      const r = await backup(positional(ctx.parsed, 1, 'database id'), resolve(ctx.cwd, positional(ctx.parsed, 2, 'destination file')));
      return { json: r, text: `Backed up ${r.database} to ${r.file} (${r.bytes} bytes, integrity ${r.integrity}).\n` };
    },
  },
];

const GROUPS = ['admin-key', 'db', 'api-key', 'tables', 'devices'];

function helpText(spec?: CommandSpec): string {
  if (spec !== undefined) return `usage: ${spec.usage}\n\n${spec.summary}.\n${spec.details === undefined ? '' : `\n${spec.details}\n`}\nOptions: --json (machine-readable output), --url <server> (OFFSYNC_URL), --admin-key <key> (OFFSYNC_ADMIN_KEY, OFFSYNC_ADMIN_KEY_FILE), --help\n`;
  return [
    'usage: offsync <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.usage}\n      ${c.summary}`),
    '',
    'Every command takes --help and --json. Server commands use --url (OFFSYNC_URL, default http://$HOST:$PORT, 127.0.0.1:4000)',
    'and an admin key (--admin-key, OFFSYNC_ADMIN_KEY or OFFSYNC_ADMIN_KEY_FILE). admin-key, recover, db create --schema and backup',
    'work on DATA_DIR directly (environment of npm start: DATA_DIR, DATABASE_URL).',
    '',
    'Exit codes: 0 ok, 1 operation failed or refused, 2 usage error, 3 server unreachable, 4 admin key missing or refused.',
    '',
  ].join('\n');
}

function find(positionals: readonly string[]): Command | undefined {
  const [a, b] = positionals;
  if (a !== undefined && GROUPS.includes(a)) return commands.find((c) => c.name === `${a} ${b ?? ''}`);
  return commands.find((c) => c.name === a);
}

export async function runCli(argv: readonly string[], io: { stdout: (s: string) => void; stderr: (s: string) => void; cwd: string }): Promise<number> {
  const json = argv.includes('--json');
  try {
    const BOOLEANS = new Set(['json', 'help', ...commands.flatMap((c) => c.flags ?? [])]);
    const parsed = parseArgs(argv, BOOLEANS);
    const cmd = find(parsed.positionals);
    if (cmd === undefined) {
      const [a] = parsed.positionals;
      if (a === undefined || a === 'help') {
        io.stdout(helpText());
        return parsed.options.has('help') || a === 'help' ? Exit.OK : Exit.USAGE;
      }
      if (GROUPS.includes(a) && parsed.options.has('help')) {
        io.stdout(`${commands.filter((c) => c.name.startsWith(`${a} `)).map((c) => `usage: ${c.usage}\n    ${c.summary}`).join('\n')}\n`);
        return Exit.OK;
      }
      throw usageError(`unknown command "${parsed.positionals.slice(0, 2).join(' ')}" (offsync --help)`);
    }
    if (parsed.options.has('help')) {
      io.stdout(helpText(cmd));
      return Exit.OK;
    }
    checkOptions(cmd, parsed);
    const out = await cmd.run({ parsed, json, cwd: io.cwd });
    io.stdout(json ? `${JSON.stringify(out.json, null, 2)}\n` : out.text);
    return Exit.OK;
  } catch (e) {
    const err = e instanceof CliError ? e : new CliError(Exit.FAILED, 'FAILED', e instanceof Error ? e.message : String(e));
    const details = err instanceof ApiCliError && Object.keys(err.details).length > 0 ? { details: err.details } : {};
    io.stderr(json ? `${JSON.stringify({ error: { code: err.code, message: err.message, exitCode: err.exitCode, ...details } })}\n` : `offsync: ${err.message}\n`);
    return err.exitCode;
  }
}
