/**
 * Row filters (docs/PROTOCOL.md "Row filters"): `setRowFilter(table, expr)` adds `expr` to the
 * change-tracking triggers' conditions. Local writes of rows outside it are not recorded; merges
 * apply regardless; a row that leaves the filter by an UPDATE keeps its old value elsewhere; one
 * that enters it by an UPDATE records only the changed columns. The filter survives reopening;
 * an expression that does not compile is refused with CORE_INVALID_ARGUMENT and changes nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { openSyncDatabase } from '../adapters/sqlite/index.ts';
import { CoreErrorCode, isCoreError } from '../errors.ts';
import { clockRows, openReplica, syncOneWay, tableRows } from '../testing/replica.ts';
import type { SyncEngine } from './engine.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Own recorded changes as `id:col`, from the local feed (what a device would send). */
function recorded(e: SyncEngine): string[] {
  return [...e.changes({ localOnly: true })].map((c) => `${Buffer.from(c.pk.subarray(3)).toString()}:${c.col}`).sort();
}

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (isCoreError(e, CoreErrorCode.INVALID_ARGUMENT)) return e.message;
    throw e;
  }
  throw new Error('not refused');
}

describe('row filters', () => {
  test('rows outside the filter are not recorded; deletes are judged on the old row', () => {
    const e = openReplica();
    e.setRowFilter('todos', 'done = 0');
    expect(e.rowFilter('TODOS')).toBe('done = 0');
    e.driver.exec("INSERT INTO todos (id, title, done) VALUES ('a', 'in', 0), ('b', 'out', 1)");
    expect(recorded(e)).toEqual(['a:done', 'a:note', 'a:title']);
    e.driver.exec("DELETE FROM todos WHERE id = 'b'");
    expect(recorded(e)).toEqual(['a:done', 'a:note', 'a:title']);
    e.driver.exec("DELETE FROM todos WHERE id = 'a'");
    expect(recorded(e)).toEqual(['a:__[RIP]__']);
  });

  test('leaving by UPDATE records nothing (peers keep the old value); entering by UPDATE records only the changed columns', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title, done) VALUES ('x', 'one', 0), ('y', 'two', 1)");
    syncOneWay(a, b);
    const sent = a.dbVersion();
    a.setRowFilter('todos', 'done = 0');
    const before = clockRows(a, 'todos');
    a.driver.exec("UPDATE todos SET title = 'one, done', done = 1 WHERE id = 'x'");
    expect(clockRows(a, 'todos')).toEqual(before);
    a.driver.exec("UPDATE todos SET done = 0 WHERE id = 'y'");
    const after = clockRows(a, 'todos').filter((c) => !before.includes(c));
    expect(after).toEqual(['010B0179/done=2@1']);
    // What a device sends next: its changes after the version it already sent.
    const next = [...a.changes({ localOnly: true, after: { dbVersion: sent, seq: Number.MAX_SAFE_INTEGER } })];
    expect(next.map((c) => c.col)).toEqual(['done']);
    b.applyChanges(next);
    // x kept its old values on b; y's done arrived, its title was not re-sent.
    expect(tableRows(b, 'todos').map((r) => [r['id'], r['title'], r['done']])).toEqual([
      ['x', 'one', 0n],
      ['y', 'two', 0n],
    ]);
  });

  test('incoming changes apply regardless of the filter', () => {
    const a = openReplica();
    const b = openReplica();
    b.setRowFilter('todos', 'done = 0');
    a.driver.exec("INSERT INTO todos (id, title, done) VALUES ('z', 'outside', 1)");
    expect(syncOneWay(a, b)).toBeGreaterThan(0);
    expect(tableRows(b, 'todos').map((r) => r['id'])).toEqual(['z']);
    expect(recorded(b)).toEqual([]);
  });

  test('clearing the filter records every write again; rows written meanwhile keep no clocks until written', () => {
    const e = openReplica();
    e.setRowFilter('todos', "title LIKE 'x%'");
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('p', 'plain')");
    expect(recorded(e)).toEqual([]);
    e.setRowFilter('todos', null);
    expect(e.rowFilter('todos')).toBeUndefined();
    e.driver.exec("UPDATE todos SET note = 'n' WHERE id = 'p'");
    expect(recorded(e)).toEqual(['p:note']);
  });

  test('the filter applies to the back-fill of existing rows at init and survives reopening', () => {
    const dir = mkdtempSync(join(tmpdir(), 'offsync-filter-'));
    dirs.push(dir);
    const path = join(dir, 'f.db');
    let e = openSyncDatabase(path);
    e.driver.exec("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)");
    e.init('todos');
    e.setRowFilter('todos', 'done = 0');
    e.close();
    e = openSyncDatabase(path);
    expect(e.rowFilter('todos')).toBe('done = 0');
    e.driver.exec("INSERT INTO todos (id, done) VALUES ('in', 0), ('out', 1)");
    expect(recorded(e)).toEqual(['in:done', 'in:title']);
    // A schema change re-creates the triggers and back-fills: still filtered.
    e.beginAlter('todos');
    e.driver.exec("ALTER TABLE todos ADD COLUMN tag TEXT NOT NULL DEFAULT ''");
    e.commitAlter('todos');
    expect(recorded(e).filter((c) => c.startsWith('out:'))).toEqual([]);
    e.driver.exec("INSERT INTO todos (id, done) VALUES ('out2', 1)");
    expect(recorded(e).filter((c) => c.startsWith('out'))).toEqual([]);
    // Disable / enable keeps it too.
    e.setEnabled('todos', false);
    e.setEnabled('todos', true);
    e.driver.exec("INSERT INTO todos (id, done) VALUES ('out3', 1)");
    expect(recorded(e).filter((c) => c.startsWith('out'))).toEqual([]);
    e.close();
  });

  test('a schema change that breaks the filter is refused with CORE_INVALID_ARGUMENT and rolled back; clearing the filter first lets it through', () => {
    const e = openReplica();
    e.setRowFilter('todos', "note IS NULL OR note <> 'private'");
    e.beginAlter('todos');
    e.driver.exec('ALTER TABLE todos DROP COLUMN note');
    expect(refusal(() => e.commitAlter('todos'))).toMatch(/no such column: note/);
    expect(e.table('todos')?.schema.columns.map((c) => c.name)).toContain('note');
    e.driver.exec("INSERT INTO todos (id, note) VALUES ('p', 'private'), ('q', 'public')");
    expect(recorded(e).map((c) => c.split(':')[0])).toEqual(['q', 'q', 'q']);
    e.setRowFilter('todos', null);
    e.beginAlter('todos');
    e.driver.exec('ALTER TABLE todos DROP COLUMN note');
    e.commitAlter('todos');
    expect(e.table('todos')?.schema.columns.map((c) => c.name)).not.toContain('note');
  });

  test('cleanup forgets the filter', () => {
    const e = openReplica();
    e.setRowFilter('todos', 'done = 0');
    e.cleanup('todos');
    e.init('todos');
    expect(e.rowFilter('todos')).toBeUndefined();
    e.driver.exec("INSERT INTO todos (id, done) VALUES ('o', 1)");
    expect(recorded(e)).toContain('o:done');
  });

  test('an expression that is not one expression over the columns is refused with CORE_INVALID_ARGUMENT, and nothing changes', () => {
    const e = openReplica();
    e.setRowFilter('todos', 'done = 0');
    const bad = [
      '',
      '   ',
      'nope = 1',
      'done = ',
      'NEW.done = 0',
      'todos.done = 0',
      '1; DROP TABLE todos',
      "1)); DROP TABLE todos; SELECT ((1",
      'done = 0 /*',
      'title <> "zz"',
    ];
    for (const f of bad) expect(refusal(() => e.setRowFilter('todos', f)), f).toMatch(/^Invalid row filter for table todos: /);
    expect(e.rowFilter('todos')).toBe('done = 0');
    e.driver.exec("INSERT INTO todos (id, done) VALUES ('in', 0), ('out', 1)");
    expect(recorded(e)).toEqual(['in:done', 'in:note', 'in:title']);
    // Subqueries, functions and comments are fine.
    e.setRowFilter('todos', "(SELECT count(*) FROM todos) > 0 AND lower(title) NOT LIKE 'secret%' -- private notes stay here");
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('s', 'Secret plan'), ('t', 'ok')");
    expect(recorded(e).filter((c) => c.startsWith('s:') || c.startsWith('t:'))).toEqual(['t:done', 't:note', 't:title']);
    expect(() => e.setRowFilter('missing', 'done = 0')).toThrow(/not initialised/);
  });
});
