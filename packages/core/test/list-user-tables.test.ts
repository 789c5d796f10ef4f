import { expect, test } from 'vitest';
import { openReplica } from '@offsync/core/testing';

test('listTables offers user tables only: never the engine metadata (offsync_*, <t>__crdt_rows, <t>__crdt_cells)', () => {
  const e = openReplica("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT ''); CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL)", ['todos']);
  const names = e.driver.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => String(r['name']));
  expect(names).toEqual(expect.arrayContaining(['todos__crdt_rows', 'todos__crdt_cells']));
  expect(e.listTables().map((t) => [t.name, t.synced])).toEqual([['notes', false], ['todos', true]]);
});
