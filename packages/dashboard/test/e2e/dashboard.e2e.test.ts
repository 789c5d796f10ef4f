/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against the real
 * server (`main.ts`, child process): sign in, create a project and a database, enable OffSync,
 * deploy a table, create an API key; a device (OffSync's client) syncs and appears in Devices
 * without a reload, the Metrics totals move live, the device is removed, OffSync is disabled.
 * A second session marks a block column when deploying a table and edits RLS policies (a refused
 * expression shows the API's message; saved, changed and removed policies survive a reload).
 * A third session runs a POSTGRES workspace (TEST_DATABASE_URL, else an embedded PGlite): tables
 * deployed before enabling, the PostgreSQL username & password card, the database's own RLS
 * policies (read only) and the snippet following the RLS mode.
 * axe-core checks every screen (no serious or critical violations); screenshots of every screen
 * go to OFFSYNC_SCREENSHOTS_DIR (default: a temp dir; docs/screenshots holds the committed ones).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { openDatabase } from '@offsync/client/sync';
import type { OffSyncDatabase } from '@offsync/client/sync';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openTestPostgres } from '../../../api/test/sync-fixtures/postgres.ts';
import { chromiumPath, ensureBuilt, startServer } from './server.ts';
import type { Server } from './server.ts';

const TODOS = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)";
const NOTES = "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL DEFAULT '')";
// A single-column INTEGER primary key: a schema issue (docs/PROTOCOL.md §P6), shown beside the table.
const LEGACY = 'CREATE TABLE legacy_items (id INTEGER PRIMARY KEY, name TEXT)';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// A relative directory is taken from where npm was invoked (INIT_CWD), e.g. the repository root.
const shotsDir = process.env['OFFSYNC_SCREENSHOTS_DIR'] ? resolve(process.env['INIT_CWD'] ?? process.cwd(), process.env['OFFSYNC_SCREENSHOTS_DIR']) : mkdtempSync(join(tmpdir(), 'offsync-dash-shots-'));
mkdirSync(shotsDir, { recursive: true });

let server: Server;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
const deviceDir = mkdtempSync(join(tmpdir(), 'offsync-dash-device-'));
let device: OffSyncDatabase | null = null;

beforeAll(async () => {
  const executablePath = chromiumPath(); // fails with the install hint when Chromium is missing
  ensureBuilt();
  server = await startServer();
  browser = await chromium.launch({ executablePath, headless: true, chromiumSandbox: false, args: ['--disable-gpu', '--disable-dev-shm-usage'] });
  await openSession();
});

/** A fresh browser session (new context: empty sessionStorage, so the admin key is asked again). */
async function openSession(): Promise<void> {
  await context?.close();
  context = await browser.newContext({ viewport: { width: 1280, height: 860 }, reducedMotion: 'reduce' });
  page = await context.newPage();
  pageErrors.length = 0;
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
}

/** A control-plane call from the test (admin key), for setup the first test already covers in the UI. */
async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(`${server.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.adminKey}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors !== undefined) throw new Error(body.errors.map((e) => e.message).join('; '));
  return body.data as T;
}

async function signIn(path: string): Promise<void> {
  await page.goto(`${server.origin}${path}`);
  await page.getByLabel('Admin key').fill(server.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

afterAll(async () => {
  await device?.close();
  await browser?.close();
  await server?.stop();
  rmSync(deviceDir, { recursive: true, force: true });
});

/** axe-core in the page (evaluated over CDP, so the page's CSP stays as served); serious/critical violations fail. */
async function checkA11y(screen: string): Promise<void> {
  await page.evaluate(`${axeSource}\n;undefined`);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: { id: string; impact: string | null; help: string; nodes: { target: unknown[] }[] }[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`);
  });
  expect(violations, `accessibility of ${screen}`).toEqual([]);
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: true });
}

function tab(name: string) {
  return page.getByRole('tab', { name });
}

test('sign in, create, enable, deploy, API key; a device appears live, metrics move, device removed', async () => {
  // Sign in (the admin key once per browser session).
  await page.goto(`${server.origin}/`);
  await expect.poll(() => page.getByLabel('Admin key').isVisible()).toBe(true);
  await checkA11y('sign-in');
  await shot('sign-in');
  await page.getByLabel('Admin key').fill('osa_wrong_key_0000000000');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'admin key was refused' }).waitFor();
  await page.getByLabel('Admin key').fill(server.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Welcome to OffSync' }).waitFor();
  expect(await page.evaluate(() => sessionStorage.getItem('offsync.adminKey'))).toBe(server.adminKey);

  // Project and database (left panel).
  await page.getByRole('button', { name: '+ New project' }).click();
  await page.getByLabel('Project name').fill('Acme');
  await page.getByRole('button', { name: 'Create project' }).click();
  await page.getByRole('button', { name: '+ New database' }).click();
  await page.getByLabel('Database name').fill('todo-app');
  await page.getByRole('button', { name: 'Create database' }).click();
  await page.getByRole('heading', { name: 'OffSync is not enabled for this database' }).waitFor();
  const databaseId = /\/databases\/([^/]+)\//.exec(new URL(page.url()).pathname)?.[1];
  expect(databaseId).toMatch(/^\w+/);
  const sidebarDb = page.getByRole('navigation').or(page.getByRole('complementary')).getByRole('button', { name: /todo-app/ });
  await expect.poll(() => sidebarDb.textContent()).toContain('Not enabled');

  // The app's schema, made by the developer in the database file (the API has no DDL).
  const file = new Database(server.databaseFile(databaseId!));
  file.exec(`${TODOS}; ${NOTES}; ${LEGACY}`);
  file.close();

  await checkA11y('not-enabled');
  await shot('not-enabled');

  // Enable OffSync → confirmation → tabs.
  await page.getByRole('button', { name: 'Enable OffSync' }).click();
  const enableDialog = page.getByRole('dialog', { name: 'Enable OffSync?' });
  await checkA11y('enable-dialog');
  await shot('enable-dialog');
  await enableDialog.getByRole('button', { name: 'Enable OffSync' }).click();
  await tab('Database Setup').waitFor();
  await expect.poll(() => sidebarDb.textContent()).toContain('OffSync on');
  await page.getByText('Connected').waitFor();

  // Database Setup: filter, pick, deploy; the schema issue beside its table.
  await page.getByText('0 of 3 selected').waitFor();
  await expect.poll(() => page.getByRole('list', { name: 'Schema issues of legacy_items' }).textContent()).toMatch(/INTEGER primary key/i);
  expect(await page.getByRole('checkbox', { name: /legacy_items/ }).isDisabled()).toBe(true);
  await page.getByLabel('Filter tables').fill('tod');
  expect(await page.getByRole('checkbox').count()).toBe(1);
  await page.getByRole('checkbox', { name: /todos/ }).check();
  await page.getByLabel('Filter tables').fill('');
  await page.getByText('1 of 3 selected').waitFor();
  await page.getByRole('button', { name: 'Deploy Changes' }).click();
  await page.getByRole('status', { name: 'Deploy result' }).filter({ hasText: 'todos: now synced' }).waitFor();
  await page.locator('.table-list li', { hasText: 'todos' }).getByText('Enabled').waitFor();
  // The engine's own metadata tables (todos__crdt_rows, …) are never offered.
  await page.getByText('1 of 3 selected').waitFor();
  await checkA11y('database-setup');
  await shot('database-setup');

  // Client Integration: Database ID, snippet, API key shown once.
  await tab('Client Integration').click();
  expect(await page.getByTestId('database-id').textContent()).toBe(databaseId);
  await expect.poll(() => page.getByTestId('snippet').textContent()).toContain("cloudsync_init('todos')");
  await page.getByLabel('Key name').fill('e2e device');
  await page.getByRole('button', { name: 'Create API key' }).click();
  const secret = (await page.getByTestId('secret').textContent()) ?? '';
  expect(secret).toMatch(/^osk_/);
  await page.getByRole('cell', { name: 'e2e device', exact: true }).waitFor();
  await checkA11y('client-integration');
  await shot('client-integration');
  await page.getByRole('button', { name: 'Done' }).click();
  expect(await page.getByTestId('secret').count()).toBe(0);

  // Devices: empty, then a device syncs and appears without a reload.
  await page.evaluate(() => { (window as unknown as { __noReload: boolean }).__noReload = true; });
  const subscribed = page.waitForEvent('websocket').then((ws) => ws.waitForEvent('framesent', { predicate: (f) => String(f.payload).includes('DeviceEvents') }));
  await tab('Devices').click();
  await page.getByTestId('no-devices').waitFor();
  await subscribed;

  device = openDatabase(join(deviceDir, 'device.db'), { serverUrl: server.origin, databaseId: databaseId!, apiKey: secret, maxAttempts: 1 });
  device.db.exec(TODOS);
  device.db.prepare("SELECT cloudsync_init('todos')").get();
  device.db.prepare("INSERT INTO todos (id, title) VALUES (cloudsync_uuid(), 'milk')").run();
  const row = page.locator(`tr[data-site-id="${device.siteId}"]`);
  // graphql-ws has no subscription acknowledgement: sync until the live event lands (never reload).
  for (let attempt = 0; ; attempt++) {
    const r = await device.sync();
    expect(r.send.status).not.toBe('error');
    if (await row.waitFor({ timeout: 3000 }).then(() => true, () => false)) break;
    if (attempt >= 5) throw new Error('the device never appeared in Devices');
  }
  expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
  expect(await row.textContent()).toContain('API key');
  // The left panel's billing-period usage follows the traffic (refreshed after device events).
  await expect.poll(() => page.getByTestId('usage-total').textContent(), { timeout: 15_000 }).not.toBe('0 B');
  await checkA11y('devices');
  await shot('devices');

  // Metrics: the live snapshot shows the upload, and moves when the device uploads more.
  await tab('Metrics').click();
  const upload = page.getByTestId('metric-uploadBytes');
  await expect.poll(() => upload.textContent(), { timeout: 15_000 }).not.toBe('0 B');
  const before = await upload.textContent();
  device.db.prepare("INSERT INTO todos (id, title) VALUES (cloudsync_uuid(), ?)").run('x'.repeat(4000));
  await device.sync();
  await expect.poll(() => upload.textContent(), { timeout: 15_000 }).not.toBe(before);
  expect(await page.getByTestId('metric-activeDevices').textContent()).toBe('1');
  expect(await page.locator('.chart canvas').count()).toBe(3);
  await checkA11y('metrics');
  await shot('metrics');

  await tab('Rejections').click();
  await page.getByText('No rejected changes.').waitFor();
  await checkA11y('rejections');
  await shot('rejections');

  // Remove the device (with confirmation); keyboard: arrows move between tabs.
  await tab('Rejections').focus();
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowLeft');
  expect(await tab('Devices').getAttribute('aria-selected')).toBe('true');
  await row.getByRole('button', { name: /Remove device/ }).click();
  await page.getByRole('dialog', { name: 'Remove device?' }).getByRole('button', { name: 'Remove device' }).click();
  await page.getByTestId('no-devices').waitFor();

  // Phone width: the left panel folds behind "Menu".
  await page.setViewportSize({ width: 390, height: 844 });
  expect(await page.getByRole('complementary', { name: 'Projects and databases' }).isVisible()).toBe(false);
  await page.getByRole('button', { name: 'Menu' }).click();
  await page.getByRole('complementary', { name: 'Projects and databases' }).waitFor();
  await shot('phone-menu');
  await page.getByRole('button', { name: 'Menu' }).click();
  await page.setViewportSize({ width: 1280, height: 860 });

  // Disable OffSync → confirmation → the not-enabled state again.
  await page.getByRole('button', { name: 'Disable OffSync' }).click();
  await page.getByRole('dialog', { name: 'Disable OffSync?' }).getByRole('button', { name: 'Disable OffSync' }).click();
  await page.getByRole('heading', { name: 'OffSync is not enabled for this database' }).waitFor();
  await expect.poll(() => sidebarDb.textContent()).toContain('Not enabled');

  // A deep link reloads into the same screen (SPA fallback), still signed in (sessionStorage).
  await page.goto(`${server.origin}/databases/${databaseId}/setup`);
  await page.getByRole('heading', { name: 'todo-app' }).waitFor();

  expect(pageErrors.filter((e) => !e.includes('401'))).toEqual([]);
});

test('block columns picked when deploying; the RLS policy editor refuses, saves, changes and removes policies', async () => {
  await openSession();
  const { createProject } = await gql<{ createProject: { id: string } }>('mutation { createProject(name: "Notes", kind: SQLITE) { id } }');
  const { createDatabase } = await gql<{ createDatabase: { id: string } }>('mutation ($p: ID!) { createDatabase(projectId: $p, name: "notes-app") { id } }', { p: createProject.id });
  const databaseId = createDatabase.id;
  const file = new Database(server.databaseFile(databaseId));
  file.exec("CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, owner TEXT, title TEXT NOT NULL DEFAULT '', body TEXT, pinned INTEGER NOT NULL DEFAULT 0)");
  file.close();
  await gql('mutation ($id: ID!) { enableOffSync(databaseId: $id) { id } }', { id: databaseId });

  // Database Setup: choosing the table offers its TEXT columns outside the key as block columns.
  await signIn(`/databases/${databaseId}/setup`);
  await page.getByText('0 of 1 selected').waitFor();
  expect(await page.getByRole('group', { name: 'Block columns of notes' }).count()).toBe(0);
  await page.getByRole('checkbox', { name: /^notes/ }).check();
  const picker = page.getByRole('group', { name: 'Block columns of notes' });
  await picker.waitFor();
  expect(await picker.getByRole('checkbox').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')))).toEqual([
    'Block column owner of notes', 'Block column title of notes', 'Block column body of notes',
  ]);
  await picker.getByRole('checkbox', { name: 'Block column body of notes' }).check();
  await page.getByText('1 to add, 0 to remove, block columns on 1').waitFor();
  await checkA11y('database-setup-block-columns');
  await shot('database-setup-block-columns');
  await page.getByRole('button', { name: 'Deploy Changes' }).click();
  await page.getByRole('status', { name: 'Deploy result' }).filter({ hasText: 'notes: now synced (block columns: body)' }).waitFor();
  expect(await page.getByTestId('block-columns-notes').textContent()).toBe('Block columns: body');
  // From the server after a reload (the listing's Table.blockColumns).
  await page.reload();
  await page.getByTestId('block-columns-notes').waitFor();
  expect(await page.getByTestId('block-columns-notes').textContent()).toBe('Block columns: body');

  // Client Integration: enforcing RLS shows the policy editor for the synced table.
  await tab('Client Integration').click();
  expect(await page.getByRole('group', { name: 'notes', exact: true }).count()).toBe(0);
  // A controlled radio: it turns checked once the server has the mode (setRlsMode, then a reload of the database).
  await page.getByLabel('Yes, enforce RLS').click();
  const policies = page.getByRole('group', { name: 'notes', exact: true });
  await policies.waitFor();
  expect(await page.getByLabel('Yes, enforce RLS').isChecked()).toBe(true);
  const select = policies.getByLabel('SELECT', { exact: true });
  const insert = policies.getByLabel('INSERT', { exact: true });
  const saveOf = (op: string) => policies.locator('.policy-row', { has: page.getByLabel(op, { exact: true }) }).getByRole('button');
  expect(await select.inputValue()).toBe('');
  expect(await saveOf('SELECT').isDisabled()).toBe(true);

  // A column the table does not have: the API's message, nothing saved.
  await select.fill('author = auth_userid()');
  await saveOf('SELECT').click();
  const refusal = policies.locator('.policy-row', { has: page.getByLabel('SELECT', { exact: true }) }).getByRole('alert');
  await expect.poll(() => refusal.textContent()).toMatch(/author/);
  expect(await refusal.textContent()).toContain('Correct the highlighted value');

  await select.fill("owner = auth_userid() OR json_extract(auth_json(), '$.attributes.role') = 'admin'");
  await saveOf('SELECT').click();
  await expect.poll(() => saveOf('SELECT').isDisabled()).toBe(true);
  expect(await refusal.count()).toBe(0);
  await insert.fill('NEW.owner = auth_userid()');
  await saveOf('INSERT').click();
  await expect.poll(() => saveOf('INSERT').isDisabled()).toBe(true);
  await checkA11y('rls-policies');
  await shot('rls-policies');

  // Saved policies come back from the server; a changed one replaces it; an emptied one is removed.
  await page.reload();
  await policies.waitFor();
  expect(await select.inputValue()).toBe("owner = auth_userid() OR json_extract(auth_json(), '$.attributes.role') = 'admin'");
  expect(await insert.inputValue()).toBe('NEW.owner = auth_userid()');
  await select.fill('owner = auth_userid()');
  await saveOf('SELECT').click();
  await expect.poll(() => saveOf('SELECT').isDisabled()).toBe(true);
  await insert.fill('');
  expect(await saveOf('INSERT').textContent()).toBe('Remove');
  await saveOf('INSERT').click();
  await expect.poll(() => saveOf('INSERT').textContent()).toBe('Save');
  await page.reload();
  await policies.waitFor();
  expect(await select.inputValue()).toBe('owner = auth_userid()');
  expect(await insert.inputValue()).toBe('');
  const listed = await gql<{ database: { rlsMode: string; rlsPolicies: { table: string; operation: string; expression: string }[] } }>(
    'query ($id: ID!) { database(id: $id) { rlsMode rlsPolicies { table operation expression } } }', { id: databaseId },
  );
  expect(listed.database).toEqual({ rlsMode: 'ENFORCE', rlsPolicies: [{ table: 'notes', operation: 'SELECT', expression: 'owner = auth_userid()' }] });

  // The refused save above is the one error the page may log (its 400 answer).
  expect(pageErrors.filter((e) => !e.includes('401') && !e.includes('400'))).toEqual([]);
});

test('POSTGRES workspace: deploy before enabling, PostgreSQL username & password, its RLS policies read only, the snippet follows the mode', async () => {
  await openSession();
  const pg = await openTestPostgres();
  try {
    await pg.sql("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')");
    await pg.sql('ALTER TABLE todos ENABLE ROW LEVEL SECURITY');
    await pg.sql("CREATE POLICY own_rows ON todos USING (user_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'sub'))");
    const c = pg.connection;
    const { createProject } = await gql<{ createProject: { id: string } }>('mutation { createProject(name: "Supabase", kind: POSTGRES) { id } }');
    const { createDatabase } = await gql<{ createDatabase: { id: string } }>('mutation ($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "pg-app", connection: $c) { id } }', {
      p: createProject.id, c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) },
    });
    const databaseId = createDatabase.id;

    // Not enabled: enabling is refused without a deployed table, so Database Setup comes first.
    await signIn(`/databases/${databaseId}/setup`);
    await page.getByText('OffSync is not enabled for this database').waitFor();
    await page.getByRole('button', { name: 'Enable OffSync' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Enable OffSync' }).click();
    await page.getByRole('dialog').getByText(/no table is deployed for sync/).waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByText('0 of 1 selected').waitFor();
    await page.getByRole('checkbox', { name: /^todos/ }).check();
    await page.getByRole('button', { name: 'Deploy Changes' }).click();
    await page.getByRole('status', { name: 'Deploy result' }).filter({ hasText: 'todos: now synced' }).waitFor();
    await page.getByRole('button', { name: 'Enable OffSync' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Enable OffSync' }).click();
    await tab('Client Integration').waitFor();

    await tab('Client Integration').click();
    const card = page.getByRole('region', { name: 'PostgreSQL username & password' });
    await card.waitFor();
    expect(await page.getByTestId('postgres-user').textContent()).toBe(c.user);
    expect(await card.textContent()).toContain(`${c.user}:<password>`);
    if (c.password !== '') expect(await page.content()).not.toContain(c.password);
    expect(await page.getByTestId('snippet').textContent()).toContain(`cloudsync_network_set_apikey('${c.user}:<password>')`);
    const rls = page.getByRole('region', { name: 'Row-level security of todos' });
    await rls.waitFor();
    expect(await rls.textContent()).toContain('RLS enabled');
    expect(await rls.getByRole('row', { name: /own_rows/ }).textContent()).toContain('request.jwt.claims');
    await checkA11y('client-integration-postgres');
    await shot('client-integration-postgres');

    await page.getByLabel('Yes, enforce RLS').click();
    await expect.poll(() => page.getByTestId('snippet').textContent()).toContain('cloudsync_network_set_token(');
    expect(await page.getByTestId('snippet').textContent()).toContain('PostgreSQL row-level security policies apply');
    expect(await card.count()).toBe(0);
    await page.getByRole('region', { name: 'JWT provider' }).waitFor();
    await checkA11y('client-integration-postgres-enforce');
    await shot('client-integration-postgres-enforce');
    // The refused enable above is the one error the page may log (its 409 answer).
    expect(pageErrors.filter((e) => !e.includes('401') && !e.includes('409'))).toEqual([]);
  } finally {
    await pg.close();
  }
});
