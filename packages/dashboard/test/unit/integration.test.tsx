// @vitest-environment happy-dom
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { TableFieldsFragment } from '@offsync/client';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { ApiClient } from '../../src/api.ts';
import { ApiContext } from '../../src/hooks.ts';
import { integrationLayout, postgresCredential, summarizePostgresRls } from '../../src/logic/integration.ts';
import type { DatabaseDetails } from '../../src/screens/DatabaseView.tsx';
import { DatabaseView } from '../../src/screens/DatabaseView.tsx';
import { IntegrationTab } from '../../src/screens/IntegrationTab.tsx';

afterEach(cleanup);

function fakeApi(methods: Record<string, unknown>): ApiClient {
  return new Proxy(methods, {
    get: (target, key) => {
      if (key in target) return target[key as string];
      if (key === 'dispose') return async () => {};
      throw new Error(`unexpected call: ${String(key)}`);
    },
  }) as unknown as ApiClient;
}

describe('integration logic', () => {
  test('credential cards and policy view per workspace type and RLS mode', () => {
    expect(integrationLayout('SQLITE', 'BYPASS')).toEqual({ credentials: ['API_KEYS'], policies: null });
    expect(integrationLayout('SQLITE', 'ENFORCE')).toEqual({ credentials: ['JWT_PROVIDER', 'ACCESS_TOKENS'], policies: 'OFFSYNC' });
    expect(integrationLayout('POSTGRES', 'BYPASS')).toEqual({ credentials: ['POSTGRES_USER', 'API_KEYS'], policies: 'POSTGRES' });
    expect(integrationLayout('POSTGRES', 'ENFORCE')).toEqual({ credentials: ['JWT_PROVIDER', 'ACCESS_TOKENS'], policies: 'POSTGRES' });
  });

  test('the PostgreSQL credential names the user and never a password', () => {
    expect(postgresCredential('app_sync')).toBe('app_sync:<password>');
    expect(postgresCredential(null)).toBe('<db-user>:<password>');
  });

  test('PostgreSQL RLS summaries: disabled, enabled without policies (deny by default), with policies, forced, bypass', () => {
    const policy = { name: 'own', command: 'ALL', permissive: 'PERMISSIVE', roles: ['public'], using: 'true', withCheck: null };
    expect(summarizePostgresRls({ enabled: false, forced: false, policies: [] }, 'ENFORCE')).toMatchObject({ tone: 'warn', label: 'RLS disabled' });
    expect(summarizePostgresRls({ enabled: false, forced: false, policies: [] }, 'BYPASS')).toMatchObject({ tone: 'off', detail: expect.stringContaining('Not applied now') });
    expect(summarizePostgresRls({ enabled: true, forced: false, policies: [] }, 'ENFORCE')).toMatchObject({ tone: 'warn', detail: expect.stringContaining('deny by default') });
    expect(summarizePostgresRls({ enabled: true, forced: true, policies: [policy, { ...policy, name: 'b' }] }, 'ENFORCE')).toEqual({
      tone: 'ok', label: 'RLS enabled (forced, also for the owner)', detail: '2 policies decide what each user reads and writes.',
    });
    expect(summarizePostgresRls(null, 'ENFORCE').label).toBe('Unknown');
  });
});

const pgTable = (name: string, postgresRls: TableFieldsFragment['postgresRls']): TableFieldsFragment => ({
  name, selected: true, enabled: true, algorithm: 'CLS', blockColumns: [], columns: [], schemaIssues: [], postgresRls,
});

function pgDatabase(rlsMode: 'BYPASS' | 'ENFORCE'): DatabaseDetails {
  return {
    id: 'db_pg', name: 'app', kind: 'POSTGRES', projectId: 'p', createdAt: '2026-01-01T00:00:00Z', rlsMode,
    project: { id: 'p', name: 'supabase', kind: 'POSTGRES' },
    connection: { status: 'OK', checkedAt: '2026-01-01T00:00:00Z', host: 'db.local', port: 5432, database: 'app', extensionInstalled: true, error: null },
    clientIntegration: {
      databaseId: 'db_pg', kind: 'POSTGRES', serverUrl: 'http://x', authMethod: rlsMode === 'BYPASS' ? 'API_KEY' : 'JWT', rlsMode, postgresUser: 'app_sync',
      snippet: rlsMode === 'BYPASS' ? "SELECT cloudsync_network_set_apikey('app_sync:<password>');" : "SELECT cloudsync_network_set_token('<JWT signed by your identity provider>');",
    },
    offSync: { enabled: true, enabledAt: '2026-01-01T00:00:00Z' },
  };
}

function integrationApi(setRlsMode = vi.fn(async () => ({ setRlsMode: { id: 'db_pg', rlsMode: 'ENFORCE' as const } }))) {
  return fakeApi({
    databaseAuth: async () => ({ database: { id: 'db_pg', auth: { apiKeys: [], accessTokens: [], jwtProvider: { configured: false, method: null, issuer: null, audience: null, jwksUri: null, updatedAt: null } } } }),
    tables: async () => ({ database: { id: 'db_pg', tables: { totalCount: 2, selectedCount: 2, nodes: [
      pgTable('todos', { enabled: true, forced: false, policies: [{ name: 'own_rows', command: 'ALL', permissive: 'PERMISSIVE', roles: ['authenticated'], using: '(user_id = auth.uid())', withCheck: '(user_id = auth.uid())' }] }),
      pgTable('tags', { enabled: false, forced: false, policies: [] }),
    ] } } }),
    pushNotifications: async () => ({ database: { id: 'db_pg', pushNotifications: { expoAccessTokenConfigured: false, expoAccessTokenUpdatedAt: null, registeredTokens: 0 } } }),
    setRlsMode,
  });
}

describe('Client Integration on a POSTGRES workspace', () => {
  test('BYPASS: the PostgreSQL username & password card (user, never the password), API keys, the RLS view not applied; choosing enforce reloads the snippet', async () => {
    const setRlsMode = vi.fn(async () => ({ setRlsMode: { id: 'db_pg', rlsMode: 'ENFORCE' as const } }));
    const reloadDatabase = vi.fn(async () => {});
    const view = render(<ApiContext.Provider value={integrationApi(setRlsMode)}><IntegrationTab database={pgDatabase('BYPASS')} reloadDatabase={reloadDatabase} /></ApiContext.Provider>);
    const card = screen.getByRole('heading', { name: 'PostgreSQL username & password' }).closest('section') ?? document.body;
    expect(screen.getByTestId('postgres-user').textContent).toBe('app_sync');
    expect(card.textContent).toContain('app_sync:<password>');
    expect(card.textContent).toMatch(/Row-level security is bypassed/);
    expect(within(card as HTMLElement).queryByLabelText(/password/i)).toBeNull();
    expect(screen.getByTestId('snippet').textContent).toContain("'app_sync:<password>'");
    await screen.findByRole('heading', { name: 'API keys' });
    const todos = await screen.findByRole('region', { name: 'Row-level security of todos' });
    expect(todos.textContent).toContain('Not applied now');
    expect(screen.getByText(/this view is read only/)).toBeTruthy();
    expect(screen.queryByRole('heading', { name: 'RLS policies' })).toBeNull();

    fireEvent.click(screen.getByRole('radio', { name: /Yes, enforce RLS/ }));
    await waitFor(() => expect(reloadDatabase).toHaveBeenCalled());
    expect(setRlsMode).toHaveBeenCalledWith({ databaseId: 'db_pg', mode: 'ENFORCE' });

    // The database as reloaded: the snippet and the cards follow the mode.
    view.rerender(<ApiContext.Provider value={integrationApi()}><IntegrationTab database={pgDatabase('ENFORCE')} reloadDatabase={reloadDatabase} /></ApiContext.Provider>);
    expect(screen.getByTestId('snippet').textContent).toContain('cloudsync_network_set_token');
    expect(screen.queryByRole('heading', { name: 'PostgreSQL username & password' })).toBeNull();
    await screen.findByRole('heading', { name: 'JWT provider' });
    await screen.findByRole('heading', { name: 'Access tokens' });
  });

  test('ENFORCE: each synced table with its PostgreSQL policies (command, roles, USING, WITH CHECK), read only', async () => {
    render(<ApiContext.Provider value={integrationApi()}><IntegrationTab database={pgDatabase('ENFORCE')} reloadDatabase={async () => {}} /></ApiContext.Provider>);
    const todos = await screen.findByRole('region', { name: 'Row-level security of todos' });
    expect(todos.textContent).toContain('RLS enabled');
    const row = within(todos).getByRole('row', { name: /own_rows/ });
    expect(row.textContent).toContain('ALL');
    expect(row.textContent).toContain('authenticated');
    expect(row.textContent).toContain('(user_id = auth.uid())');
    expect(within(todos).queryByRole('textbox')).toBeNull();
    const tags = screen.getByRole('region', { name: 'Row-level security of tags' });
    expect(tags.textContent).toContain('RLS disabled');
    expect(screen.getByText(/these policies decide what every device reads and writes/)).toBeTruthy();
  });
});

describe('DatabaseView on a POSTGRES database', () => {
  test('not enabled: Database Setup is offered first; Delete asks whether to uninstall and sends the flag', async () => {
    const db = { ...pgDatabase('BYPASS'), offSync: { enabled: false, enabledAt: null } };
    const deleteDatabase = vi.fn(async () => ({ deleteDatabase: { id: 'db_pg', uninstalled: true } }));
    const onDeleted = vi.fn();
    const api = fakeApi({
      database: async () => ({ database: db }),
      tables: async () => ({ database: { id: 'db_pg', tables: { totalCount: 1, selectedCount: 0, nodes: [{ ...pgTable('todos', null), selected: false, enabled: false }] } } }),
      deleteDatabase,
    });
    render(<ApiContext.Provider value={api}><DatabaseView databaseId="db_pg" tab="setup" onTab={() => {}} onChanged={() => {}} onDeleted={onDeleted} /></ApiContext.Provider>);
    await screen.findByText('OffSync is not enabled for this database');
    expect(screen.getByText(/deploy at least one table below first/)).toBeTruthy();
    await screen.findByText('0 of 1 selected');
    fireEvent.click(screen.getByRole('button', { name: 'Delete database' }));
    const dialog = await screen.findByRole('dialog');
    const box = within(dialog).getByRole('checkbox', { name: /Also remove OffSync’s triggers/ }) as HTMLInputElement;
    expect(box.checked).toBe(false);
    fireEvent.click(box);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Delete database' }));
    await waitFor(() => expect(onDeleted).toHaveBeenCalled());
    expect(deleteDatabase).toHaveBeenCalledWith({ id: 'db_pg', uninstall: true });
  });
});
