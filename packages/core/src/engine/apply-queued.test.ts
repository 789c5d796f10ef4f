/**
 * The change-by-change merge queues its base upserts and cell clocks (apply.ts `Merge.out`,
 * apply-writes.ts) and flushes before any read that could see them. It must leave exactly what
 * it leaves writing at once — forced here with a no-op `authorize`, which also keeps the batch
 * off the grouped merges: every table (rowids included), the result, the feed and the clock.
 * Batches of ≥ 1,000 rows with < 3 changes per row take the change-by-change merge.
 */
import { describe, expect, test } from 'vitest';
import { dumpDatabase } from '../testing/db-dump.ts';
import { openReplica } from '../testing/replica.ts';
import type { SyncEngine } from './engine.ts';
import { RIP_SENTINEL } from '../types.ts';
import type { Change } from '../types.ts';
import { prng as rng } from '../testing/replica-harness.ts';

const ROWS = 1200;
/** The row whose title violates the CHECK constraint (not the last of a 64-row statement). */
const BAD = ROWS - 10;
const key = (i: number): string => `k${i.toString(36).padStart(4, '0')}`;

function randomEdits(e: SyncEngine, rand: () => number, ops: number, upper = false): void {
  const ins = e.driver.prepare('INSERT OR IGNORE INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
  const title = e.driver.prepare('UPDATE todos SET title = ? WHERE id = ?');
  const both = e.driver.prepare('UPDATE todos SET title = ?, done = 1 - done WHERE id = ?');
  const del = e.driver.prepare('DELETE FROM todos WHERE id = ?');
  e.driver.transaction(() => {
    for (let i = 0; i < ops; i++) {
      const n = Math.floor(rand() * ROWS);
      const k = upper && rand() < 0.3 ? key(n).toUpperCase() : key(n);
      const r = rand();
      if (r < 0.45) title.run(`t${Math.floor(rand() * 4)}`, k);
      else if (r < 0.7) both.run(`b${Math.floor(rand() * 3)}`, k);
      else if (r < 0.85) del.run(k);
      else ins.run(k, `r${i}`, BigInt(i % 2), rand() < 0.3 ? null : `n${i}`);
    }
  });
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
/** The site id of the database itself (each replica has its own). */
const ownSite = (e: SyncEngine): string => hex(e.driver.prepare('SELECT site_id FROM offsync_sites WHERE id = 0').getRaw()?.[0] as Uint8Array);
const feedOf = (e: SyncEngine): unknown[] =>
  [...e.changes()].map((c) => [hex(c.pk), c.col, c.val, c.colVersion, c.dbVersion, c.seq, c.cl, hex(c.siteId) === ownSite(e) ? 'self' : hex(c.siteId)]);
/** Every table, but the row of the database's own site id. */
function dumpOf(e: SyncEngine): Record<string, string[]> {
  const d = dumpDatabase(e);
  d['offsync_sites'] = (d['offsync_sites'] ?? []).filter((r) => !r.startsWith('id=0n,'));
  return d;
}
const rowids = (e: SyncEngine): unknown[] => e.driver.prepare('SELECT rowid, id FROM todos ORDER BY rowid').all();

/** Two targets in one state: `base` then `batch` merged queued on one, at once on the other. */
function compare(ddl: string, base: Change[], batch: Change[]): void {
  const queued = openReplica(ddl);
  const direct = openReplica(ddl);
  if (base.length > 0) {
    queued.applyChanges(base, { authorize: () => undefined });
    direct.applyChanges(base, { authorize: () => undefined });
  }
  const rq = queued.applyChanges(batch);
  const rd = direct.applyChanges(batch, { authorize: () => undefined });
  expect(rq).toEqual(rd);
  expect(dumpOf(queued)).toEqual(dumpOf(direct));
  expect(rowids(queued)).toEqual(rowids(direct));
  expect(feedOf(queued)).toEqual(feedOf(direct));
  expect(queued.dbVersion()).toBe(direct.dbVersion());
}

/** A source with every row, a replica of it, random edits on both: the base state and the exchange. */
function scenario(seed: number, ddl: string, upper = false): { base: Change[]; batch: Change[] } {
  const rand = rng(seed);
  const src = openReplica(ddl);
  src.driver.transaction(() => {
    const ins = src.driver.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < ROWS; i++) ins.run(key(i), `todo ${i}`, BigInt(i % 2), i % 3 === 0 ? null : `note ${i}`);
  });
  const base = [...src.changes()];
  const a = openReplica(ddl);
  const b = openReplica(ddl);
  a.applyChanges(base);
  b.applyChanges(base);
  // Every row in the batch (≥ 1,000 rows), about two changes per row.
  a.driver.exec("UPDATE todos SET title = title || '!'");
  randomEdits(a, rand, 300, upper);
  randomEdits(b, rand, 300, upper);
  const batch = [...a.changes({ localOnly: true }), ...b.changes({ localOnly: true })];
  // Rows come back later in the batch (queued writes of an earlier run of the same row).
  if (rand() < 0.7) batch.push(...batch.slice(0, Math.floor(batch.length / 4)));
  if (rand() < 0.5) batch.reverse();
  return { base, batch };
}

const TODOS = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

describe('change-by-change merge with queued writes', () => {
  test('conflicting exchanges (ties, deletes, resurrections, rows coming back later) leave what writing at once leaves', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const { base, batch } = scenario(seed, TODOS);
      expect(batch.length).toBeLessThan(3 * ROWS); // the change-by-change merge's density
      compare(TODOS, base, batch);
    }
  });

  test('new rows among queued updates, deletes and resurrections keep their rowids', () => {
    const { base, batch } = scenario(7, TODOS);
    // The target holds the first half of the rows; the other half arrives as one title each.
    const index = (c: Change): number => parseInt(Buffer.from(c.pk).subarray(3).toString().slice(1), 36);
    const fresh = base.filter((c) => index(c) >= ROWS / 2 && c.col === 'title');
    const mixed: Change[] = [];
    for (let i = 0; i < Math.max(fresh.length, batch.length); i++) mixed.push(...batch.slice(i, i + 1), ...fresh.slice(i, i + 1));
    compare(TODOS, base.filter((c) => index(c) < ROWS / 2), mixed);
  });

  test('a change right after a winning one of the same cell reads the queued clock', () => {
    const { base, batch } = scenario(9, TODOS);
    // Every fourth value change followed by an older edit of the same cell (which loses to it).
    const doubled = batch.flatMap((c, i) => (c.col === RIP_SENTINEL || i % 4 !== 0 ? [c] : [c, { ...c, colVersion: c.colVersion - 1, val: 'older' }]));
    compare(TODOS, base, doubled);
  });

  test('a key with a NOCASE collation: two key blobs name one row, nothing is queued', () => {
    const ddl = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL COLLATE NOCASE, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
    const src = openReplica(ddl);
    src.driver.transaction(() => {
      const ins = src.driver.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
      for (let i = 0; i < ROWS; i++) ins.run(key(i), `todo ${i}`, 0n, null);
    });
    const base = [...src.changes()];
    const title = base.filter((c) => c.col === 'title');
    // Per row: a new key blob in upper case (a new identity of the same row under NOCASE) writes
    // the title, then a tie on the lower-case blob's title compares with what the row holds now.
    const batch: Change[] = [];
    for (const c of title.slice(0, ROWS / 2)) {
      const upper = new Uint8Array(c.pk);
      upper.set(Buffer.from(Buffer.from(c.pk).subarray(3).toString().toUpperCase()), 3);
      batch.push({ ...c, pk: upper, val: 'Z' }, { ...c, val: 'm' });
    }
    compare(ddl, base, batch);
  });

  test('a key with a NOCASE collation: nothing is queued, the result is the same', () => {
    const ddl = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL COLLATE NOCASE, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";
    const { base, batch } = scenario(8, ddl, true);
    compare(ddl, base, batch);
  });

  test('a queued write that violates a constraint fails the batch with its own error, or is rejected alone (rejectRows)', () => {
    const ddl = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '' CHECK (title <> 'bad'), done INTEGER NOT NULL DEFAULT 0, note TEXT)";
    const src = openReplica(TODOS);
    src.driver.transaction(() => {
      const ins = src.driver.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)');
      for (let i = 0; i < ROWS; i++) ins.run(key(i), i === BAD ? 'bad' : `todo ${i}`, 0n, null);
    });
    // One change per row (titles only): the change-by-change merge's density.
    const batch = [...src.changes()].filter((c) => c.col === 'title');
    // An unknown column right after the bad row (its write still queued): the constraint error came first.
    const at = batch.findIndex((c) => c.val === 'bad');
    expect(at).toBeGreaterThan(0);
    batch.splice(at + 1, 0, { ...(batch[at + 1] as Change), col: 'missing' });
    const queued = openReplica(ddl);
    const direct = openReplica(ddl);
    // (Metadata first: the batch then takes the change-by-change merge.)
    for (const e of [queued, direct]) e.driver.exec("INSERT INTO todos (id) VALUES ('zzz')");
    const error = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        return `${(e as { code?: string }).code}: ${(e as Error).message}`;
      }
      return 'no error';
    };
    const eq = error(() => queued.applyChanges(batch));
    expect(eq).toMatch(/^SQLITE_CONSTRAINT_CHECK/);
    expect(eq).toBe(error(() => direct.applyChanges(batch, { authorize: () => undefined })));
    expect(dumpOf(queued)).toEqual(dumpOf(direct));
    const ok = batch.filter((c) => c.col !== 'missing');
    const rq = queued.applyChanges(ok, { rejectRows: true });
    const rd = direct.applyChanges(ok, { rejectRows: true, authorize: () => undefined });
    expect(rq.rejected.map((r) => r.code)).toEqual(['constraint_violation']);
    expect(rq).toEqual(rd);
    expect(dumpOf(queued)).toEqual(dumpOf(direct));
    expect(rowids(queued)).toEqual(rowids(direct));
  });
});
