/**
 * The merge into tables without metadata (apply.ts `mergeFresh`, grouped by row across the batch)
 * must leave exactly what the change-by-change merge leaves: the same rows, and a feed with the
 * same changes (values, clocks, local versions and seqs). `authorize` forces the general merge.
 */
import { describe, expect, test } from 'vitest';
import { openReplica, tableRows } from '../testing/replica.ts';
import type { SyncEngine } from './engine.ts';
import type { Change } from '../types.ts';
import { prng as rng } from '../testing/replica-harness.ts';

function randomWrites(e: SyncEngine, rand: () => number, ops: number): void {
  const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  for (let i = 0; i < ops; i++) {
    const k = keys[Math.floor(rand() * keys.length)] as string;
    const r = rand();
    if (r < 0.4) e.driver.prepare('INSERT OR IGNORE INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)').run(k, `t${i}`, BigInt(i % 2), rand() < 0.3 ? null : `n${i}`);
    else if (r < 0.75) e.driver.prepare(rand() < 0.5 ? 'UPDATE todos SET title = ? WHERE id = ?' : 'UPDATE todos SET note = ? WHERE id = ?').run(`u${i % 3}`, k);
    else e.driver.prepare('DELETE FROM todos WHERE id = ?').run(k);
  }
}

const feedOf = (e: SyncEngine): unknown[] =>
  [...e.changes()].map((c) => [Buffer.from(c.pk).toString('hex'), c.col, c.val, c.colVersion, c.dbVersion, c.seq, c.cl, Buffer.from(c.siteId).toString('hex')]);

function compareMerges(batch: Change[]): void {
  const fast = openReplica();
  const general = openReplica();
  const rf = fast.applyChanges(batch);
  const rg = general.applyChanges(batch, { authorize: () => undefined });
  expect({ ...rf, tables: [...rf.tables].sort() }).toEqual({ ...rg, tables: [...rg.tables].sort() });
  expect(tableRows(fast, 'todos')).toEqual(tableRows(general, 'todos'));
  expect(feedOf(fast)).toEqual(feedOf(general));
  expect(fast.dbVersion()).toBe(general.dbVersion());
}

describe('merge into tables without metadata', () => {
  test('one source: inserts, updates, deletes, re-inserts', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = rng(seed);
      const src = openReplica();
      randomWrites(src, rand, 30);
      compareMerges([...src.changes()]);
    }
  });

  test('several sources in one batch, reordered and duplicated (ties, older lives, resurrections)', () => {
    for (let seed = 100; seed <= 140; seed++) {
      const rand = rng(seed);
      const a = openReplica();
      const b = openReplica();
      randomWrites(a, rand, 20);
      b.applyChanges([...a.changes()]);
      randomWrites(a, rand, 15);
      randomWrites(b, rand, 15);
      const batch = [...a.changes(), ...b.changes({ localOnly: true })];
      if (rand() < 0.5) batch.push(...batch.slice(0, Math.floor(batch.length / 2)));
      if (rand() < 0.5) batch.reverse();
      compareMerges(batch);
    }
  });

  test('the fresh merge stores an updated row as one row record and one explicit cell', () => {
    const src = openReplica();
    src.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('a', 'x', 0, 'n')");
    src.driver.exec("UPDATE todos SET title = 'y' WHERE id = 'a'");
    const dst = openReplica();
    dst.applyChanges([...src.changes()]);
    const count = (sql: string): number => Number(dst.driver.prepare(sql).getRaw()?.[0]);
    expect(count('SELECT count(*) FROM "todos__crdt_rows"')).toBe(1);
    expect(count('SELECT count(*) FROM "todos__crdt_cells"')).toBe(1);
    expect(tableRows(dst, 'todos')).toEqual(tableRows(src, 'todos'));
  });
});
