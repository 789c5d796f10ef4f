/**
 * A batch of rows the target knows (the usual exchange between replicas: both sides edited the same
 * rows) goes to the change-by-change merge without a pass of the fresh merge (apply.ts
 * `knownHeadCut` → `KNOWN_HEAD`): the two existence checks of its first and next key are the only
 * ones made, and the result is the one the change-by-change merge gives (`authorize` forces it).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { Change, SyncEngine } from '@offsync/core';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { clockTables, tableRows } from '@offsync/core/testing';
import { dump, hex, openTables } from './fixtures/merge-compare.ts';

const DDL = "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)";

const open = (): SyncEngine => openTables(DDL, ['todos']);
const dir = mkdtempSync(join(tmpdir(), 'offsync-known-head-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Counts the existence checks of the fresh merge and of `knownHeadCut` (one statement shape). */
function countChecks(e: SyncEngine): { n: number } {
  const counter = { n: 0 };
  const prepare = e.driver.prepare.bind(e.driver);
  e.driver.prepare = (sql) => {
    const s = prepare(sql);
    if (!/^SELECT EXISTS \(SELECT 1 FROM "\w+__crdt_rows" WHERE pk IN \(/.test(sql)) return s;
    return {
      ...s,
      getRaw: (...p) => {
        counter.n++;
        return s.getRaw(...p);
      },
    };
  };
  return counter;
}

const state = (e: SyncEngine): unknown => ({
  rows: tableRows(e, 'todos').map((r) => Object.values(r).map(hex)),
  records: clockTables(e, 'todos').records.map((r) => r.map(hex)),
  cells: clockTables(e, 'todos').cells.map((r) => r.map(hex)),
  sites: dump(e, 'SELECT * FROM offsync_sites ORDER BY id'),
  feed: [...e.changes()].map((c) => [c.tbl, hex(c.pk), c.col, hex(c.val), c.colVersion, c.dbVersion, c.seq, c.cl, hex(c.siteId)]),
  dbVersion: e.dbVersion(),
});

describe('a batch of known rows', () => {
  test('takes the change-by-change merge after the two head checks, with its result', () => {
    const a = open();
    for (let i = 0; i < 40; i++) a.driver.prepare('INSERT INTO todos (id, title, done, note) VALUES (?, ?, ?, ?)').run(`k${i}`, `t${i}`, BigInt(i % 2), i % 3 === 0 ? null : `n${i}`);
    const initial = [...a.changes()];
    // One replica holding the rows edits them too (ties on title, a loss on done), then two copies of it.
    const b = open();
    b.applyChanges(initial);
    const since = a.dbVersion();
    a.driver.exec("UPDATE todos SET title = 'A' || title, done = 1 - done");
    a.driver.exec("DELETE FROM todos WHERE id IN ('k3', 'k17')");
    b.driver.exec("UPDATE todos SET title = 'B' || title");
    b.foldPending();
    b.driver.exec(`VACUUM INTO '${join(dir, 'fast.db')}'`);
    copyFileSync(join(dir, 'fast.db'), join(dir, 'general.db'));
    const fast = openSyncDatabase(join(dir, 'fast.db'), { wal: false, mustExist: true });
    const general = openSyncDatabase(join(dir, 'general.db'), { wal: false, mustExist: true });
    const batch: Change[] = [...a.changes({ after: { dbVersion: since + 1, seq: -1 } })];
    expect(batch.length).toBeGreaterThan(40);
    const checks = countChecks(fast);
    const rf = fast.applyChanges(batch);
    const rg = general.applyChanges(batch, { authorize: () => undefined });
    expect(rf).toEqual(rg);
    expect(state(fast)).toEqual(state(general));
    // knownHeadCut: the first key, then the next one; no check of the fresh merge's after them.
    expect(checks.n).toBe(2);
    for (const e of [a, b, fast, general]) e.close();
  });
});
