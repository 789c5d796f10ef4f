/**
 * `SyncEngine.feedAtLeast`: whether a feed after a cursor holds at least n entries (row events,
 * explicit cells, unfolded writes), bounded by n: the server builds a long feed in a central
 * worker, a short one on its own thread.
 */
import { expect, test } from 'vitest';
import { openReplica } from '../testing/replica.ts';

const DDL = 'CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT, n INTEGER)';

test('counts row events, cells and unfolded writes above the cursor, up to n', () => {
  const e = openReplica(DDL, ['notes']);
  const ins = e.driver.prepare('INSERT INTO notes (id, title, n) VALUES (?, ?, ?)');
  e.driver.transaction(() => {
    for (let i = 0; i < 40; i++) ins.run(`k${i}`, `t${i}`, BigInt(i));
  });
  // Not folded yet: the write log alone says how much is coming.
  expect(e.feedAtLeast({ dbVersion: 0, seq: 0 }, 40)).toBe(true);
  expect(e.feedAtLeast({ dbVersion: 0, seq: 0 }, 41)).toBe(false);
  e.foldPending();
  // Folded: one row event per row (a fresh row's cells ride on it), more changes than entries.
  expect([...e.changes()].length).toBeGreaterThan(40);
  expect(e.feedAtLeast({ dbVersion: 0, seq: 0 }, 40)).toBe(true);
  expect(e.feedAtLeast({ dbVersion: 0, seq: 0 }, 41)).toBe(false);
  expect(e.feedAtLeast({ dbVersion: 0, seq: 0 }, 0)).toBe(true);
  // Above a cursor: only what is after it.
  const versions = [...new Set([...e.changes()].map((c) => c.dbVersion))].sort((a, b) => a - b);
  expect(versions).toHaveLength(40);
  const at20 = { dbVersion: versions[19] as number, seq: Number.MAX_SAFE_INTEGER };
  expect(e.feedAtLeast(at20, 20)).toBe(true);
  expect(e.feedAtLeast(at20, 21)).toBe(false);
  // At the head nothing; an update later, one entry (its cell).
  const head = { dbVersion: e.dbVersion(), seq: Number.MAX_SAFE_INTEGER };
  expect(e.feedAtLeast(head, 1)).toBe(false);
  e.driver.prepare("UPDATE notes SET title = 'x' WHERE id = 'k3'").run();
  e.foldPending();
  expect(e.feedAtLeast(head, 1)).toBe(true);
  expect(e.feedAtLeast(head, 2)).toBe(false);
  e.close();
});
