/**
 * deployTables options.blockColumns (docs/PROTOCOL.md "Block columns"): validated before anything
 * changes (column exists, TEXT affinity, not in the primary key; an already-synced table keeps its
 * block columns), marked with the table's init, listed on Table.blockColumns, seen by the data
 * plane's open engine, dropped when the table is removed; POSTGRES databases refuse them.
 */
import Database from 'better-sqlite3';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp } from '../../app.ts';
import type { App } from '../../app.ts';
import { createTestDeps } from '../../../test/helpers.ts';
import { sqliteDatabasePath } from '../databases/databases.service.ts';

type GqlResult = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };
type Listed = { database: { tables: { selectedCount: number; nodes: { name: string; selected: boolean; blockColumns: string[] }[] } } };

const US = '\u001f';
const DEPLOY = `mutation ($databaseId: ID!, $tables: [String!]!, $mode: DeployMode, $options: [TableDeployOptions!]) {
  deployTables(databaseId: $databaseId, tables: $tables, mode: $mode, options: $options) { added removed tables { nodes { name blockColumns } } }
}`;
const LIST = 'query ($id: ID!) { database(id: $id) { tables { selectedCount nodes { name selected blockColumns } } } }';

describe('deployTables blockColumns', () => {
  let app: App;
  let adminKey: string;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let databaseId: string;

  async function gql(query: string, variables: Record<string, unknown> = {}): Promise<GqlResult> {
    const res = await app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as GqlResult;
  }
  async function ok<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const r = await gql(query, variables);
    expect(r.errors).toBeUndefined();
    return r.data as T;
  }
  const listed = async () => (await ok<Listed>(LIST, { id: databaseId })).database.tables;
  const blocksOf = async (table: string) => (await listed()).nodes.find((t) => t.name === table)?.blockColumns;
  /** The central feed's cell names of `table`, block cells as `col|pos`. */
  function feedColumns(table: string): string[] {
    const e = openSyncDatabase(sqliteDatabasePath(dataDir, databaseId), { mustExist: true });
    try {
      return [...e.changes()].filter((c) => c.tbl === table).map((c) => c.col.replace(US, '|'));
    } finally {
      e.close();
    }
  }

  beforeAll(async () => {
    const t = await createTestDeps('sqlite');
    ({ dataDir, cleanup } = t);
    app = createApp(t.deps);
    adminKey = (await app.services.auth.ensureAdminKey()) ?? '';
    const p = await app.services.projects.createProject({ name: 'p', kind: 'SQLITE' });
    databaseId = (await app.services.databases.createDatabase({ projectId: p.id, name: 'd' })).id;
    const db = new Database(sqliteDatabasePath(dataDir, databaseId));
    db.exec(`
      CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT, summary VARCHAR(200), n INTEGER, raw BLOB, bare, price REAL);
      CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT);
      INSERT INTO notes (id, body, summary) VALUES ('n1', 'line one' || char(10) || 'line two', 's');
    `);
    db.close();
  });
  afterAll(async () => { await app.dispose(); await cleanup(); });

  test('refuses a column that is unknown, not TEXT or in the primary key, with a reason, and changes nothing', async () => {
    const cases: [string, string][] = [
      ['nope', 'BLOCK_COLUMN_UNKNOWN'],
      ['id', 'BLOCK_COLUMN_PRIMARY_KEY'],
      ['n', 'BLOCK_COLUMN_NOT_TEXT'],
      ['raw', 'BLOCK_COLUMN_NOT_TEXT'],
      ['bare', 'BLOCK_COLUMN_NOT_TEXT'],
      ['price', 'BLOCK_COLUMN_NOT_TEXT'],
    ];
    for (const [column, reason] of cases) {
      const r = await gql(DEPLOY, { databaseId, tables: ['todos', 'notes'], options: [{ table: 'notes', blockColumns: ['body', column] }] });
      expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', reason, table: 'notes', column, field: 'options' });
      expect(r.errors?.[0]?.message).toContain(column);
    }
    // Options of a table that is not being deployed are refused as before.
    const r = await gql(DEPLOY, { databaseId, tables: ['todos'], options: [{ table: 'notes', blockColumns: ['body'] }] });
    expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', table: 'notes' });
    expect((await listed()).selectedCount).toBe(0);
    expect(await blocksOf('notes')).toEqual([]);
  });

  test('marks the columns with the table (declared names), listed; existing text travels as line blocks', async () => {
    const d = await ok<{ deployTables: { added: string[]; tables: { nodes: { name: string; blockColumns: string[] }[] } } }>(DEPLOY, {
      databaseId, tables: ['notes', 'todos'], options: [{ table: 'notes', blockColumns: ['BODY', 'summary', 'body'] }],
    });
    expect(d.deployTables.added).toEqual(['notes', 'todos']);
    expect(d.deployTables.tables.nodes).toEqual(expect.arrayContaining([{ name: 'notes', blockColumns: ['body', 'summary'] }, { name: 'todos', blockColumns: [] }]));
    expect(await blocksOf('notes')).toEqual(['body', 'summary']);
    const cols = feedColumns('notes');
    expect(cols.filter((c) => c.startsWith('body|'))).toHaveLength(2);
    expect(cols).not.toContain('body');
    expect(cols).not.toContain('summary');
    // The client snippet marks them on the device right after the table's cloudsync_init.
    const ci = await ok<{ database: { clientIntegration: { snippet: string } } }>('query ($id: ID!) { database(id: $id) { clientIntegration { snippet } } }', { id: databaseId });
    expect(ci.database.clientIntegration.snippet).toContain([
      "SELECT cloudsync_init('notes');",
      "SELECT cloudsync_set_column('notes', 'body', 'algo', 'block');",
      "SELECT cloudsync_set_column('notes', 'summary', 'algo', 'block');",
      "SELECT cloudsync_init('todos');",
    ].join('\n'));
  });

  test('an already-synced table keeps its block columns: the same ones pass, others are refused', async () => {
    // No options, or the same columns in any order: nothing changes.
    await ok(DEPLOY, { databaseId, tables: ['notes', 'todos'] });
    await ok(DEPLOY, { databaseId, tables: ['notes', 'todos'], options: [{ table: 'notes', blockColumns: ['summary', 'body'] }] });
    for (const blockColumns of [['body'], [], ['body', 'summary', 'id']]) {
      const r = await gql(DEPLOY, { databaseId, tables: ['notes', 'todos'], options: [{ table: 'notes', blockColumns }] });
      expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', table: 'notes' });
    }
    const r = await gql(DEPLOY, { databaseId, tables: ['notes'], mode: 'ADD', options: [{ table: 'notes', blockColumns: ['body'] }] });
    expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', reason: 'BLOCK_COLUMNS_CHANGE', table: 'notes' });
    const r2 = await gql(DEPLOY, { databaseId, tables: ['notes'], mode: 'ADD', options: [{ table: 'todos', blockColumns: ['title'] }] });
    expect(r2.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', table: 'todos' });
    // The algorithm refusal names its reason the same way (extensions.code is the ApiError code).
    const r3 = await gql(DEPLOY, { databaseId, tables: ['notes'], mode: 'ADD', options: [{ table: 'notes', algorithm: 'GOS' }] });
    expect(r3.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED', reason: 'ALGORITHM_CHANGE', table: 'notes' });
    expect(await blocksOf('notes')).toEqual(['body', 'summary']);
    expect(await blocksOf('todos')).toEqual([]);
  });

  test('the data plane\'s open engine takes block cells after the deploy; a removed and re-added table starts without block columns', async () => {
    await app.services.databases.setOffSync(databaseId, true);
    const engine = (await app.sync.databases.get(databaseId)).engine;
    expect([...engine.changes()].some((c) => c.tbl === 'notes' && c.col.startsWith(`body${US}`))).toBe(true);
    await ok(DEPLOY, { databaseId, tables: ['todos'], mode: 'ADD', options: [{ table: 'todos', blockColumns: [] }] });
    await ok(DEPLOY, { databaseId, tables: ['notes'], mode: 'REMOVE' });
    await ok(DEPLOY, { databaseId, tables: ['notes'], mode: 'ADD', options: [{ table: 'notes', blockColumns: ['summary'] }] });
    expect(await blocksOf('notes')).toEqual(['summary']);
    const cols = feedColumns('notes');
    expect(cols).toContain('body');
    expect(cols.some((c) => c.startsWith('summary|'))).toBe(true);
    // The engine the data plane had open before the deploys (refreshed on its next read).
    expect([...engine.changes()].filter((c) => c.tbl === 'notes').map((c) => c.col.split(US)[0])).toEqual(expect.arrayContaining(['body', 'summary']));
    expect(engine.blockColumns('notes')).toEqual(['summary']);
  });
});
