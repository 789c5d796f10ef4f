/**
 * Files whose clock tables have the layout before row ids (records WITHOUT ROWID keyed by the key
 * blob, cells keyed by (pk, col); the DDL below is that release's `metaTableSql`) are converted on
 * open (engine.ts `#upgradeLayout`, sql-gen.ts `migrateMetaTablesSql`): nothing is lost — the feed,
 * the clocks (cells without a record included) and the versions are those of the same database
 * kept in the current layout, before and after further local writes and merges.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, test } from 'vitest';
import { openSyncDatabase } from '../adapters/sqlite/index.ts';
import { clockTables } from '../testing/db-dump.ts';
import type { Change } from '../types.ts';
import type { SyncEngine } from './engine.ts';

/** The previous release's clock tables of `t` (fixture text, as that release created them). */
const OLD_LAYOUT_DDL = (t: string): string => `
CREATE TABLE IF NOT EXISTS "${t}__crdt_rows" (
  pk BLOB PRIMARY KEY NOT NULL, cl INTEGER NOT NULL, sent INTEGER NOT NULL, icv INTEGER,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "${t}__crdt_rows_v" ON "${t}__crdt_rows" (db_version, seq);
CREATE TABLE IF NOT EXISTS "${t}__crdt_cells" (
  pk BLOB NOT NULL, col INTEGER NOT NULL, col_version INTEGER NOT NULL,
  db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL,
  PRIMARY KEY (pk, col)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "${t}__crdt_cells_v" ON "${t}__crdt_cells" (db_version, seq);`;

const TABLES = [
  { name: 'todos', ddl: "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, note TEXT)" },
  { name: 'pairs', ddl: 'CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, x, PRIMARY KEY (a, b))' },
];

const dir = mkdtempSync(join(tmpdir(), 'offsync-layout-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const opts = (seed: number) => ({ now: () => 1_700_000_000_000 + seed, randomBytes: (k: number) => new Uint8Array(k).fill(seed) });

const show = (c: Change): string =>
  [c.tbl, Buffer.from(c.pk).toString('hex'), c.col, JSON.stringify(c.val, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)), c.colVersion, c.dbVersion, Buffer.from(c.siteId).toString('hex'), c.cl, c.seq].join('|');

function snapshot(e: SyncEngine, tables = TABLES.map((t) => t.name)): unknown {
  e.foldPending();
  return {
    feed: [...e.changes()].map(show),
    since: [...e.changes({ after: { dbVersion: 3, seq: 0 } })].map(show),
    clocks: tables.map((t) => clockTables(e, t)),
    dbVersion: e.dbVersion(),
  };
}

/** Rewrites the clock tables of a closed file into the previous layout (records keyed by pk). */
function downgrade(file: string): void {
  const db = new Database(file);
  db.transaction(() => {
    for (const { name: t } of TABLES) {
      db.exec(`ALTER TABLE "${t}__crdt_rows" RENAME TO cur_rows; ALTER TABLE "${t}__crdt_cells" RENAME TO cur_cells;
        DROP INDEX "${t}__crdt_rows_v"; DROP INDEX "${t}__crdt_cells_v";
        ${OLD_LAYOUT_DDL(t)}
        INSERT INTO "${t}__crdt_rows" SELECT pk, cl, sent, icv, db_version, seq, site FROM cur_rows WHERE cl <> 0;
        INSERT INTO "${t}__crdt_cells" SELECT r.pk, c.col, c.col_version, c.db_version, c.seq, c.site FROM cur_cells c JOIN cur_rows r ON r.rid = c.rid;
        DROP TABLE cur_cells; DROP TABLE cur_rows;`);
    }
  })();
  db.close();
}

const columnsOf = (file: string, table: string): string[] => {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table) as string[];
  } finally {
    db.close();
  }
};

describe('clock tables of the layout before row ids (upgrade on open)', () => {
  test('rows, explicit cells, tombstones, cells without a record and a pending log survive the conversion', () => {
    const peer = openSyncDatabase(':memory:', opts(9));
    const cur = join(dir, 'current.db');
    const legacy = join(dir, 'legacy.db');
    const e = openSyncDatabase(cur, opts(1));
    for (const t of TABLES) {
      peer.driver.exec(t.ddl);
      peer.init(t.name);
      e.driver.exec(t.ddl);
      e.init(t.name);
    }
    e.driver.exec(`INSERT INTO todos (id, title, done, note) VALUES ('a', 'one', 0, NULL), ('b', 'two', 1, 'n'), ('c', 'three', 0, 'x'), ('d', 'four', 0, NULL);
      UPDATE todos SET title = 'uno' WHERE id = 'a'; UPDATE todos SET done = 1, note = 'y' WHERE id = 'c';
      DELETE FROM todos WHERE id = 'b';
      INSERT INTO pairs (a, b, x) VALUES (1, 'p', 1), (2, 'q', 'two'), (3, 'r', x'00ff');
      UPDATE pairs SET x = 10 WHERE a = 1; DELETE FROM pairs WHERE a = 3;`);
    // From the peer: a whole row, and single cells of rows this database has no record of.
    peer.driver.exec("INSERT INTO todos (id, title) VALUES ('p1', 'peer'), ('p2', 'half'); UPDATE todos SET title = 'half!' WHERE id = 'p2'; INSERT INTO pairs (a, b, x) VALUES (7, 'z', 'seven'); UPDATE pairs SET x = 'eight' WHERE a = 7");
    const fromPeer = [...peer.changes()];
    const of = (c: Change, key: string): boolean => Buffer.from(c.pk).includes(Buffer.from(key));
    e.applyChanges(fromPeer.filter((c) => c.tbl === 'todos' && of(c, 'p1')));
    e.applyChanges(fromPeer.filter((c) => c.tbl === 'todos' && of(c, 'p2') && c.col === 'title'));
    e.applyChanges(fromPeer.filter((c) => c.tbl === 'pairs'));
    e.close();

    // The clocks hold cells without a record (the case the conversion must give bare records).
    const probe = openSyncDatabase(cur, opts(1));
    const bare = TABLES.reduce((n, t) => n + clockTables(probe, t.name).records.filter((r) => r[1] === 0n).length, 0);
    const before = snapshot(probe);
    probe.close();
    expect(bare).toBeGreaterThan(0);

    copyFileSync(cur, legacy);
    downgrade(legacy);
    expect(columnsOf(legacy, 'todos__crdt_cells')).toContain('pk');
    // Another program writes both files while no engine has them open (the log stays pending).
    for (const f of [cur, legacy]) {
      const db = new Database(f);
      db.exec("UPDATE todos SET note = 'later' WHERE id = 'a'; INSERT INTO todos (id) VALUES ('e'); DELETE FROM pairs WHERE a = 2");
      db.close();
    }

    const upgraded = openSyncDatabase(legacy, opts(1));
    const control = openSyncDatabase(cur, opts(1));
    try {
      expect(columnsOf(legacy, 'todos__crdt_cells')).toEqual(['rid', 'col', 'col_version', 'db_version', 'seq', 'site']);
      expect(columnsOf(legacy, 'pairs__crdt_rows')[0]).toBe('rid');
      expect(upgraded.driver.prepare("SELECT count(*) FROM sqlite_master WHERE name LIKE '%\\_new' ESCAPE '\\'").getRaw()?.[0]).toBe(0n);
      const after = snapshot(upgraded);
      expect(after).toEqual(snapshot(control));
      // The conversion itself lost nothing: the part before the pending writes is the same.
      expect((after as { feed: string[] }).feed.length).toBeGreaterThan((before as { feed: string[] }).feed.length);
      // Both keep working alike: local writes, a merge, a feed.
      peer.driver.exec("UPDATE pairs SET x = 'nine' WHERE a = 7; UPDATE todos SET note = 'peer note' WHERE id = 'p2'");
      const more = [...peer.changes({ after: { dbVersion: peer.dbVersion() - 2, seq: -1 } })];
      expect(more.length).toBe(2);
      for (const x of [upgraded, control]) {
        x.driver.exec("UPDATE todos SET title = 'again' WHERE id IN ('a', 'p1'); DELETE FROM todos WHERE id = 'c'; INSERT INTO todos (id, title) VALUES ('b', 'back')");
        x.applyChanges(more);
      }
      expect(snapshot(upgraded)).toEqual(snapshot(control));
    } finally {
      upgraded.close();
      control.close();
      peer.close();
    }
  });

  test('a file converted once opens as it is (the conversion runs only for the previous layout)', () => {
    const file = join(dir, 'twice.db');
    const e = openSyncDatabase(file, opts(2));
    e.driver.exec(TABLES[0]?.ddl ?? '');
    e.init('todos');
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'one'), ('b', 'x'); UPDATE todos SET title = 'two'; DELETE FROM todos WHERE id = 'b'");
    const original = snapshot(e, ['todos']);
    e.close();
    const db = new Database(file);
    db.transaction(() => {
      db.exec(`ALTER TABLE todos__crdt_rows RENAME TO cur_rows; ALTER TABLE todos__crdt_cells RENAME TO cur_cells;
        DROP INDEX todos__crdt_rows_v; DROP INDEX todos__crdt_cells_v; ${OLD_LAYOUT_DDL('todos')}
        INSERT INTO todos__crdt_rows SELECT pk, cl, sent, icv, db_version, seq, site FROM cur_rows;
        INSERT INTO todos__crdt_cells SELECT r.pk, c.col, c.col_version, c.db_version, c.seq, c.site FROM cur_cells c JOIN cur_rows r ON r.rid = c.rid;
        DROP TABLE cur_cells; DROP TABLE cur_rows;`);
    })();
    db.close();
    const first = openSyncDatabase(file, opts(2));
    const once = snapshot(first, ['todos']);
    expect(once).toEqual(original);
    const schema = first.driver.prepare("SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master WHERE name LIKE 'todos\\_\\_crdt%' ESCAPE '\\' ORDER BY name)").getRaw()?.[0];
    first.close();
    const second = openSyncDatabase(file, opts(2));
    try {
      expect(snapshot(second, ['todos'])).toEqual(once);
      expect(second.driver.prepare("SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master WHERE name LIKE 'todos\\_\\_crdt%' ESCAPE '\\' ORDER BY name)").getRaw()?.[0]).toBe(schema);
      expect(String(schema)).toContain('rid INTEGER PRIMARY KEY');
    } finally {
      second.close();
    }
  });
});

describe('bare records (cells of a row without a record of its own)', () => {
  const feedOf = (e: SyncEngine): string[] => [...e.changes()].map((c) => `${c.col}=${String(c.val)} cv${c.colVersion} cl${c.cl}`);
  const cls = (e: SyncEngine): unknown[] => {
    e.foldPending();
    return clockTables(e, 'todos').records.map((r) => r[1]);
  };

  function pair(): { peer: SyncEngine; e: SyncEngine; title: Change[] } {
    const peer = openSyncDatabase(':memory:', opts(5));
    const e = openSyncDatabase(':memory:', opts(6));
    for (const x of [peer, e]) {
      x.driver.exec(TABLES[0]?.ddl ?? '');
      x.init('todos');
    }
    peer.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'one'); UPDATE todos SET title = 'two'");
    const title = [...peer.changes()].filter((c) => c.col === 'title');
    expect(title).toHaveLength(1);
    expect(e.applyChanges(title).applied).toBe(1);
    peer.close();
    return { peer, e, title };
  }

  test('the feed, a repeated merge, a local update and a delete see no record', () => {
    const { e, title } = pair();
    try {
      expect(feedOf(e)).toEqual(['title=two cv2 cl1']);
      expect(cls(e)).toEqual([0n]);
      expect(e.applyChanges(title).applied).toBe(0);
      // A local update: the row's implicit col_version is 0 (no live record); the row stays bare.
      e.driver.exec("UPDATE todos SET done = 1 WHERE id = 'k'");
      expect(feedOf(e)).toEqual(['title=two cv2 cl1', 'done=1 cv1 cl1']);
      expect(cls(e)).toEqual([0n]);
      // Deleted: a tombstone of causal length 2 (as over no record), the cells gone.
      e.driver.exec("DELETE FROM todos WHERE id = 'k'");
      expect(feedOf(e)).toEqual(['__[RIP]__=null cv2 cl2']);
      const { records, cells } = clockTables(e, 'todos');
      expect(records.map((r) => r.slice(1, 4))).toEqual([[2n, 1n, null]]);
      expect(cells).toEqual([]);
    } finally {
      e.close();
    }
  });

  test('a local insert over a bare record writes what it writes for a key with cells and no record', () => {
    const { e } = pair();
    try {
      // Writes of rows outside the filter are not tracked: the base row goes, the bare record stays.
      e.setRowFilter('todos', 'done = 0');
      e.driver.exec("UPDATE todos SET done = 1 WHERE id = 'k'; DELETE FROM todos WHERE id = 'k'");
      expect(cls(e)).toEqual([0n]);
      e.driver.exec("INSERT INTO todos (id, title) VALUES ('k', 'local')");
      // Causal length 1 + 2 (cells exist), a sentinel, the explicit cell bumped once, the others implicit.
      expect(cls(e)).toEqual([3n]);
      expect(feedOf(e)).toEqual(['__[RIP]__=null cv3 cl3', 'title=local cv3 cl3', 'done=0 cv1 cl3', 'note=null cv1 cl3']);
    } finally {
      e.close();
    }
  });
});
