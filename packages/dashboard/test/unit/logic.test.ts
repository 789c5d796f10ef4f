import { ClientError, ClientErrorCode } from '@offsync/client';
import type { DeviceFieldsFragment } from '@offsync/client';
import { describe, expect, test } from 'vitest';
import { blockColumnRefusals, describeError, refusedTables } from '../../src/api.ts';
import { formatBytes, formatRelative, shortId } from '../../src/format.ts';
import { applyDeviceEvent } from '../../src/logic/devices.ts';
import { chartColumns } from '../../src/logic/metrics.ts';
import { blockCandidates, canSelect, deployOutcome, deployPlan, deselectAll, filterTables, hasTextAffinity, initialSelection, selectAll, toggle, toggleBlockColumn } from '../../src/logic/tables.ts';
import { parseRoute, routePath } from '../../src/route.ts';

const issue = [{ rule: 'D1.3', message: 'single INTEGER primary key' }];
const tables = [
  { name: 'todos', selected: true, enabled: true, schemaIssues: [] },
  { name: 'notes', selected: false, enabled: false, schemaIssues: [] },
  { name: 'legacy', selected: false, enabled: false, schemaIssues: issue },
  { name: 'todo_tags', selected: false, enabled: false, schemaIssues: [] },
];

describe('table picker', () => {
  test('filter is a case-insensitive substring match; blank shows all', () => {
    expect(filterTables(tables, ' TODO ').map((t) => t.name)).toEqual(['todos', 'todo_tags']);
    expect(filterTables(tables, '')).toHaveLength(4);
  });

  test('Select All takes the visible syncable tables only; Deselect All clears the visible ones', () => {
    const start = initialSelection(tables);
    expect([...start]).toEqual(['todos']);
    expect([...selectAll(start, tables)].sort()).toEqual(['notes', 'todo_tags', 'todos']);
    expect([...selectAll(start, filterTables(tables, 'note'))].sort()).toEqual(['notes', 'todos']);
    expect([...deselectAll(new Set(['todos', 'notes']), filterTables(tables, 'todo'))]).toEqual(['notes']);
  });

  test('a table with issues cannot be newly selected, but can be deselected', () => {
    expect(canSelect(tables[2]!, new Set())).toBe(false);
    expect(canSelect(tables[2]!, new Set(['legacy']))).toBe(true);
    expect(canSelect(tables[1]!, new Set())).toBe(true);
  });

  test('deploy plan: the declarative set, what is added and removed', () => {
    const chosen = toggle(toggle(initialSelection(tables), 'todos'), 'notes');
    expect(deployPlan(tables, chosen)).toEqual({ add: ['notes'], remove: ['todos'], tables: ['notes'], options: [], changed: true });
    expect(deployPlan(tables, initialSelection(tables)).changed).toBe(false);
  });

  test('block columns: TEXT-affinity columns outside the key are candidates, as SQLite decides affinity', () => {
    expect(['TEXT', 'varchar(20)', 'NCHAR', 'CLOB', 'character varying'].map(hasTextAffinity)).toEqual([true, true, true, true, true]);
    expect(['INTEGER', 'BLOB', '', 'REAL', 'NUMERIC', 'POINT', 'CHARINT'].map(hasTextAffinity)).toEqual([false, false, false, false, false, false, false]);
    const columns = [
      { name: 'id', type: 'TEXT', primaryKeyPosition: 1 },
      { name: 'body', type: 'TEXT', primaryKeyPosition: 0 },
      { name: 'n', type: 'INTEGER', primaryKeyPosition: 0 },
      { name: 'title', type: 'VARCHAR(80)', primaryKeyPosition: 0 },
    ];
    expect(blockCandidates(columns).map((c) => c.name)).toEqual(['body', 'title']);
  });

  test('block columns picked per table, in column order, sent only for tables being added', () => {
    const order = ['id', 'body', 'title'];
    let draft = toggleBlockColumn(new Map(), 'notes', 'title', order);
    draft = toggleBlockColumn(draft, 'notes', 'body', order);
    draft = toggleBlockColumn(draft, 'todos', 'body', order);
    expect([...draft]).toEqual([['notes', ['body', 'title']], ['todos', ['body']]]);
    expect([...toggleBlockColumn(draft, 'todos', 'body', order)]).toEqual([['notes', ['body', 'title']]]);
    // todos is synced already (its block columns are fixed), legacy is not chosen: only notes gets options.
    const plan = deployPlan(tables, new Set(['todos', 'notes']), new Map([...draft, ['legacy', ['x']]]));
    expect(plan).toEqual({ add: ['notes'], remove: [], tables: ['todos', 'notes'], options: [{ table: 'notes', blockColumns: ['body', 'title'] }], changed: true });
    // Picking block columns alone is no change.
    expect(deployPlan(tables, initialSelection(tables), draft).changed).toBe(false);
  });

  test('a block-column refusal becomes a per-table refusal; other errors do not', () => {
    const err = (code: string, extensions: Record<string, unknown>) => new ClientError(ClientErrorCode.DOMAIN, 'options.blockColumns: column n of table notes is declared INTEGER', { serverCode: code, errors: [{ message: 'x', extensions: { code, ...extensions } }] });
    expect(blockColumnRefusals(err('VALIDATION_FAILED', { reason: 'BLOCK_COLUMN_NOT_TEXT', table: 'notes', column: 'n' }))).toEqual([
      { table: 'notes', issues: [{ rule: 'BLOCK_COLUMN_NOT_TEXT', message: 'options.blockColumns: column n of table notes is declared INTEGER' }] },
    ]);
    expect(blockColumnRefusals(err('VALIDATION_FAILED', { field: 'options', table: 'notes' }))).toEqual([]);
    expect(blockColumnRefusals(new Error('x'))).toEqual([]);
  });

  test('per-table outcome: added/removed on success; refused and not-deployed on SCHEMA_ISSUES', () => {
    const plan = { add: ['notes', 'legacy'], remove: ['todos'], tables: ['notes', 'legacy'], options: [], changed: true };
    expect(deployOutcome(plan, { added: ['notes'], removed: ['todos'] })).toEqual([{ table: 'notes', result: 'added' }, { table: 'todos', result: 'removed' }]);
    expect(deployOutcome(plan, { refused: [{ table: 'legacy', issues: [{ rule: 'r', message: 'bad key' }, { rule: 's', message: 'no default' }] }] })).toEqual([
      { table: 'notes', result: 'not-deployed' },
      { table: 'legacy', result: 'refused', message: 'bad key; no default' },
      { table: 'todos', result: 'not-deployed' },
    ]);
  });
});

const device = (siteId: string, lastSyncAt: string, uploadBytes = 0): DeviceFieldsFragment => ({
  siteId, lastSyncAt, uploadBytes, downloadBytes: 0, userId: null, credentialKind: 'API_KEY', clientVersion: '1.1.4', schemaHash: null, firstSeenAt: lastSyncAt,
});

describe('devices list from deviceEvents', () => {
  test('REGISTERED adds, SYNCED replaces and moves to the top, REMOVED drops', () => {
    let list: DeviceFieldsFragment[] = [];
    list = applyDeviceEvent(list, { kind: 'REGISTERED', siteId: 'a', device: device('a', '2025-01-01T00:00:00Z') });
    list = applyDeviceEvent(list, { kind: 'REGISTERED', siteId: 'b', device: device('b', '2025-01-01T00:01:00Z') });
    expect(list.map((d) => d.siteId)).toEqual(['b', 'a']);
    list = applyDeviceEvent(list, { kind: 'SYNCED', siteId: 'a', device: device('a', '2025-01-01T00:02:00Z', 99) });
    expect(list.map((d) => [d.siteId, d.uploadBytes])).toEqual([['a', 99], ['b', 0]]);
    list = applyDeviceEvent(list, { kind: 'REMOVED', siteId: 'b', device: null });
    expect(list.map((d) => d.siteId)).toEqual(['a']);
  });
});

describe('formatting, routes, metrics columns', () => {
  test('bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.50 KB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.00 MB');
    expect(formatBytes(-1)).toBe('—');
  });

  test('relative times and short ids', () => {
    const now = Date.parse('2025-06-15T12:00:00Z');
    expect(formatRelative('2025-06-15T11:59:55Z', now)).toBe('just now');
    expect(formatRelative('2025-06-15T11:55:00Z', now)).toBe('5 min ago');
    expect(formatRelative(null, now)).toBe('never');
    expect(shortId('0123456789abcdef0123456789abcdef')).toBe('01234567…cdef');
  });

  test('routes round-trip; unknown tabs fall back to setup', () => {
    expect(parseRoute('/databases/db_1/metrics')).toEqual({ page: 'database', databaseId: 'db_1', tab: 'metrics' });
    expect(parseRoute('/databases/db_1/nope')).toEqual({ page: 'database', databaseId: 'db_1', tab: 'setup' });
    expect(parseRoute('/whatever')).toEqual({ page: 'home' });
    expect(routePath({ page: 'database', databaseId: 'db 1', tab: 'devices' })).toBe('/databases/db%201/devices');
  });

  test('chart columns: seconds on x, the chosen counter on y', () => {
    const series = [
      { start: '2025-06-15T10:00:00Z', activeDevices: 1, uploadBytes: 10, downloadBytes: 0, requests: 2, rejectedChanges: 0 },
      { start: '2025-06-15T11:00:00Z', activeDevices: 2, uploadBytes: 30, downloadBytes: 5, requests: 4, rejectedChanges: 1 },
    ];
    expect(chartColumns({ series }, 'uploadBytes')).toEqual([[1749981600, 1749985200], [10, 30]]);
  });
});

describe('errors: the API message and what to do', () => {
  test('hints by client code and server code', () => {
    expect(describeError(new ClientError(ClientErrorCode.NETWORK, 'fetch failed')).hint).toMatch(/running/);
    expect(describeError(new ClientError(ClientErrorCode.UNAUTHENTICATED, 'no')).hint).toMatch(/admin key was refused/);
    const conflict = describeError(new ClientError(ClientErrorCode.DOMAIN, 'Name taken', { serverCode: 'CONFLICT' }));
    expect(conflict).toMatchObject({ message: 'Name taken', code: 'CONFLICT' });
    expect(describeError(new Error('boom')).message).toBe('boom');
  });

  test('refusedTables reads extensions.refused of SCHEMA_ISSUES only', () => {
    const refused = [{ table: 'legacy', issues: [{ rule: 'D1', message: 'bad' }] }];
    const e = new ClientError(ClientErrorCode.DOMAIN, 'Some tables cannot be synced', { serverCode: 'SCHEMA_ISSUES', errors: [{ message: 'x', extensions: { code: 'SCHEMA_ISSUES', refused } }] });
    expect(refusedTables(e)).toEqual(refused);
    expect(refusedTables(new ClientError(ClientErrorCode.DOMAIN, 'x', { serverCode: 'CONFLICT', errors: [{ message: 'x', extensions: { refused } }] }))).toEqual([]);
  });
});
