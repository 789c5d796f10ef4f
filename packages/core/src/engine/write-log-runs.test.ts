/**
 * The single-kind run fold of engine/write-log.ts (`foldRun`): a table's log made of a few runs of
 * inserts, updates or deletes — keys repeated inside a run, explicit cells already present, an
 * empty cells table — is folded straight from the log. Oracle: the same writes on a second
 * replica folded after every statement (each fold then holds one statement's rows, keys
 * distinct), which must leave the same clocks, feed and db_version (docs/PROTOCOL.md §P5, local
 * writes: the fold is per-row rules applied in log order).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { openSyncDatabase } from '../adapters/sqlite/index.ts';
import type { SyncEngine } from './engine.ts';
import { cellsTableName, quoteIdent } from './sql-gen.ts';
import { clockTables } from '../testing/db-dump.ts';
import type { Change, SqlValue } from '../types.ts';

const TABLES = [
  { name: 'todos', ddl: "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, v)" },
  { name: 'nums', ddl: 'CREATE TABLE nums (id INTEGER PRIMARY KEY NOT NULL, x, y TEXT)' },
];

function open(): SyncEngine {
  let n = 0;
  const e = openSyncDatabase(':memory:', { now: () => 1_700_000_000_000, randomBytes: (k) => new Uint8Array(k).fill(++n) });
  for (const t of TABLES) {
    e.driver.exec(t.ddl);
    e.init(t.name, undefined, t.name === 'nums' ? 1 : 0); // globally unique integer ids
  }
  return e;
}

const json = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));

function clocks(e: SyncEngine): string[] {
  e.foldPending();
  const out: string[] = [];
  for (const t of TABLES) {
    const { records, cells } = clockTables(e, t.name);
    for (const r of records) out.push(`${t.name} row ${json(r)}`);
    for (const r of cells) out.push(`${t.name} cell ${json(r)}`);
  }
  return out;
}

const show = (c: Change): string => [c.tbl, Buffer.from(c.pk).toString('hex'), c.col, json(c.val), c.colVersion, c.dbVersion, c.cl, c.seq].join('|');

type Stmt = { sql: string; params: readonly SqlValue[] };
const tkey = fc.constantFrom('a', 'b', 'c', 'd');
const nkey = fc.constantFrom(1n, 2n, 3n, 300n);
const val = fc.oneof(fc.constant<SqlValue>(null), fc.constantFrom<SqlValue>(1n, 2n, 'x', 'y', 1.5), fc.constant<SqlValue>(new Uint8Array([7])));
const col = fc.constantFrom('title', 'done', 'v');
const stmtArb: fc.Arbitrary<Stmt> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ id: tkey, t: fc.constantFrom('t1', 't2') }).map(({ id, t }) => ({ sql: 'INSERT OR IGNORE INTO todos (id, title) VALUES (?, ?)', params: [id, t] })) },
  { weight: 4, arbitrary: fc.record({ id: tkey, c: col, v: val }).map(({ id, c, v }) => ({ sql: `UPDATE todos SET ${c} = ? WHERE id = ?`, params: [c === 'title' && v === null ? 'n' : c === 'done' && v === null ? 0n : v, id] })) },
  { weight: 2, arbitrary: fc.record({ id: tkey, v: val }).map(({ id, v }) => ({ sql: "UPDATE todos SET v = ?, title = title || '+' WHERE id = ?", params: [v, id] })) },
  { weight: 1, arbitrary: fc.constant({ sql: "UPDATE todos SET title = title || '!' WHERE id <= 'c'", params: [] }) },
  { weight: 1, arbitrary: tkey.map((id) => ({ sql: 'DELETE FROM todos WHERE id = ?', params: [id] })) },
  { weight: 1, arbitrary: fc.constant({ sql: "INSERT OR REPLACE INTO todos (id, title) VALUES ('a', 'replaced')", params: [] }) },
  { weight: 2, arbitrary: fc.record({ id: nkey, x: val }).map(({ id, x }) => ({ sql: 'INSERT OR IGNORE INTO nums (id, x) VALUES (?, ?)', params: [id, x] })) },
  { weight: 3, arbitrary: fc.record({ id: nkey, x: val, y: fc.constantFrom<SqlValue>(null, 'p', 'q') }).map(({ id, x, y }) => ({ sql: 'UPDATE nums SET x = ?, y = ? WHERE id = ?', params: [x, y, id] })) },
  { weight: 1, arbitrary: nkey.map((id) => ({ sql: 'DELETE FROM nums WHERE id = ?', params: [id] })) },
);

function check(batches: Stmt[][]): void {
  const once = open();
  const each = open();
  try {
    for (const batch of batches) {
      for (const s of batch) {
        once.driver.prepare(s.sql).run(...s.params);
        each.driver.prepare(s.sql).run(...s.params);
        each.foldPending();
      }
      expect(once.dbVersion()).toBe(each.dbVersion());
      expect(clocks(once)).toEqual(clocks(each));
    }
    expect([...once.changes({})].map(show)).toEqual([...each.changes({})].map(show));
    expect(once.driver.prepare('SELECT count(*) FROM offsync_write_log').getRaw()?.[0]).toBe(0n);
  } finally {
    once.close();
    each.close();
  }
}

describe('write-log runs (engine/write-log.ts foldRun) against a fold after every statement', () => {
  test('random batches of inserts, updates (keys repeated within a run) and deletes', () => {
    fc.assert(fc.property(fc.array(fc.array(stmtArb, { minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 6 }), (b) => check(b)), { numRuns: 60, seed: 20_261_202 });
  });

  test('one long run of updates repeating keys, over explicit cells and over implicit ones', () => {
    const batch: Stmt[] = [];
    for (let i = 0; i < 40; i++) batch.push({ sql: 'UPDATE todos SET title = ?, v = ? WHERE id = ?', params: [`u${i}`, BigInt(i), ['a', 'b', 'c'][i % 3] ?? 'a'] });
    const seed: Stmt[] = [
      { sql: "INSERT INTO todos (id, title) VALUES ('a', 'x'), ('b', 'y'), ('c', 'z')", params: [] },
      { sql: "UPDATE todos SET title = 'explicit' WHERE id = 'a'", params: [] },
    ];
    check([seed, batch, batch]);
  });

  test('a log of more runs than are found by jumping (the rest cut in one pass): tables and kinds interleaved', () => {
    // 64 runs of nums (found by jumping), then a few runs of todos (cut by the one pass: todos
    // has few enough runs to be folded run by run), then more nums.
    const nums = (from: number, to: number): Stmt[] =>
      Array.from({ length: to - from }, (_, i) => (i % 2 === 0
        ? { sql: 'INSERT OR REPLACE INTO nums (id, x) VALUES (?, ?)', params: [BigInt((from + i) % 4), BigInt(from + i)] }
        : { sql: 'UPDATE nums SET y = ? WHERE id = ?', params: [`y${from + i}`, BigInt((from + i - 1) % 4)] }));
    const todos: Stmt[] = [
      { sql: "INSERT OR REPLACE INTO todos (id, title) VALUES ('a', '1'), ('b', '2'), ('c', '3')", params: [] },
      { sql: "UPDATE todos SET title = title || '+'", params: [] },
      { sql: "UPDATE todos SET v = 1 WHERE id <> 'b'", params: [] },
      { sql: "DELETE FROM todos WHERE id = 'c'", params: [] },
    ];
    check([[...nums(0, 64), ...todos, ...nums(64, 80)], [...todos, ...nums(0, 70), ...todos]]);
  });

  test('a bulk insert into a table without cells, then re-inserts of keys that have cells', () => {
    const ins: Stmt[] = [{ sql: "INSERT INTO todos (id, title) VALUES ('a', '1'), ('b', '2'), ('c', '3')", params: [] }];
    const upd: Stmt[] = [{ sql: "UPDATE todos SET done = 1 WHERE id <> 'c'", params: [] }];
    const del: Stmt[] = [{ sql: 'DELETE FROM todos', params: [] }];
    const again: Stmt[] = [
      { sql: "INSERT INTO todos (id, title) VALUES ('a', 'again'), ('b', 'again'), ('d', 'new')", params: [] },
      { sql: "DELETE FROM todos WHERE id = 'a'", params: [] },
      { sql: "INSERT INTO todos (id) VALUES ('a')", params: [] },
    ];
    check([ins, upd, del, again]);
    // A cell merged for a row missing from the table: the re-insert bumps it (the probe finds it).
    const e = open();
    try {
      e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'x')");
      e.driver.exec("UPDATE todos SET title = 'y'");
      e.foldPending();
      e.driver.exec('UPDATE offsync_clock SET applying = 1');
      e.driver.exec("DELETE FROM todos WHERE id = 'a'");
      e.driver.exec('UPDATE offsync_clock SET applying = 0');
      const before = Number(e.driver.prepare(`SELECT col_version FROM ${quoteIdent(cellsTableName('todos'))}`).getRaw()?.[0]);
      e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'z')");
      e.foldPending();
      expect(Number(e.driver.prepare(`SELECT col_version FROM ${quoteIdent(cellsTableName('todos'))}`).getRaw()?.[0])).toBe(before + 1);
    } finally {
      e.close();
    }
  });
});
