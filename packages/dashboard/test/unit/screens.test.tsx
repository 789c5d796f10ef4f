// @vitest-environment happy-dom
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { ClientError, ClientErrorCode } from '@offsync/client';
import type { DeviceEventsSubscription, DeviceFieldsFragment, TableFieldsFragment } from '@offsync/client';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { ApiClient } from '../../src/api.ts';
import { ADMIN_KEY_STORAGE } from '../../src/api.ts';
import { App } from '../../src/App.tsx';
import { ApiContext } from '../../src/hooks.ts';
import { DevicesTab } from '../../src/screens/DevicesTab.tsx';
import { TablePicker } from '../../src/screens/SetupTab.tsx';

afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

/** Only the operations a screen calls; the rest throw if used. */
function fakeApi(methods: Record<string, unknown>): ApiClient {
  return new Proxy(methods, {
    get: (target, key) => {
      if (key in target) return target[key as string];
      if (key === 'dispose') return async () => {};
      throw new Error(`unexpected call: ${String(key)}`);
    },
  }) as unknown as ApiClient;
}

const table = (name: string, selected: boolean, issues: string[] = [], blockColumns: string[] = []): TableFieldsFragment => ({
  name, selected, enabled: selected, algorithm: selected ? 'CLS' : null, blockColumns,
  columns: [
    { name: 'id', type: 'TEXT', notNull: true, defaultValue: null, primaryKeyPosition: 1 },
    { name: 'body', type: 'TEXT', notNull: false, defaultValue: null, primaryKeyPosition: 0 },
    { name: 'n', type: 'INTEGER', notNull: false, defaultValue: null, primaryKeyPosition: 0 },
    { name: 'title', type: 'VARCHAR(80)', notNull: false, defaultValue: null, primaryKeyPosition: 0 },
  ],
  schemaIssues: issues.map((message) => ({ rule: 'D1', message })),
  postgresRls: null,
});

/** An async iterator the test pushes results into (a subscription). */
function channel<T>() {
  const queue: T[] = [];
  let wake: (() => void) | null = null;
  let closed = false;
  const iterator: AsyncIterableIterator<T> = {
    async next() {
      while (queue.length === 0 && !closed) await new Promise<void>((r) => { wake = r; });
      return queue.length > 0 ? { done: false, value: queue.shift()! } : { done: true, value: undefined };
    },
    async return() { closed = true; wake?.(); return { done: true, value: undefined }; },
    [Symbol.asyncIterator]() { return iterator; },
  };
  return { iterator, push(v: T) { queue.push(v); wake?.(); }, get closed() { return closed; } };
}

describe('TablePicker', () => {
  test('n of m selected, checkboxes, Select All, Deploy Changes sends the declarative set and shows the per-table result', async () => {
    const deployTables = vi.fn(async (_vars: { databaseId: string; tables: string[] }) => ({
      deployTables: { added: ['notes'], removed: [], tables: { totalCount: 3, selectedCount: 2, nodes: [table('legacy', false, ['bad key']), table('notes', true), table('todos', true)] } },
    }));
    const api = fakeApi({
      tables: async () => ({ database: { id: 'db', tables: { totalCount: 3, selectedCount: 1, nodes: [table('legacy', false, ['bad key']), table('notes', false), table('todos', true)] } } }),
      deployTables,
    });
    render(<ApiContext.Provider value={api}><TablePicker databaseId="db" kind="SQLITE" extensionInstalled /></ApiContext.Provider>);
    await screen.findByText('1 of 3 selected');
    expect(screen.getByText('bad key')).toBeTruthy();
    expect((screen.getByRole('checkbox', { name: /legacy/ }) as HTMLInputElement).disabled).toBe(true);
    expect((screen.getByRole('button', { name: 'Deploy Changes' }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Select All' }));
    await screen.findByText('2 of 3 selected');
    fireEvent.click(screen.getByRole('button', { name: 'Deploy Changes' }));
    await screen.findByText(/now synced/);
    expect(deployTables).toHaveBeenCalledWith({ databaseId: 'db', tables: ['notes', 'todos'] });
    expect(screen.getByRole('status', { name: 'Deploy result' }).textContent).toContain('notes: now synced');
  });

  test('a SCHEMA_ISSUES refusal shows the API message and which table was refused', async () => {
    const refused = [{ table: 'notes', issues: [{ rule: 'D1', message: 'no DEFAULT on a NOT NULL column' }] }];
    const api = fakeApi({
      tables: async () => ({ database: { id: 'db', tables: { totalCount: 1, selectedCount: 0, nodes: [table('notes', false)] } } }),
      deployTables: async () => { throw new ClientError(ClientErrorCode.DOMAIN, 'Some tables cannot be synced: notes', { serverCode: 'SCHEMA_ISSUES', errors: [{ message: 'x', extensions: { code: 'SCHEMA_ISSUES', refused } }] }); },
    });
    render(<ApiContext.Provider value={api}><TablePicker databaseId="db" kind="SQLITE" extensionInstalled /></ApiContext.Provider>);
    fireEvent.click(await screen.findByRole('checkbox', { name: /notes/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Deploy Changes' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('Some tables cannot be synced: notes');
    expect(alert.textContent).toContain('Fix the table');
    expect(screen.getByRole('status', { name: 'Deploy result' }).textContent).toContain('notes: refused — no DEFAULT on a NOT NULL column');
  });
});

describe('TablePicker block columns', () => {
  test('a table being added offers its TEXT columns as block columns; Deploy Changes sends them; a synced table shows its own', async () => {
    const deployTables = vi.fn(async (_vars: unknown) => ({
      deployTables: { added: ['notes'], removed: [], tables: { totalCount: 2, selectedCount: 2, nodes: [table('notes', true, [], ['body', 'title']), table('todos', true, [], ['body'])] } },
    }));
    const api = fakeApi({
      tables: async () => ({ database: { id: 'db', tables: { totalCount: 2, selectedCount: 1, nodes: [table('notes', false), table('todos', true, [], ['body'])] } } }),
      deployTables,
    });
    render(<ApiContext.Provider value={api}><TablePicker databaseId="db" kind="SQLITE" extensionInstalled /></ApiContext.Provider>);
    await screen.findByText('1 of 2 selected');
    expect(screen.getByTestId('block-columns-todos').textContent).toBe('Block columns: body');
    // Not offered until the table is chosen; then only TEXT columns outside the key.
    expect(screen.queryByRole('group', { name: 'Block columns of notes' })).toBeNull();
    fireEvent.click(screen.getByRole('checkbox', { name: /^notes/ }));
    const group = await screen.findByRole('group', { name: 'Block columns of notes' });
    expect([...group.querySelectorAll('input[type=checkbox]')].map((i) => i.getAttribute('aria-label'))).toEqual(['Block column body of notes', 'Block column title of notes']);
    fireEvent.click(screen.getByRole('checkbox', { name: 'Block column title of notes' }));
    fireEvent.click(screen.getByRole('checkbox', { name: 'Block column body of notes' }));
    await screen.findByText('1 to add, 0 to remove, block columns on 1');
    fireEvent.click(screen.getByRole('button', { name: 'Deploy Changes' }));
    await screen.findByText(/now synced/);
    expect(deployTables).toHaveBeenCalledWith({ databaseId: 'db', tables: ['notes', 'todos'], options: [{ table: 'notes', blockColumns: ['body', 'title'] }] });
    expect(screen.getByRole('status', { name: 'Deploy result' }).textContent).toContain('notes: now synced (block columns: body, title)');
    expect(screen.getByTestId('block-columns-notes').textContent).toBe('Block columns: body, title');
    expect(screen.queryByRole('group', { name: 'Block columns of notes' })).toBeNull();
  });

  test('a refused block column is shown beside its table; POSTGRES databases offer no block columns', async () => {
    const api = fakeApi({
      tables: async () => ({ database: { id: 'db', tables: { totalCount: 1, selectedCount: 0, nodes: [table('notes', false)] } } }),
      deployTables: async () => {
        throw new ClientError(ClientErrorCode.DOMAIN, 'options.blockColumns: column title of table notes is declared INTEGER', {
          serverCode: 'VALIDATION_FAILED', errors: [{ message: 'x', extensions: { code: 'VALIDATION_FAILED', reason: 'BLOCK_COLUMN_NOT_TEXT', table: 'notes', column: 'title' } }],
        });
      },
    });
    render(<ApiContext.Provider value={api}><TablePicker databaseId="db" kind="SQLITE" extensionInstalled /></ApiContext.Provider>);
    fireEvent.click(await screen.findByRole('checkbox', { name: /^notes/ }));
    fireEvent.click(await screen.findByRole('checkbox', { name: 'Block column title of notes' }));
    fireEvent.click(screen.getByRole('button', { name: 'Deploy Changes' }));
    expect((await screen.findByRole('alert')).textContent).toContain('is declared INTEGER');
    expect(screen.getByRole('status', { name: 'Deploy result' }).textContent).toContain('notes: refused — options.blockColumns: column title');
    cleanup();

    const pgApi = fakeApi({ tables: async () => ({ database: { id: 'db', tables: { totalCount: 1, selectedCount: 0, nodes: [table('notes', false)] } } }) });
    render(<ApiContext.Provider value={pgApi}><TablePicker databaseId="db" kind="POSTGRES" extensionInstalled /></ApiContext.Provider>);
    fireEvent.click(await screen.findByRole('checkbox', { name: /^notes/ }));
    await screen.findByText('1 of 1 selected');
    expect(screen.queryByRole('group', { name: 'Block columns of notes' })).toBeNull();
  });
});

describe('TablePicker Alter table', () => {
  const tablesApi = () => async () => ({ database: { id: 'db', tables: { totalCount: 2, selectedCount: 1, nodes: [table('notes', false), table('todos', true)] } } });

  test('only synced tables offer it; empty statements send nothing; success shows what ran and the new hashes', async () => {
    const altered = table('todos', true);
    altered.columns = [...altered.columns, { name: 'due', type: 'TEXT', notNull: false, defaultValue: null, primaryKeyPosition: 0 }];
    const alterTable = vi.fn(async (_vars: { databaseId: string; table: string; statements: string[] }) => ({
      alterTable: { statements: ['ALTER TABLE "todos" ADD COLUMN "due" TEXT', 'ALTER TABLE "todos" RENAME COLUMN "title" TO "name"'], schemaHash: '1234567890123456789', ddlSchemaHash: '987654321', table: altered },
    }));
    render(<ApiContext.Provider value={fakeApi({ tables: tablesApi(), alterTable })}><TablePicker databaseId="db" kind="SQLITE" extensionInstalled /></ApiContext.Provider>);
    await screen.findByText('1 of 2 selected');
    expect(screen.queryByRole('button', { name: 'Alter table notes' })).toBeNull();
    expect(screen.getByRole('checkbox', { name: 'todos 4 columns' })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Alter table todos' }));
    const dialog = await screen.findByRole('dialog', { name: 'Alter table todos' });
    const submit = within(dialog).getByRole('button', { name: 'Alter table' }) as HTMLButtonElement;
    const area = within(dialog).getByLabelText('ALTER TABLE statements');
    expect(submit.disabled).toBe(true);
    fireEvent.change(area, { target: { value: '  \n -- nothing yet\n' } });
    expect(submit.disabled).toBe(true);
    fireEvent.submit(submit.closest('form')!);
    expect(alterTable).not.toHaveBeenCalled();
    fireEvent.change(area, { target: { value: 'ALTER TABLE todos ADD COLUMN due TEXT\nALTER TABLE todos RENAME COLUMN title TO name\n' } });
    within(dialog).getByText('2 statements');
    fireEvent.click(submit);
    const result = await within(dialog).findByRole('status', { name: 'Alter result' });
    expect(alterTable).toHaveBeenCalledTimes(1);
    expect(alterTable).toHaveBeenCalledWith({ databaseId: 'db', table: 'todos', statements: ['ALTER TABLE todos ADD COLUMN due TEXT', 'ALTER TABLE todos RENAME COLUMN title TO name'] });
    expect([...result.querySelectorAll('li')].map((li) => li.textContent)).toEqual(['ALTER TABLE "todos" ADD COLUMN "due" TEXT', 'ALTER TABLE "todos" RENAME COLUMN "title" TO "name"']);
    expect(result.textContent).toContain('Schema hash1234567890123456789');
    expect(result.textContent).toContain('DDL schema hash987654321');
    expect((area as HTMLTextAreaElement).value).toBe('');
    expect(within(dialog).queryByRole('alert')).toBeNull();
    // The picker shows the table as altered.
    expect(screen.getByRole('checkbox', { name: 'todos 5 columns' })).toBeTruthy();
    fireEvent.click(within(dialog).getByRole('button', { name: 'Close' }));
    expect(screen.queryByRole('dialog')).toBeNull();
  });

  test('a refusal shows the reason in plain words, the statement it concerns and that nothing changed', async () => {
    const alterTable = vi.fn(async () => {
      const message = 'statements[1]: column title of todos is named by its RLS SELECT policy; change or remove the RLS SELECT policy first (setRlsPolicy / removeRlsPolicy), then drop the column';
      throw new ClientError(ClientErrorCode.DOMAIN, message, {
        serverCode: 'ALTER_REFUSED', errors: [{ message, extensions: { code: 'ALTER_REFUSED', field: 'statements', statement: 1, reason: 'POLICY_DEPENDENCY', column: 'title', operations: ['SELECT'] } }],
      });
    });
    render(<ApiContext.Provider value={fakeApi({ tables: tablesApi(), alterTable })}><TablePicker databaseId="db" kind="SQLITE" extensionInstalled /></ApiContext.Provider>);
    fireEvent.click(await screen.findByRole('button', { name: 'Alter table todos' }));
    const dialog = await screen.findByRole('dialog', { name: 'Alter table todos' });
    fireEvent.change(within(dialog).getByLabelText('ALTER TABLE statements'), { target: { value: 'ALTER TABLE todos ADD COLUMN due TEXT; ALTER TABLE todos DROP COLUMN title;' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Alter table' }));
    const alert = await within(dialog).findByRole('alert', { name: 'Alter refused' });
    expect(alterTable).toHaveBeenCalledWith({ databaseId: 'db', table: 'todos', statements: ['ALTER TABLE todos ADD COLUMN due TEXT', 'ALTER TABLE todos DROP COLUMN title'] });
    expect(alert.querySelector('strong')?.textContent).toBe('An RLS policy of this table depends on this column: change or remove the policy first (Client Integration, RLS policies), then alter the table.');
    expect(alert.textContent).toContain('Statement 2: ALTER TABLE todos DROP COLUMN title');
    expect(alert.textContent).toContain('is named by its RLS SELECT policy');
    expect(alert.textContent).toContain('Nothing was changed.');
    expect(within(dialog).queryByRole('status', { name: 'Alter result' })).toBeNull();
    // The statements stay for correcting.
    expect((within(dialog).getByLabelText('ALTER TABLE statements') as HTMLTextAreaElement).value).toContain('DROP COLUMN title');
  });
});

describe('DevicesTab', () => {
  const device = (siteId: string): DeviceFieldsFragment => ({ siteId, lastSyncAt: new Date().toISOString(), firstSeenAt: new Date().toISOString(), uploadBytes: 2048, downloadBytes: 0, userId: 'alice', credentialKind: 'ACCESS_TOKEN', clientVersion: '1.1.4', schemaHash: 'abc' });

  test('rows appear, update and disappear from deviceEvents; Remove asks first', async () => {
    const events = channel<DeviceEventsSubscription>();
    const removeDevice = vi.fn(async () => ({ removeDevice: true }));
    const api = fakeApi({
      devices: async () => ({ database: { id: 'db', devices: { totalCount: 0, nodes: [], edges: [], pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null } } } }),
      deviceEvents: () => events.iterator,
      removeDevice,
    });
    const site = 'a'.repeat(32);
    render(<ApiContext.Provider value={api}><DevicesTab databaseId="db" /></ApiContext.Provider>);
    await screen.findByTestId('no-devices');
    await act(async () => events.push({ deviceEvents: { kind: 'REGISTERED', at: new Date().toISOString(), databaseId: 'db', siteId: site, device: device(site) } }));
    await screen.findByText('alice');
    expect(screen.getByText(/2\.00 KB/)).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: /Remove device/ }));
    const dialog = await screen.findByRole('dialog', { name: 'Remove device?' });
    expect(removeDevice).not.toHaveBeenCalled();
    fireEvent.click(dialog.querySelector('button.btn-danger')!);
    await screen.findByTestId('no-devices');
    expect(removeDevice).toHaveBeenCalledWith({ databaseId: 'db', siteId: site });
    await act(async () => events.push({ deviceEvents: { kind: 'SYNCED', at: new Date().toISOString(), databaseId: 'db', siteId: 'b'.repeat(32), device: device('b'.repeat(32)) } }));
    await screen.findByText('alice');
    await act(async () => events.push({ deviceEvents: { kind: 'REMOVED', at: new Date().toISOString(), databaseId: 'db', siteId: 'b'.repeat(32), device: null } }));
    await screen.findByTestId('no-devices');
    cleanup();
    await waitFor(() => expect(events.closed).toBe(true)); // unmount unsubscribes
  });
});

describe('sign-in', () => {
  test('a refused key shows the API message; a good one is kept in sessionStorage for the session', async () => {
    const factory = (token: string) => fakeApi({
      projects: async () => {
        if (token !== 'osa_good_key') throw new ClientError(ClientErrorCode.UNAUTHENTICATED, 'Invalid admin key', { serverCode: 'UNAUTHENTICATED' });
        return { projects: [] };
      },
      project: async () => { throw new Error('no projects'); },
      usage: async () => { throw new Error('no projects'); },
    });
    render(<App clientFactory={factory} />);
    fireEvent.change(screen.getByLabelText('Admin key'), { target: { value: 'osa_bad' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect((await screen.findByRole('alert')).textContent).toContain('Invalid admin key');
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBeNull();
    fireEvent.change(screen.getByLabelText('Admin key'), { target: { value: 'osa_good_key' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByText('Welcome to OffSync');
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBe('osa_good_key');
    fireEvent.click(screen.getByRole('button', { name: 'Sign out' }));
    await screen.findByLabelText('Admin key');
    expect(sessionStorage.getItem(ADMIN_KEY_STORAGE)).toBeNull();
  });
});
