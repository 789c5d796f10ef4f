/**
 * Conflict reports of the merge (`ApplyOptions.onConflict`): every write that lost to a concurrent
 * one is reported with both sides (values, clocks, sites); writes that merely supersede an older
 * state of the same lineage are not conflicts.
 */
import { expect, test } from 'vitest';
import type { MergeConflict, SyncEngine } from '@offsync/core';
import { changesFor, openReplica } from '@offsync/core/testing';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** What a device uploads: its own changes (devices do not relay others'). */
const own = (d: SyncEngine) => [...d.changes({ localOnly: true })];

function sync(from: SyncEngine, to: SyncEngine, log: MergeConflict[]): void {
  to.applyChanges(changesFor(from, to), { onConflict: (c) => log.push(c) });
}

test('two devices edit the same cell from the same base: the tiebreak loser is reported with both values and sites', () => {
  const srv = openReplica();
  const a = openReplica();
  const b = openReplica();
  a.driver.exec("INSERT INTO todos (id, title) VALUES ('t', 'base')");
  const log: MergeConflict[] = [];
  sync(a, srv, log);
  sync(srv, b, []);
  a.driver.exec("UPDATE todos SET title = 'from a' WHERE id = 't'");
  b.driver.exec("UPDATE todos SET title = 'from b' WHERE id = 't'");
  sync(a, srv, log);
  expect(log).toEqual([]); // a plain update of the same lineage is no conflict
  sync(b, srv, log);
  expect(log).toHaveLength(1);
  const c = log[0] as MergeConflict;
  expect([c.kind, c.table, c.pkValues, c.column]).toEqual(['tiebreak', 'todos', ['t'], 'title']);
  // 'from b' > 'from a' in the §P5 value order: b's write wins, a's loses.
  expect([c.winner.value, hex(c.winner.siteId), c.loser.value, hex(c.loser.siteId)]).toEqual(['from b', hex(b.siteId), 'from a', hex(a.siteId)]);
  expect([c.winner.colVersion, c.loser.colVersion]).toEqual([2, 2]);
});

test('an older edit of a cell is reported as superseded; a re-sent identical change is not', () => {
  const srv = openReplica();
  const a = openReplica();
  const b = openReplica();
  a.driver.exec("INSERT INTO todos (id, title) VALUES ('t', 'base')");
  sync(a, srv, []);
  sync(srv, b, []);
  a.driver.exec("UPDATE todos SET title = 'a1' WHERE id = 't'");
  a.driver.exec("UPDATE todos SET title = 'a2' WHERE id = 't'");
  b.driver.exec("UPDATE todos SET title = 'b1' WHERE id = 't'");
  const log: MergeConflict[] = [];
  sync(a, srv, log);
  sync(a, srv, log); // duplicate delivery
  expect(log).toEqual([]);
  sync(b, srv, log);
  expect(log.map((c) => [c.kind, c.winner.value, c.loser.value])).toEqual([['superseded', 'a2', 'b1']]);
});

test('delete against update, both ways', () => {
  const srv = openReplica();
  const a = openReplica();
  const b = openReplica();
  a.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 'one'), ('y', 'two')");
  sync(a, srv, []);
  sync(srv, b, []);
  // x: a deletes, b edits — the edit arrives after the delete.
  a.driver.exec("DELETE FROM todos WHERE id = 'x'");
  b.driver.exec("UPDATE todos SET title = 'edited' WHERE id = 'x'");
  // y: b edits first (reaches the server), then a's delete arrives.
  b.driver.exec("UPDATE todos SET title = 'kept?' WHERE id = 'y'");
  a.driver.exec("DELETE FROM todos WHERE id = 'y'");
  const log: MergeConflict[] = [];
  srv.applyChanges(own(a).filter((c) => Buffer.from(c.pk).toString().endsWith('x')), { onConflict: (c) => log.push(c) });
  srv.applyChanges(own(b), { onConflict: (c) => log.push(c) });
  srv.applyChanges(own(a).filter((c) => Buffer.from(c.pk).toString().endsWith('y')), { onConflict: (c) => log.push(c) });
  expect(log.map((c) => [c.kind, c.pkValues[0], c.column, c.loser.value])).toEqual([
    ['update_lost_to_delete', 'x', 'title', 'edited'],
    ['delete_over_update', 'y', null, null],
  ]);
  expect(log[1]?.row).toEqual({ id: 'y', title: 'kept?', done: 0n, note: null });
});
