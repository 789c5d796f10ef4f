/**
 * A key whose tombstone was compacted, re-inserted by a device that downloaded from 0 (so it
 * never saw the tombstone) — docs/PROTOCOL.md "Compaction and the resync horizon", "Re-inserted
 * forgotten keys". Devices that still hold the old tombstone (causal length c, even) ignore an
 * insert with cl ≤ c; the central merge therefore lifts such a row above the highest causal
 * length it compacted in the table, as a change of its own, so every device — the re-inserting
 * one included — ends with the row and its values.
 */
import { describe, expect, test } from 'vitest';
import type { SyncEngine } from '@offsync/core';
import { clockRows, Star, tableRows } from '@offsync/core/testing';

/** The causal length of `key`'s row on `e` (from its feed), or 0. */
function causalLength(e: SyncEngine, key: string): number {
  const hex = Buffer.from(key).toString('hex').toUpperCase();
  let cl = 0;
  for (const line of clockRows(e, 'todos')) if (line.includes(hex)) cl = Math.max(cl, Number(line.split('@')[1]));
  return cl;
}

describe.each([
  ['a plain central merge', {}],
  ['an authoritative central merge (rejectRows)', { rejectRows: true }],
] as const)('compacted tombstone re-inserted from a fresh device (%s)', (_name, opts) => {
  test('every replica ends with the re-inserted row and its values', () => {
    const s = new Star(opts);
    try {
      const x = s.add();
      x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'first'), ('other', 'stays')");
      s.sync(x);
      x.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
      s.sync(x);
      expect(causalLength(x.e, 'k')).toBe(2);
      expect(s.compact().rows).toBe(1);
      // A fresh device downloads from 0: it never learns of k's tombstone, and inserts k again.
      const f = s.add();
      s.download(f);
      expect(tableRows(f.e, 'todos').map((r) => r['id'])).toEqual(['other']);
      f.e.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('k', 'from-f', 1, 'n')");
      s.settle();
      s.settle();
      const expected = [{ id: 'k', title: 'from-f', done: 1n, note: 'n' }, { id: 'other', title: 'stays', done: 0n, note: null }];
      for (const rows of s.rows()) expect(rows).toEqual(expected);
      // Lifted above the compacted tombstone, on every replica, the origin included.
      for (const e of [s.server, x.e, f.e]) expect(causalLength(e, 'k')).toBe(3);
      // And the row lives on normally: an edit on X and a delete on F reach everyone.
      x.e.driver.exec("UPDATE todos SET title = 'edited' WHERE id = 'k'");
      s.settle();
      for (const rows of s.rows()) expect(rows.find((r) => r['id'] === 'k')?.['title']).toBe('edited');
      f.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
      s.settle();
      for (const rows of s.rows()) expect(rows.map((r) => r['id'])).toEqual(['other']);
    } finally {
      s.close();
    }
  });

  test('a key deleted twice (cl 4) is lifted to 5; a new key is inserted and kept', () => {
    const s = new Star(opts);
    try {
      const x = s.add();
      x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'one')");
      s.sync(x);
      x.e.driver.exec("DELETE FROM todos WHERE id = 'k'; INSERT INTO todos (id, title) VALUES ('k', 'two')");
      s.sync(x);
      x.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
      s.sync(x);
      expect(causalLength(x.e, 'k')).toBe(4);
      expect(s.compact().rows).toBe(1);
      const f = s.add();
      s.download(f);
      f.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'three'), ('n', 'new')");
      s.settle();
      s.settle();
      const expected = [
        { id: 'k', title: 'three', done: 0n, note: null },
        { id: 'n', title: 'new', done: 0n, note: null },
      ];
      for (const rows of s.rows()) expect(rows).toEqual(expected);
      for (const e of [s.server, x.e, f.e]) expect(causalLength(e, 'k')).toBe(5);
    } finally {
      s.close();
    }
  });

  test('after a compaction a brand-new key keeps its origin (not lifted, nothing sent back), a forgotten key is still lifted', () => {
    const s = new Star(opts);
    try {
      const x = s.add();
      x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'old'), ('other', 'stays')");
      s.sync(x);
      x.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
      s.sync(x);
      expect(s.compact().rows).toBe(1);
      const f = s.add();
      s.download(f);
      f.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'again'), ('fresh', 'new')");
      s.upload(f);
      const hex = (key: string): string => Buffer.from(key).toString('hex');
      const ofKey = <C extends { pk: Uint8Array }>(changes: readonly C[], key: string): C[] => changes.filter((c) => Buffer.from(c.pk).toString('hex').includes(hex(key)));
      // On the server: the new key is stored as F wrote it (cl 1, F's site); k is lifted (cl 3, the server's site).
      const onServer = [...s.server.changes({ tables: ['todos'] })];
      const fresh = ofKey(onServer, 'fresh');
      expect(fresh.length).toBeGreaterThan(0);
      for (const c of fresh) {
        expect(c.cl).toBe(1);
        expect(Buffer.from(c.siteId).equals(Buffer.from(f.e.siteId))).toBe(true);
      }
      const k = ofKey(onServer, 'k');
      expect(k.length).toBeGreaterThan(0);
      for (const c of k) {
        expect(c.cl).toBe(3);
        expect(Buffer.from(c.siteId).equals(Buffer.from(s.server.siteId))).toBe(true);
      }
      // F's next download carries the lifted k back, and nothing of the new key.
      const toF = [...s.server.changes({ excludeSiteId: f.e.siteId, after: f.recv })];
      expect(ofKey(toF, 'fresh')).toEqual([]);
      expect(ofKey(toF, 'k').length).toBeGreaterThan(0);
      s.settle();
      s.settle();
      for (const rows of s.rows()) expect(rows.map((r) => r['id'])).toEqual(['fresh', 'k', 'other']);
      for (const e of [s.server, x.e, f.e]) {
        expect(causalLength(e, 'k')).toBe(3);
        expect(causalLength(e, 'fresh')).toBe(1);
      }
    } finally {
      s.close();
    }
  });

  test('the origin edits the lifted row before downloading it, and another device inserts the key concurrently: merged as one life', () => {
    const s = new Star(opts);
    try {
      const x = s.add();
      x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'old')");
      s.sync(x);
      x.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
      s.sync(x);
      expect(s.compact().rows).toBe(1);
      const f = s.add();
      const g = s.add();
      s.download(f);
      s.download(g);
      // F inserts k and uploads; before it downloads, it edits k again (still at cl 1).
      f.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'f')");
      s.upload(f);
      f.e.driver.exec("UPDATE todos SET note = 'f-later' WHERE id = 'k'");
      // G, fresh too, inserts k concurrently with a done flag.
      g.e.driver.exec("INSERT INTO todos (id, title, done) VALUES ('k', 'g', 1)");
      s.settle();
      s.settle();
      const rows = s.rows();
      for (const r of rows) expect(r).toEqual(rows[0]);
      const k = rows[0]?.find((r) => r['id'] === 'k');
      // Neither the origin's later edit nor G's concurrent insert is lost as an older life:
      // the title ties at col_version 1 and the greater value wins; done and note are written once each.
      expect(k).toEqual({ id: 'k', title: 'g', done: 1n, note: 'f-later' });
      for (const e of [s.server, x.e, f.e, g.e]) expect(causalLength(e, 'k')).toBe(3);
    } finally {
      s.close();
    }
  });
});

test('the compacted-key filters of a table go with its cleanup', () => {
  const s = new Star();
  try {
    const x = s.add();
    x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'old')");
    s.sync(x);
    x.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
    s.sync(x);
    expect(s.compact().rows).toBe(1);
    const filters = (): number => Number(s.server.driver.prepare("SELECT count(*) AS n FROM offsync_compacted_keys WHERE tbl = 'todos'").all()[0]?.['n']);
    expect(filters()).toBe(1);
    s.server.cleanup('todos');
    expect(filters()).toBe(0);
  } finally {
    s.close();
  }
});

test('a table compacted before its keys were recorded (no filter) still lifts every unknown key, and keeps doing so after a later compaction', () => {
  const s = new Star();
  try {
    const x = s.add();
    x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'old')");
    s.sync(x);
    x.e.driver.exec("DELETE FROM todos WHERE id = 'k'");
    s.sync(x);
    expect(s.compact().rows).toBe(1);
    // As a database compacted by a version that kept no filters.
    s.server.driver.exec('DELETE FROM offsync_compacted_keys');
    x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'new')");
    s.settle();
    expect(causalLength(s.server, 'a')).toBe(3);
    // A later compaction (forgetting another key) records a match-all row for the keys of before.
    x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('j', 'old'); DELETE FROM todos WHERE id = 'j'");
    s.settle();
    // (j, unknown and ≤ M, was itself lifted: its tombstone is 4, so M is now 4.)
    expect(causalLength(s.server, 'j')).toBe(4);
    expect(s.compact().rows).toBe(1);
    x.e.driver.exec("INSERT INTO todos (id, title) VALUES ('b', 'new')");
    s.settle();
    expect(causalLength(s.server, 'b')).toBe(5);
    for (const rows of s.rows()) expect(rows.map((r) => r['id'])).toEqual(['a', 'b']);
  } finally {
    s.close();
  }
});
