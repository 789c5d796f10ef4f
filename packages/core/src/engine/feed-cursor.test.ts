/**
 * The change feed as a cursor (extract.ts `FeedCursor`, engine `feedCursor` / `encodeFeed`):
 * the same changes, in the same order, as the generator; `encodeFeed` the same bytes as
 * `encodeChanges([...changes()])`. A feed without row filter keeps only the value of a deferred
 * cell (the cells a later statement wrote after their row record), one with a filter keeps its
 * row's state: both must send the same, for cells deferred in and out of (db_version, seq) order
 * (rows updated in the order they were inserted, or shuffled).
 */
import { describe, expect, test } from 'vitest';
import { decodePk } from '../codec/pk.ts';
import { openReplica } from '../testing/replica.ts';
import type { Change } from '../types.ts';
import type { SyncEngine } from './engine.ts';

const DDL = `CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT, n INTEGER, body BLOB);
  CREATE TABLE counts (k INTEGER NOT NULL, g TEXT NOT NULL, v TEXT, w REAL, PRIMARY KEY (k, g))`;
// (`counts` has a composite key: its values are read row by row, not joined in the feed's SQL.)

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const line = (c: Change): string =>
  `${c.tbl} ${JSON.stringify(decodePk(c.pk), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))} ${c.col}=${c.val instanceof Uint8Array ? `x${Buffer.from(c.val).toString('hex')}` : typeof c.val === 'bigint' ? `${c.val}n` : String(c.val)} ${c.colVersion}@${c.cl} v${c.dbVersion}.${c.seq} s${Buffer.from(c.siteId).toString('hex')}`;

/** Random writes in `txns` transactions: inserts, updates of shuffled row subsets, deletes, re-inserts. */
function workload(seed: number, txns: number): SyncEngine {
  const e = openReplica(DDL, ['notes', 'counts']);
  const r = rng(seed);
  const pick = (n: number): number => Math.floor(r() * n);
  const d = e.driver;
  for (let t = 0; t < txns; t++) {
    d.transaction(() => {
      for (let i = 0, k = 1 + pick(40); i < k; i++) {
        const id = pick(60);
        switch (pick(6)) {
          case 0:
          case 1:
            d.prepare('INSERT OR REPLACE INTO notes (id, title, n, body) VALUES (?, ?, ?, ?)').run(`n${id}`, r() < 0.2 ? null : `t${pick(1000)} é`, BigInt(pick(9)), r() < 0.5 ? null : Uint8Array.of(pick(256), pick(256)));
            d.prepare("INSERT OR REPLACE INTO counts (k, g, v, w) VALUES (?, 'g', ?, ?)").run(BigInt(id), `v${pick(99)}`, r() * 10);
            break;
          case 2:
            d.prepare('UPDATE notes SET title = ? WHERE id = ?').run(`u${pick(1000)}`, `n${id}`);
            break;
          case 3:
            // Many rows, in a shuffled order: their cells come after their records, out of order.
            for (const x of Array.from({ length: 60 }, (_, j) => j).sort(() => r() - 0.5).slice(0, 20)) d.prepare('UPDATE notes SET n = n + 1 WHERE id = ?').run(`n${x}`);
            d.prepare('UPDATE counts SET v = v || ? WHERE k % 3 = ?').run('+', BigInt(pick(3)));
            break;
          case 4:
            // Every row at once, in insertion order.
            d.prepare("UPDATE notes SET title = coalesce(title, '') || '!'").run();
            break;
          default:
            d.prepare('DELETE FROM notes WHERE id = ?').run(`n${id}`);
            d.prepare('DELETE FROM counts WHERE k = ?').run(BigInt(pick(60)));
        }
      }
    });
  }
  return e;
}

function viaCursor(e: SyncEngine, after?: { dbVersion: number; seq: number }): string[] {
  const cur = e.feedCursor(after === undefined ? {} : { after });
  const out: string[] = [];
  try {
    while (cur.next()) out.push(line(cur));
  } finally {
    cur.close();
  }
  return out;
}

describe('feed cursor', () => {
  test.each([1, 2, 3, 4, 5, 6])('same changes as the generator and the filtered feed, same bytes (seed %i)', (seed) => {
    const e = workload(seed, 12);
    const all = [...e.changes()];
    expect(all.length).toBeGreaterThan(100);
    const cuts = [undefined, ...[0.25, 0.5, 0.9].map((f) => ({ dbVersion: (all[Math.floor(all.length * f)] as Change).dbVersion, seq: (all[Math.floor(all.length * f)] as Change).seq }))];
    for (const after of cuts) {
      const req = after === undefined ? {} : { after };
      const plain = [...e.changes(req)];
      const lines = plain.map(line);
      // Per table in (db_version, seq) order (a re-inserted row's cells may share its record's).
      for (const tbl of ['notes', 'counts']) {
        const keys = plain.filter((c) => c.tbl === tbl).map((c) => [c.dbVersion, c.seq] as const);
        for (let i = 1; i < keys.length; i++) {
          const [a, b] = [keys[i - 1] as readonly [number, number], keys[i] as readonly [number, number]];
          expect(a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1])).toBe(true);
        }
      }
      // A filter that lets everything through takes the row-state path for deferred cells.
      expect([...e.changes({ ...req, rowFilter: () => true })].map(line)).toEqual(lines);
      expect(viaCursor(e, after)).toEqual(lines);
      const bytes = e.encodeChanges(plain);
      const fed = e.encodeFeed(req);
      expect(fed === null ? null : Buffer.from(fed).toString('hex')).toBe(bytes === null ? null : Buffer.from(bytes).toString('hex'));
    }
    e.close();
  });

  test('stopping early ends the statements: the connection takes writes again', () => {
    const e = workload(9, 4);
    const cur = e.feedCursor();
    expect(cur.next()).toBe(true);
    cur.close();
    expect(cur.next()).toBe(false);
    e.driver.prepare("INSERT OR REPLACE INTO notes (id, title) VALUES ('late', 'x')").run();
    expect(viaCursor(e).some((l) => l.includes('"late"'))).toBe(true);
    e.close();
  });

  test('an empty feed encodes to null', () => {
    const e = openReplica(DDL, ['notes', 'counts']);
    expect(e.encodeFeed()).toBeNull();
    e.close();
  });
});
