/**
 * `RowFilter.sqlVisible` (extract.ts): an RLS SELECT pushed into the feed's SQL. The feed must
 * send exactly what the per-row filter sends — live rows the caller may see, every deletion judged
 * by its tombstone — while reading only those rows: the filter's key verdict is asked for the
 * visible live rows alone, never for the thousands it may not see.
 */
import { describe, expect, test } from 'vitest';
import { openReplica } from '../testing/replica.ts';
import { decodePk } from '../codec/pk.ts';
import type { RowFilter } from './extract.ts';
import type { SqlValue } from '../types.ts';

const DDL = "CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";
const line = (c: { pk: Uint8Array; col: string; colVersion: number; dbVersion: number; seq: number; cl: number; val: unknown }): string =>
  `${String(decodePk(c.pk)[0])}/${c.col}=${String(c.val)} ${c.colVersion}@${c.cl} v${c.dbVersion}.${c.seq}`;

function seeded(): ReturnType<typeof openReplica> {
  const e = openReplica(DDL, ['items']);
  e.setKeepTombstoneValues(true);
  const ins = e.driver.prepare('INSERT INTO items (id, owner, title) VALUES (?, ?, ?)');
  e.driver.transaction(() => {
    for (let i = 0; i < 2000; i++) ins.run(`i${i}`, `u${i % 20}`, `row ${i}`);
  });
  e.driver.prepare("UPDATE items SET title = 'edited' WHERE id IN ('i3', 'i20', 'i40')").run();
  e.driver.prepare("DELETE FROM items WHERE id IN ('i60', 'i61')").run(); // one of u0 (i60), one of u1
  return e;
}

/** The per-row filter of user `u`: owner = u, deletions by their last values. */
function filterOf(u: string, calls: { byKey: number }, pushdown: boolean): RowFilter {
  const f: RowFilter = (_t, _pk, row, tomb) => (row ?? tomb?.lastValues)?.['owner'] === u;
  const visible = new Set<string>();
  f.byKey = (_t, pk: readonly SqlValue[]) => {
    calls.byKey++;
    return visible.has(String(pk[0]));
  };
  Object.assign(f, { visibleInit: visible });
  if (pushdown) f.sqlVisible = () => ({ where: 'owner = @u', params: { u } });
  return f;
}

describe('feed with the RLS SELECT pushed into SQL', () => {
  test('sends exactly what the per-row filter sends, and judges only the visible live rows', () => {
    const e = seeded();
    for (const u of ['u0', 'u1', 'u19', 'nobody']) {
      const keys = new Set((e.driver.prepare('SELECT id FROM items WHERE owner = ?').all(u) as Array<{ id: string }>).map((r) => r.id));
      const plain = { byKey: 0 };
      const pushed = { byKey: 0 };
      const a = filterOf(u, plain, false) as RowFilter & { visibleInit: Set<string> };
      const b = filterOf(u, pushed, true) as RowFilter & { visibleInit: Set<string> };
      for (const k of keys) {
        a.visibleInit.add(k);
        b.visibleInit.add(k);
      }
      const without = [...e.changes({ rowFilter: a })].map(line);
      const withSql = [...e.changes({ rowFilter: b })].map(line);
      expect(withSql).toEqual(without);
      // The per-row path asks about every live row; the pushed one only about the visible ones.
      expect(plain.byKey).toBe(1998);
      expect(pushed.byKey).toBe(keys.size);
      if (u === 'u0') expect(withSql.some((l) => l.startsWith('i60/'))).toBe(true); // its deletion reaches its owner
      if (u === 'u0') expect(withSql.some((l) => l.startsWith('i61/'))).toBe(false); // another user's does not
    }
  });

  test('from a cursor: the same changes after it', () => {
    const e = seeded();
    const after = { dbVersion: 1500, seq: 0 };
    const calls = { byKey: 0 };
    const a = filterOf('u3', calls, false) as RowFilter & { visibleInit: Set<string> };
    const b = filterOf('u3', calls, true) as RowFilter & { visibleInit: Set<string> };
    for (const r of e.driver.prepare("SELECT id FROM items WHERE owner = 'u3'").all() as Array<{ id: string }>) {
      a.visibleInit.add(r.id);
      b.visibleInit.add(r.id);
    }
    expect([...e.changes({ after, rowFilter: b })].map(line)).toEqual([...e.changes({ after, rowFilter: a })].map(line));
  });

  test('after a policy renewal (prior values) every row is read for removals — unless the caller holds nothing', () => {
    const e = seeded();
    // A renewal recorded prior values after the cursor (here: of a key no row has).
    e.driver.prepare("INSERT INTO offsync_prior (tbl, pk, db_version, vals) VALUES ('items', x'00', 1, '[]')").run();
    const keys = (e.driver.prepare("SELECT id FROM items WHERE owner = 'u7'").all() as Array<{ id: string }>).map((r) => r.id);
    const runs = [false, true].map((holdsNothing) => {
      const calls = { byKey: 0 };
      const f = filterOf('u7', calls, true) as RowFilter & { visibleInit: Set<string> };
      for (const k of keys) f.visibleInit.add(k);
      return { holdsNothing, lines: [...e.changes({ rowFilter: f, holdsNothing })].map(line), calls: calls.byKey };
    });
    expect(runs[0]?.calls).toBe(1998); // could a row have left its sight? every live row is judged
    expect(runs[1]?.calls).toBe(keys.length); // a caller that holds nothing: only what it may see
    expect(runs[1]?.lines).toEqual(runs[0]?.lines);
  });
});
