/**
 * The fresh merge into tables that already hold metadata (apply.ts `mergeFresh` with its
 * existence check, `TableContext.anyKnownKey`): a batch whose keys are all new to the target is
 * merged without reading any row's state, and must leave exactly what the change-by-change merge
 * leaves on the same starting state — the same ApplyResult, base rows, metadata (row records and
 * explicit cells, rid-resolved by key), sites, feed and clock. A batch with one key the target
 * knows (a live row, a tombstone, a bare record, a base row without a record) must take the other
 * merges, having written nothing — except a known FIRST row (a page cut inside a row): that row
 * takes the change-by-change merge, then the rest the fresh merge, numbered as one merge of the
 * whole batch. Both merges start from copies of one database file; `authorize` forces the
 * change-by-change merge.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { encodePk, type Change, type SyncEngine } from '@offsync/core';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { clockTables, tableRows } from '@offsync/core/testing';
import { prng as rng } from '@offsync/core/testing';
import { dump, hex, oddValue, openTables, randomWrites as mixedWrites } from './fixtures/merge-compare.ts';

const DDL = `CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT);
CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, v TEXT, w BLOB, PRIMARY KEY (a, b));
CREATE TABLE tags (name TEXT PRIMARY KEY COLLATE NOCASE NOT NULL, v TEXT);`;
const TABLES = ['todos', 'pairs', 'tags'];
const dir = mkdtempSync(join(tmpdir(), 'offsync-fresh-known-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open = (path?: string): SyncEngine => openTables(DDL, TABLES, path);

const OLD_KEYS = ['a', 'b', 'c', 'd'];
const NEW_KEYS = ['n1', 'n2', 'n3', 'n4', 'n5'];

/** Random local writes of `keys` (fixtures/merge-compare.ts), in this test's mix. */
const randomWrites = (e: SyncEngine, rand: () => number, ops: number, keys: readonly string[]): void =>
  mixedWrites(e, rand, ops, keys, { pairs: 0.25, pairAs: 2, pairInsert: 0.45, pairUpdate: 0.75, insert: 0.4, title: 0.6, noteDone: 0.75, done: 0.85 });


/**
 * Every key's clocks as the protocol sees them (docs/PROTOCOL.md §P5: one clock per cell): its
 * causal length (a bare record's cells live in life 1), its sentinel clock, and each value
 * column's [col_version, db_version, seq, site] — an explicit cell, or the record's implicit one
 * (seq + 1 + the column's position by id) — or null. The fresh merge stores a row whose cells all
 * have clocks as one row record with implicit cells where the change-by-change merge stores
 * explicit cells under a bare record: the same clocks, fewer metadata rows.
 */
function clocks(e: SyncEngine, table: string): unknown[][] {
  const ids = e.driver
    .prepare('SELECT id FROM offsync_columns WHERE tbl = ? ORDER BY id')
    .all(table.toLowerCase())
    .map((r) => Number(Object.values(r)[0]));
  const { records, cells } = clockTables(e, table);
  const explicit = new Map<string, unknown[]>();
  for (const [pk, col, ...clock] of cells) explicit.set(`${String(hex(pk))}/${String(col)}`, clock.map(hex));
  return records.map(([pk, cl, sent, icv, dbv, seq, site]) => {
    const key = String(hex(pk));
    const bare = Number(cl) === 0;
    const cols = ids.map((id, ord) => {
      const x = explicit.get(`${key}/${id}`);
      if (x !== undefined) return x;
      if (bare || icv === null) return null;
      return [icv, dbv, BigInt(seq as bigint) + 1n + BigInt(ord), site].map(hex);
    });
    return [key, bare ? (cols.some((c) => c !== null) ? 1 : 0) : Number(cl), !bare && Number(sent) === 1 ? [cl, dbv, seq, site].map(hex) : null, ...cols];
  });
}

/**
 * Everything the merge leaves. `fresh`: the keys (table + key blob) the fresh merge wrote, whose
 * metadata rows are compared as clocks only (`clocks`); every other key's byte for byte.
 */
function state(e: SyncEngine, fresh: ReadonlySet<string> = new Set()): unknown {
  const other = (t: string, r: unknown[]): boolean => !fresh.has(`${t}/${String(hex(r[0]))}`);
  return {
    rows: Object.fromEntries(TABLES.map((t) => [t, tableRows(e, t).map((r) => Object.values(r).map(hex))])),
    // Keyed by the key blob: the two merges may number their rows (rids) differently.
    records: Object.fromEntries(TABLES.map((t) => [t, clockTables(e, t).records.filter((r) => other(t, r)).map((r) => r.map(hex))])),
    cells: Object.fromEntries(TABLES.map((t) => [t, clockTables(e, t).cells.filter((r) => other(t, r)).map((r) => r.map(hex))])),
    clocks: Object.fromEntries(TABLES.map((t) => [t, clocks(e, t)])),
    sites: dump(e, 'SELECT * FROM offsync_sites ORDER BY id'),
    feed: [...e.changes()].map((c) => [c.tbl, hex(c.pk), c.col, hex(c.val), c.colVersion, c.dbVersion, c.seq, c.cl, hex(c.siteId)]),
    dbVersion: e.dbVersion(),
  };
}

/**
 * What the existence checks of the fresh merge answered (1: a key is known), in order; `head`: what
 * the checks of the batch's first row and the next one answered (apply.ts `knownHeadCut`); `failed` when both
 * merges threw.
 */
type Checks = number[] & { failed?: boolean; head?: number[] };

/**
 * Applies `batch` to two copies of `target` (the merge as it chooses; the change-by-change merge)
 * and compares everything; returns the answers of the existence checks the first one made.
 */
function compare(target: SyncEngine, name: string, batch: Change[], opts: { rejectRows?: boolean } = {}): Checks {
  target.foldPending();
  const base = join(dir, `${name}.db`);
  target.driver.exec(`VACUUM INTO '${base}'`);
  copyFileSync(base, join(dir, `${name}-b.db`));
  const fast = openSyncDatabase(base, { wal: false, mustExist: true });
  const general = openSyncDatabase(join(dir, `${name}-b.db`), { wal: false, mustExist: true });
  const checks: Checks = [];
  const prepare = fast.driver.prepare.bind(fast.driver);
  fast.driver.prepare = (sql) => {
    const s = prepare(sql);
    if (!/^SELECT EXISTS \(SELECT 1 FROM "\w+__crdt_rows" WHERE pk IN \(/.test(sql)) return s;
    return {
      ...s,
      getRaw: (...p) => {
        const r = s.getRaw(...p);
        if (/knownHeadCut/.test(new Error().stack ?? '')) (checks.head ??= []).push(Number(r?.[0]));
        else checks.push(Number(r?.[0]));
        return r;
      },
    };
  };
  try {
    // A value a column refuses (NULL into NOT NULL) fails both merges alike: nothing is applied.
    const outcome = (f: () => unknown): unknown => {
      try {
        return f();
      } catch (e) {
        return { error: e instanceof Error ? e.message : e };
      }
    };
    const rf = outcome(() => fast.applyChanges(batch, opts));
    const rc = outcome(() => general.applyChanges(batch, { ...opts, authorize: () => undefined }));
    expect(rf, name).toEqual(rc);
    checks.failed = typeof rf === 'object' && rf !== null && 'error' in rf;
    const written = tookFresh(checks) ? new Set(batch.map((c) => `${c.tbl}/${String(hex(c.pk))}`)) : undefined;
    expect(state(fast, written), name).toEqual(state(general, written));
    return checks;
  } finally {
    fast.close();
    general.close();
  }
}

/** The fresh merge wrote the batch (or its rest after a known first row): it checked the keys and none was known. */
const tookFresh = (c: Checks): boolean => c.length > 0 && c.every((x) => x === 0);
/** …and the merge succeeded. */
const wroteFresh = (c: Checks): boolean => tookFresh(c) && c.failed !== true;

/** A target holding rows of several sites (live, deleted, updated), none of them under NEW_KEYS. */
function target(rand: () => number): SyncEngine {
  const t = open();
  const peer = open();
  randomWrites(t, rand, 12, OLD_KEYS);
  peer.applyChanges([...t.changes()]);
  randomWrites(peer, rand, 10, OLD_KEYS);
  t.applyChanges([...peer.changes({ excludeSiteId: t.siteId })]);
  randomWrites(t, rand, 6, OLD_KEYS);
  t.driver.prepare('INSERT INTO tags (name, v) VALUES (?, ?)').run('Old', 'x');
  peer.close();
  return t;
}

/** Sources writing NEW_KEYS only (two of them exchange first: ties, older lives, resurrections), and the batch they send. */
function freshBatch(rand: () => number, tgt: SyncEngine): { batch: Change[]; sources: SyncEngine[] } {
  const sources = [open(), open(), open()];
  const [s0, s1] = sources as [SyncEngine, SyncEngine, SyncEngine];
  randomWrites(s0, rand, 12, NEW_KEYS);
  s1.applyChanges([...s0.changes()]);
  for (const s of sources) randomWrites(s, rand, 8, NEW_KEYS);
  if (rand() < 0.5) s0.driver.prepare('INSERT OR IGNORE INTO tags (name, v) VALUES (?, ?)').run('New', 'y');
  let batch: Change[] = [];
  for (const s of sources) {
    const all = [...s.changes({ excludeSiteId: tgt.siteId })];
    const from = rand() < 0.3 ? Math.floor(rand() * all.length) : 0;
    batch.push(...all.slice(from));
  }
  if (rand() < 0.4) batch.push(...batch.slice(0, Math.floor(batch.length / 2)));
  if (rand() < 0.3) batch.reverse();
  batch = batch.map((c) => (c.col !== '__[RIP]__' && c.col !== 'done' && rand() < 0.1 ? { ...c, val: oddValue(rand) } : c));
  return { batch, sources };
}

describe('fresh merge of new keys into tables with metadata = change-by-change merge', () => {
  test(
    'random targets and batches of new keys (several sources, duplicates, reordering, odd value types)',
    () => {
      let fresh = 0;
      const cases = 50;
      for (let seed = 1; seed <= cases; seed++) {
        const rand = rng(seed);
        const tgt = target(rand);
        const { batch, sources } = freshBatch(rand, tgt);
        if (wroteFresh(compare(tgt, `f${seed}`, batch, rand() < 0.3 ? { rejectRows: true } : {}))) fresh++;
        tgt.close();
        for (const s of sources) s.close();
      }
      // The comparison must be of the fresh merge (a tie against a stored value still sends a few batches elsewhere).
      expect(fresh).toBeGreaterThan(cases * 0.7);
    },
    240_000,
  );

  test(
    'random batches with one key the target knows fall back, and leave what the general merge leaves',
    () => {
      let known = 0;
      const cases = 50;
      for (let seed = 1000; seed <= 1000 + cases; seed++) {
        const rand = rng(seed);
        const tgt = target(rand);
        const { batch, sources } = freshBatch(rand, tgt);
        const kind = seed % 4;
        const src = sources[2] as SyncEngine;
        // A key the target has a row record for (live or deleted).
        tgt.foldPending();
        const recorded = OLD_KEYS.filter((k) => tgt.driver.prepare('SELECT 1 FROM "todos__crdt_rows" WHERE pk = ?').getRaw(encodePk([k])) !== undefined);
        const oldKey = recorded[Math.floor(rand() * recorded.length)] ?? 'a';
        if (kind === 0) {
          // A source that holds the target's rows writes one of them (an update, or a new life of a deleted one).
          src.applyChanges([...tgt.changes()]);
          const since = src.dbVersion();
          src.driver.prepare('INSERT INTO todos (id, title) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title').run(oldKey, `z${seed}`);
          batch.push(...src.changes({ after: { dbVersion: since + 1, seq: -1 } }));
        } else if (kind === 1) {
          // A source inserts one of the target's keys on its own (same versions: ties by value, or a tombstone wins).
          const before = src.dbVersion();
          src.driver.prepare('INSERT OR IGNORE INTO todos (id, title, done, note) VALUES (?, ?, 0, NULL)').run(oldKey, rand() < 0.5 ? 'a' : 'zz');
          batch.splice(Math.floor(rand() * batch.length), 0, ...src.changes({ after: { dbVersion: before + 1, seq: -1 } }));
        } else if (kind === 2) {
          // The target merged one cell of a new key before its row's insert: it holds a bare record and a cell.
          const cell = batch.find((c) => c.col !== '__[RIP]__') ?? (batch[0] as Change);
          tgt.applyChanges([{ ...cell, colVersion: cell.colVersion + 1 }]);
        } else {
          // The target's key under another spelling its NOCASE key column equals ('Old' as 'OLD').
          const s = open();
          s.driver.prepare('INSERT INTO tags (name, v) VALUES (?, ?)').run('OLD', rand() < 0.5 ? 'a' : 'zz');
          batch.push(...s.changes());
          s.close();
        }
        const checks = compare(tgt, `k${seed}`, batch, rand() < 0.3 ? { rejectRows: true } : {});
        if (checks.includes(1) || checks.head?.[0] === 1) known++;
        // (Only a known first row lets the fresh merge take the rest.)
        if (checks.head?.[0] !== 1) expect(tookFresh(checks), `k${seed}`).toBe(false);
        tgt.close();
        for (const s of sources) s.close();
      }
      expect(known).toBeGreaterThan(cases * 0.7);
    },
    240_000,
  );

  test('a base row without a record (written while the triggers were silenced) is a known key', () => {
    const tgt = target(rng(7));
    tgt.driver.exec('UPDATE offsync_clock SET applying = 1');
    tgt.driver.exec("INSERT INTO todos (id, title) VALUES ('n1', 'untracked')");
    tgt.driver.exec('UPDATE offsync_clock SET applying = 0');
    const src = open();
    src.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('n1', 't', 1, NULL), ('n2', 'u', 0, 'x')");
    const checks = compare(tgt, 'untracked', [...src.changes()]);
    expect([...(checks.head ?? []), ...checks]).toContain(1);
    tgt.close();
    src.close();
  });

  test('a known first row takes the general merge, the new keys after it the fresh one, in one group across the cut', () => {
    // A page of 1,200 new rows of two value columns (too sparse for the grouped merge), starting
    // with the rest of a row the target already holds (the row the previous page was cut in).
    const head = encodePk([0n, 'head']);
    for (const [name, again] of [
      ['head', false],
      ['head-again', true],
    ] as const) {
      const tgt = target(rng(11));
      tgt.driver.exec("INSERT INTO pairs (a, b, v, w) VALUES (0, 'head', 'x', NULL)");
      tgt.foldPending();
      const src = open();
      src.applyChanges([...tgt.changes()]);
      const since = src.dbVersion();
      src.driver.exec("UPDATE pairs SET v = 'y', w = x'01' WHERE a = 0 AND b = 'head'");
      const insert = src.driver.prepare('INSERT INTO pairs (a, b, v, w) VALUES (?, ?, ?, ?)');
      src.driver.transaction(() => {
        for (let i = 1; i <= 1200; i++) insert.run(BigInt(i), 'n', `v${i}`, null);
      });
      // All in one incoming group (one origin db_version): the cut falls inside it.
      const batch = [...src.changes({ after: { dbVersion: since + 1, seq: -1 } })].map((c, i) => ({ ...c, dbVersion: since + 1, seq: i }));
      expect(hex(batch[0]?.pk)).toBe(hex(head));
      // The known row again at the end: the rest holds a known key and takes the general merge too.
      if (again) batch.push(...batch.filter((c) => hex(c.pk) === hex(head)).map((c) => ({ ...c, colVersion: c.colVersion + 1 })));
      const checks = compare(tgt, name, batch);
      expect(checks.head, name).toEqual([1, 0]); // the first row known, the next one new
      expect(checks.slice(-1), name).toEqual(again ? [1] : [0]);
      tgt.close();
      src.close();
    }
  }, 60_000);

  test('a batch of new keys into a table with metadata writes each row as one row record, like into an empty one', () => {
    const tgt = target(rng(9));
    tgt.foldPending();
    const src = open();
    src.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('n1', 't', 1, NULL), ('n2', 'u', 0, 'x')");
    src.driver.exec("UPDATE todos SET title = 'v' WHERE id = 'n2'");
    const count = (e: SyncEngine, sql: string): number => Number(e.driver.prepare(sql).getRaw()?.[0]);
    const records = count(tgt, 'SELECT count(*) FROM "todos__crdt_rows"');
    const cells = count(tgt, 'SELECT count(*) FROM "todos__crdt_cells"');
    expect(tookFresh(compare(tgt, 'shape', [...src.changes()]))).toBe(true);
    tgt.applyChanges([...src.changes()]);
    expect(count(tgt, 'SELECT count(*) FROM "todos__crdt_rows"')).toBe(records + 2);
    expect(count(tgt, 'SELECT count(*) FROM "todos__crdt_cells"')).toBe(cells + 1);
    expect(tableRows(tgt, 'todos').filter((r) => String(r.id).startsWith('n'))).toEqual(tableRows(src, 'todos'));
    tgt.close();
    src.close();
  });
});
