/**
 * The sync service owns the data plane (issue 10 item 2; docs/ARCHITECTURE.md "Central
 * databases"): a deploy made while the central database is open and being synced runs on the
 * owner's connection, and the owner tells its engine and the central workers. None of those
 * connections polls `PRAGMA schema_version` (they are opened with `schemaWatch: false`), so the
 * uploads and downloads below, which run in the central workers and on the main connection,
 * see each deploy only because the owner announced it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Central } from '../src/domains/sync/index.ts';
import { centralRows, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

const TODOS = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";
const NOTES = "CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL DEFAULT '')";
const DDL = `${TODOS}; ${NOTES}`;

let t: RunningApp;
let db: { databaseId: string; apiKey: string };

beforeAll(async () => {
  t = await startApp({ rateLimitPerSecond: 0 });
  db = await setupDatabase(t, DDL, ['todos']);
}, 120_000);
afterAll(async () => t?.dispose());

const applyFailure = (r: { body: Record<string, unknown> }): unknown => (r.body['failures'] as { apply?: { code?: unknown } } | undefined)?.apply?.code;
const notes = (): unknown[] => {
  const engine = t.app.sync.databases.peek(db.databaseId);
  if (engine === undefined) throw new Error('the central database is not open');
  return engine.driver.prepare('SELECT id, body FROM notes ORDER BY id').all();
};

test(
  'deploys while the database is open and syncing reach the next upload (central worker) and download (main connection)',
  async () => {
    const workers = t.app.sync.workers;
    expect(workers).toBeDefined();
    // Open and in use: a worker merge and a main-connection download with only `todos` synced.
    const first = new TestDevice(t, db.databaseId, db.apiKey);
    first.exec("INSERT INTO todos (id, user_id, title) VALUES ('t1', 'u', 'before')");
    const up0 = await first.upload();
    expect(up0.status).toBe(200);
    expect(applyFailure(up0)).toBeUndefined();
    expect((await first.download()).status).toBe(200);
    expect(workers?.threads().length).toBeGreaterThan(0);
    expect(t.app.sync.databases.peek(db.databaseId)).toBeDefined();

    // 1. A table added: the very next upload (merged in the worker) writes it, the next download carries it.
    await t.app.services.tables.deployTables(db.databaseId, ['notes'], { mode: 'ADD' });
    const writer = new TestDevice(t, db.databaseId, db.apiKey, DDL, ['todos', 'notes']);
    writer.exec("INSERT INTO notes (id, body) VALUES ('n1', 'hello')");
    const up1 = await writer.upload();
    expect(up1.status).toBe(200);
    expect(applyFailure(up1)).toBeUndefined();
    expect(notes()).toEqual([{ id: 'n1', body: 'hello' }]);
    const reader = new TestDevice(t, db.databaseId, db.apiKey, DDL, ['todos', 'notes']);
    expect((await reader.download()).status).toBe(200);
    expect(reader.engine.driver.prepare('SELECT id, body FROM notes').all()).toEqual([{ id: 'n1', body: 'hello' }]);

    // 2. The table cleaned up: the next upload of it is refused as an unknown table, nothing applied.
    await t.app.services.tables.deployTables(db.databaseId, ['notes'], { mode: 'REMOVE' });
    writer.exec("INSERT INTO notes (id, body) VALUES ('n2', 'while removed')");
    const up2 = await writer.upload();
    expect(applyFailure(up2)).toBe('unknown_table');
    expect(notes()).toEqual([{ id: 'n1', body: 'hello' }]);

    // 3. Added again with another algorithm (grow-only set): the next merge follows it — a delete does not travel.
    await t.app.services.tables.deployTables(db.databaseId, ['notes'], { mode: 'ADD', options: [{ table: 'notes', algorithm: 'gos' }] });
    writer.exec("DELETE FROM notes WHERE id = 'n1'");
    const up3 = await writer.upload();
    expect(up3.status).toBe(200);
    expect(applyFailure(up3)).toBeUndefined();
    expect(notes()).toEqual([
      { id: 'n1', body: 'hello' },
      { id: 'n2', body: 'while removed' },
    ]);
    // The main connection serves the re-added table to a new device.
    const late = new TestDevice(t, db.databaseId, db.apiKey, DDL, ['todos', 'notes']);
    expect((await late.download()).status).toBe(200);
    expect(late.engine.driver.prepare('SELECT id FROM notes ORDER BY id').all()).toEqual([{ id: 'n1' }, { id: 'n2' }]);
    expect(centralRows(t, db.databaseId)).toHaveLength(1);
  },
  240_000,
);

test(
  'a far-behind download (a central worker SCAN) after a deploy that adds a table carries the new table\'s rows',
  async () => {
    // An app of its own: the test above deploys and removes `notes` on the shared one.
    const app = await startApp({ rateLimitPerSecond: 0 });
    try {
      const d = await setupDatabase(app, DDL, ['todos']);
      const workers = app.app.sync.workers;
      if (workers === undefined) throw new Error('expected central workers');
      const kinds: string[] = [];
      const run = workers.run.bind(workers);
      workers.run = <T,>(job: Parameters<typeof run>[0]): Promise<T> => {
        kinds.push(job.kind);
        return run<T>(job);
      };
      // More than 1000 server versions (BULK_FILTER_VERSIONS, sqlite-central.ts): one per device transaction.
      const old = new TestDevice(app, d.databaseId, d.apiKey, TODOS);
      const todo = old.engine.driver.prepare("INSERT INTO todos (id, user_id, title) VALUES (?, 'u', 'x')");
      for (let i = 0; i < 1_005; i++) todo.run(`t${i}`);
      const up0 = await old.upload();
      expect([up0.status, applyFailure(up0)]).toEqual([200, undefined]);
      const central = app.app.sync.databases.peek(d.databaseId);
      expect(central?.dbVersion()).toBeGreaterThan(1_000);

      // A far-behind device before the deploy: its download is a worker scan, on a worker connection that knows `todos` only.
      const before = new TestDevice(app, d.databaseId, d.apiKey, TODOS);
      kinds.length = 0;
      expect((await before.download()).status).toBe(200);
      expect(kinds).toContain('scan');
      expect(before.engine.driver.prepare('SELECT count(*) AS n FROM todos').get()).toEqual({ n: 1_005n });

      // The deploy goes through the owner (withSchemaChange); then rows of the new table are merged.
      await app.app.services.tables.deployTables(d.databaseId, ['notes'], { mode: 'ADD' });
      const writer = new TestDevice(app, d.databaseId, d.apiKey, DDL, ['todos', 'notes']);
      writer.exec("INSERT INTO notes (id, body) VALUES ('n1', 'hello'), ('n2', 'world')");
      const up = await writer.upload();
      expect([up.status, applyFailure(up)]).toEqual([200, undefined]);

      // A new far-behind device: again a worker scan, and it carries the new table's rows.
      const after = new TestDevice(app, d.databaseId, d.apiKey, DDL, ['todos', 'notes']);
      kinds.length = 0;
      expect((await after.download()).status).toBe(200);
      expect(kinds).toContain('scan');
      expect(after.engine.driver.prepare('SELECT id, body FROM notes ORDER BY id').all()).toEqual([
        { id: 'n1', body: 'hello' },
        { id: 'n2', body: 'world' },
      ]);
      expect(after.engine.driver.prepare('SELECT count(*) AS n FROM todos').get()).toEqual({ n: 1_005n });
    } finally {
      await app.dispose();
    }
  },
  240_000,
);

test('no sync module outside the central-database implementations asks which back-end it holds', () => {
  // By types: a Central has no back-end name to test.
  const probe = (c: Central): unknown =>
    // @ts-expect-error — `kind` is not a member of the central-database interface
    c.kind;
  expect(typeof probe).toBe('function');
  // By the sources: no `kind === 'sqlite' | 'postgres'` test in the sync domain but in the implementations.
  const root = join(import.meta.dirname, '../src/domains/sync');
  const allowed = new Set(['central-databases.ts', 'sqlite-central.ts', 'pg-central.ts']);
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !allowed.has(e.name)) {
        const src = readFileSync(p, 'utf8');
        if (/\bkind\s*[!=]==?\s*['"](sqlite|postgres)['"]/.test(src) || /['"](sqlite|postgres)['"]\s*[!=]==?\s*[\w.]*\bkind\b/.test(src)) offenders.push(p.slice(root.length + 1));
      }
    }
  };
  walk(root);
  expect(readdirSync(root)).toContain('sync.service.ts');
  expect(offenders).toEqual([]);
});
