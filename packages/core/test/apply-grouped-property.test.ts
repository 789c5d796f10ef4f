/**
 * The grouped merge into tables that hold metadata (apply.ts `mergeGrouped`: each row's state read
 * once with batched lookups, its changes merged in memory in batch order, the row written once)
 * must leave exactly what the change-by-change merge leaves: the same ApplyResult, the same base
 * rows, the same metadata rows (row records and explicit cells, byte for byte) and the same feed.
 * Both merges start from copies of one database file; `authorize` forces the change-by-change
 * merge. Random targets (local writes, merged peers, deletes, resurrections) and random batches
 * (several sources, duplicated, reordered, some values of another storage class than their column).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { Change, SyncEngine } from '@offsync/core';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { clockTables, tableRows } from '@offsync/core/testing';
import { prng as rng } from '@offsync/core/testing';
import { dump, hex, oddValue, openTables, randomWrites as mixedWrites } from './fixtures/merge-compare.ts';

const DDL = `CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT);
CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, v TEXT, w BLOB, PRIMARY KEY (a, b));`;
const TABLES = ['todos', 'pairs'];
const dir = mkdtempSync(join(tmpdir(), 'offsync-grouped-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open = (path?: string): SyncEngine => openTables(DDL, TABLES, path);

function reopen(path: string): SyncEngine {
  return openSyncDatabase(path, { wal: false, mustExist: true });
}

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f'];

/** Random local writes of {@link KEYS} (fixtures/merge-compare.ts), in this test's mix. */
const randomWrites = (e: SyncEngine, rand: () => number, ops: number): void =>
  mixedWrites(e, rand, ops, KEYS, { pairs: 0.3, pairAs: 3, pairInsert: 0.4, pairUpdate: 0.75, insert: 0.35, title: 0.55, noteDone: 0.7, done: 0.8 });

function randomBatch(rand: () => number, sources: SyncEngine[], target: SyncEngine): Change[] {
  let batch: Change[] = [];
  for (const s of sources) {
    const all = [...s.changes({ excludeSiteId: target.siteId })];
    const from = rand() < 0.3 ? Math.floor(rand() * all.length) : 0;
    batch.push(...all.slice(from));
  }
  if (rand() < 0.4) batch.push(...batch.slice(0, Math.floor(batch.length / 2)));
  if (rand() < 0.3) batch.reverse();
  if (rand() < 0.3) {
    // Interleave: rows split into several runs of the change-by-change merge.
    const out: Change[] = [];
    const a = batch.filter((_, i) => i % 2 === 0);
    const b = batch.filter((_, i) => i % 2 === 1);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (a[i] !== undefined) out.push(a[i] as Change);
      if (b[i] !== undefined) out.push(b[i] as Change);
    }
    batch = out;
  }
  return batch.map((c) => (c.col !== '__[RIP]__' && c.col !== 'done' && rand() < 0.1 ? { ...c, val: oddValue(rand) } : c));
}


function state(e: SyncEngine): unknown {
  return {
    rows: Object.fromEntries(TABLES.map((t) => [t, tableRows(e, t).map((r) => Object.values(r).map(hex))])),
    // Keyed by the key blob: the two merges may number their rows (rids) differently.
    records: Object.fromEntries(TABLES.map((t) => [t, clockTables(e, t).records.map((r) => r.map(hex))])),
    cells: Object.fromEntries(TABLES.map((t) => [t, clockTables(e, t).cells.map((r) => r.map(hex))])),
    sites: dump(e, 'SELECT * FROM offsync_sites ORDER BY id'),
    feed: [...e.changes()].map((c) => [c.tbl, hex(c.pk), c.col, hex(c.val), c.colVersion, c.dbVersion, c.seq, c.cl, hex(c.siteId)]),
    dbVersion: e.dbVersion(),
  };
}

/** Applies `batch` to two copies of `target`; true when the grouped merge ran (its batched read was prepared). */
function compare(target: SyncEngine, name: string, batch: Change[], opts: { rejectRows?: boolean } = {}): boolean {
  target.foldPending();
  const base = join(dir, `${name}.db`);
  target.driver.exec(`VACUUM INTO '${base}'`);
  copyFileSync(base, join(dir, `${name}-b.db`));
  const grouped = reopen(base);
  const general = reopen(join(dir, `${name}-b.db`));
  let batched = false;
  const prepare = grouped.driver.prepare.bind(grouped.driver);
  grouped.driver.prepare = (sql) => {
    if (sql.startsWith('WITH k(i, pk) AS (VALUES')) batched = true;
    return prepare(sql);
  };
  try {
    const rg = grouped.applyChanges(batch, opts);
    const rc = general.applyChanges(batch, { ...opts, authorize: () => undefined });
    expect(rg).toEqual(rc);
    expect(state(grouped)).toEqual(state(general));
    return batched;
  } finally {
    grouped.close();
    general.close();
  }
}

describe('grouped merge into tables with metadata = change-by-change merge', () => {
  test(
    'random targets and batches (several sources, duplicates, reordering, interleaving, odd value types)',
    () => {
      let ran = 0;
      const cases = 60;
      for (let seed = 1; seed <= cases; seed++) {
        const rand = rng(seed);
        const target = open();
        const peers = [open(), open(), open()];
        randomWrites(target, rand, 12);
        for (const p of peers) {
          p.applyChanges([...target.changes()]);
          randomWrites(p, rand, 10);
        }
        // The target holds some of a peer's clocks, then writes again.
        target.applyChanges([...(peers[0] as SyncEngine).changes({ excludeSiteId: target.siteId })]);
        randomWrites(target, rand, 8);
        for (const p of peers) randomWrites(p, rand, 8);
        const batch = randomBatch(rand, peers, target);
        if (compare(target, `s${seed}`, batch, rand() < 0.3 ? { rejectRows: true } : {})) ran++;
        target.close();
        for (const p of peers) p.close();
      }
      // The comparison must be of the grouped merge, not of two general ones.
      expect(ran).toBeGreaterThan(cases * 0.7);
    },
    240_000,
  );

  test('a conflicting exchange of every row (ties decided by value, older edits, implicit cells)', () => {
    const a = open();
    const b = open();
    for (const k of KEYS) a.driver.prepare("INSERT INTO todos (id, title, done, note) VALUES (?, 'x', 0, 'n')").run(k);
    b.applyChanges([...a.changes()]);
    a.driver.exec("UPDATE todos SET title = 'A' || title, done = 1 - done");
    b.driver.exec("UPDATE todos SET title = 'B' || title");
    b.driver.exec("UPDATE todos SET note = 'm' WHERE id IN ('a', 'b')");
    expect(compare(b, 'x1', [...a.changes({ localOnly: true })])).toBe(true);
    expect(compare(a, 'x2', [...b.changes({ localOnly: true })])).toBe(true);
    a.close();
    b.close();
  });

  test('a late row ties against a value its column stored converted (after a chunk of rows was written)', () => {
    const a = open();
    const b = open();
    const ins = a.driver.prepare("INSERT INTO todos (id, title, done, note) VALUES (?, 'x', 0, NULL)");
    for (let i = 0; i < 300; i++) ins.run(`k${String(i).padStart(3, '0')}`);
    b.applyChanges([...a.changes()]);
    const since = a.dbVersion();
    a.driver.exec("UPDATE todos SET title = title || '!'");
    const ups = [...a.changes({ after: { dbVersion: since + 1, seq: -1 } })];
    const last = ups[ups.length - 1] as Change;
    // The last row first appears after a whole chunk of written rows; its later run ties on a
    // value the TEXT column stored converted (7 → '7'): the merge must read it as stored.
    const other = ups.find((c) => Buffer.compare(c.pk, last.pk) !== 0) as Change;
    const batch = [...ups, { ...last, val: 7n, colVersion: 9 }, other, { ...last, val: '8', colVersion: 9 }];
    compare(b, 'late', batch);
    a.close();
    b.close();
  });
});
