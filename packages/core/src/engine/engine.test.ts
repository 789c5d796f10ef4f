import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openSyncDatabase } from '../adapters/sqlite/index.ts';
import { encodePk } from '../codec/pk.ts';
import { isCoreError } from '../errors.ts';
import { changesFor, clockRows, openReplica, syncOneWay, tableRows, TODOS_DDL } from '../testing/replica.ts';
import { RIP_SENTINEL } from '../types.ts';

describe('change tracking (C.3)', () => {
  test('the trigger encodes primary keys exactly as encodePk does', () => {
    const e = openReplica('CREATE TABLE k (a NOT NULL, b NOT NULL, v, PRIMARY KEY (a, b))', ['k']);
    const keys: [unknown, unknown][] = [
      ['a1', 0n], ['', 255n], ['ü€😀', 256n], [new Uint8Array([0, 1, 2]), -1n], ['x', -9223372036854775808n],
      ['y', 9223372036854775807n], ['z'.repeat(300), 65536n], ['w', -65535n],
    ];
    for (const [a, b] of keys) e.driver.prepare('INSERT INTO k (a, b, v) VALUES (?, ?, 1)').run(a as never, b as never);
    const pks = [...e.changes()].filter((c) => c.col === 'v').map((c) => Buffer.from(c.pk).toString('hex'));
    const expected = keys.map(([a, b]) => Buffer.from(encodePk([a as never, b as never])).toString('hex'));
    expect(pks.sort()).toEqual(expected.sort());
  });

  test('insert, update, delete and re-insert produce the documented clocks', () => {
    const e = openReplica();
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'one')");
    expect(clockRows(e, 'todos')).toEqual(['010B0161/done=1@1', '010B0161/note=1@1', '010B0161/title=1@1']);
    e.driver.exec("UPDATE todos SET title = 'two' WHERE id = 'a'");
    e.driver.exec("UPDATE todos SET title = 'two' WHERE id = 'a'"); // no change, no bump
    expect(clockRows(e, 'todos')).toContain('010B0161/title=2@1');
    e.driver.exec("DELETE FROM todos WHERE id = 'a'");
    expect(clockRows(e, 'todos')).toEqual(['010B0161/__[RIP]__=2@2']);
    e.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'again')");
    expect(clockRows(e, 'todos')).toEqual(['010B0161/__[RIP]__=3@3', '010B0161/done=1@3', '010B0161/note=1@3', '010B0161/title=1@3'].sort());
  });

  test('a type change counts as a change (1 vs 1.0), a NOCASE-equal text too', () => {
    const e = openReplica('CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, v, s TEXT COLLATE NOCASE)', ['t']);
    e.driver.exec("INSERT INTO t VALUES ('a', 1, 'x')");
    e.driver.exec("UPDATE t SET v = 1.0, s = 'X' WHERE id = 'a'");
    expect(clockRows(e, 't')).toEqual(['010B0161/s=2@1', '010B0161/v=2@1']);
  });

  test('db_version never goes backwards and the feed is ordered', () => {
    const e = openReplica();
    for (let i = 0; i < 20; i++) e.driver.exec(`INSERT INTO todos (id) VALUES ('r${i}')`);
    e.driver.exec("UPDATE todos SET done = 1 WHERE id IN ('r3', 'r7')");
    const feed = [...e.changes()];
    for (let i = 1; i < feed.length; i++) {
      const a = feed[i - 1]!;
      const b = feed[i]!;
      expect(a.dbVersion < b.dbVersion || (a.dbVersion === b.dbVersion && a.seq < b.seq)).toBe(true);
    }
    expect(e.dbVersion()).toBe(Math.max(...feed.map((c) => c.dbVersion)));
  });

  test('rows that existed before init are back-filled as local changes', () => {
    const e = openReplica("CREATE TABLE p (id TEXT PRIMARY KEY NOT NULL, v TEXT); INSERT INTO p VALUES ('a', 'x'), ('b', 'y')", []);
    e.init('p');
    expect([...e.changes()].map((c) => `${c.col}=${String(c.val)}`).sort()).toEqual(['v=x', 'v=y']);
  });

  test('primary-key change tombstones the old key and moves the cells', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title) VALUES ('old', 't')");
    syncOneWay(a, b);
    a.driver.exec("UPDATE todos SET id = 'new', title = 'u' WHERE id = 'old'");
    syncOneWay(a, b);
    expect(tableRows(b, 'todos')).toEqual(tableRows(a, 'todos'));
    expect(tableRows(b, 'todos').map((r) => r['id'])).toEqual(['new']);
  });

  test('schema rules are enforced with the extension messages', () => {
    const e = openReplica('CREATE TABLE r (v TEXT); CREATE TABLE i (id INTEGER PRIMARY KEY NOT NULL); CREATE TABLE n (id TEXT PRIMARY KEY NOT NULL, v TEXT NOT NULL)', []);
    expect(() => e.init('r')).toThrow(/Rowid only tables are not supported/);
    expect(() => e.init('i')).toThrow(/single-column INTEGER primary key/);
    e.init('i', 'cls', 1);
    expect(() => e.init('n')).toThrow(/must have a DEFAULT value/);
    expect(() => e.init('missing')).toThrow(/Table missing does not exist/);
    expect(() => e.init('n', 'dws', 2)).toThrow(/CRDT algorithm dws is not yet supported/);
  });
});

describe('merge (C.4, C.5)', () => {
  test('concurrent updates of the same cell converge on the higher col_version, then the greater value', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 'base')");
    syncOneWay(a, b);
    a.driver.exec("UPDATE todos SET title = 'fromC' WHERE id = 'x'");
    b.driver.exec("UPDATE todos SET title = 'fromD' WHERE id = 'x'");
    syncOneWay(a, b);
    syncOneWay(b, a);
    expect(tableRows(a, 'todos')).toEqual(tableRows(b, 'todos'));
    expect(tableRows(a, 'todos')[0]?.['title']).toBe('fromD');
    b.driver.exec("UPDATE todos SET title = 'aa' WHERE id = 'x'");
    b.driver.exec("UPDATE todos SET title = 'ab' WHERE id = 'x'");
    a.driver.exec("UPDATE todos SET title = 'zz' WHERE id = 'x'");
    syncOneWay(a, b);
    syncOneWay(b, a);
    expect(tableRows(a, 'todos')[0]?.['title']).toBe('ab');
    expect(clockRows(a, 'todos')).toEqual(clockRows(b, 'todos'));
  });

  test('delete against a concurrent update: the delete wins, a later re-insert resurrects', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 'base')");
    syncOneWay(a, b);
    a.driver.exec("DELETE FROM todos WHERE id = 'x'");
    b.driver.exec("UPDATE todos SET title = 'edit' WHERE id = 'x'");
    syncOneWay(b, a);
    syncOneWay(a, b);
    expect(tableRows(a, 'todos')).toEqual([]);
    expect(tableRows(b, 'todos')).toEqual([]);
    b.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 'reborn')");
    syncOneWay(b, a);
    expect(tableRows(a, 'todos')).toEqual(tableRows(b, 'todos'));
    expect(tableRows(a, 'todos')[0]?.['title']).toBe('reborn');
    expect(clockRows(a, 'todos')).toEqual(clockRows(b, 'todos'));
  });

  test('re-applying the same payload changes nothing (idempotent)', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('x', 't', 1, NULL), ('y', 'u', 0, 'n')");
    const payload = a.encodeChanges(changesFor(a, b));
    expect(payload).not.toBeNull();
    expect(b.applyPayload(payload!).applied).toBe(6);
    const v = b.dbVersion();
    expect(b.applyPayload(payload!).applied).toBe(0);
    expect(b.dbVersion()).toBe(v);
  });

  test('a batch with an unknown column is refused whole: nothing applied', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 't')");
    const changes = changesFor(a, b);
    changes.push({ ...changes[0]!, col: 'nope' });
    expect(() => b.applyChanges(changes)).toThrowError(expect.objectContaining({ code: 'CORE_UNKNOWN_COLUMN' }));
    expect(tableRows(b, 'todos')).toEqual([]);
    expect(b.dbVersion()).toBe(0);
    const bad = [{ ...changes[0]!, tbl: 'ghost' }];
    try {
      b.applyChanges(bad);
      expect.unreachable();
    } catch (e) {
      expect(isCoreError(e, 'CORE_UNKNOWN_TABLE')).toBe(true);
    }
  });

  test('payloads with an unknown schema hash are refused with the standard message', () => {
    const a = openReplica();
    const b = openReplica('CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT \'\', done INTEGER NOT NULL DEFAULT 0, note TEXT, extra TEXT)');
    a.driver.exec("INSERT INTO todos (id) VALUES ('x')");
    const payload = a.encodeChanges(changesFor(a, b))!;
    expect(() => b.applyPayload(payload)).toThrow(`Cannot apply the received payload because the schema hash is unknown ${a.schemaHash()}.`);
    expect(b.applyPayload(payload, { strictSchemaHash: false }).applied).toBe(3);
  });

  test('the feed excludes the requesting site and carries the origin site', () => {
    const a = openReplica();
    const s = openReplica();
    a.driver.exec("INSERT INTO todos (id) VALUES ('x')");
    syncOneWay(a, s);
    expect(changesFor(s, a)).toEqual([]);
    const c = openReplica();
    const forC = changesFor(s, c);
    expect(forC.length).toBe(3);
    expect(forC.every((ch) => Buffer.from(ch.siteId).equals(Buffer.from(a.siteId)))).toBe(true);
    expect(forC.some((ch) => ch.col === RIP_SENTINEL)).toBe(false);
  });
});

test('a consumer that stops reading the feed early leaves the connection usable', () => {
  const e = openReplica();
  for (let i = 0; i < 10; i++) e.driver.exec(`INSERT INTO todos (id) VALUES ('r${i}')`);
  for (const c of e.changes()) {
    expect(c.tbl).toBe('todos');
    break;
  }
  const feed = e.changes();
  feed.next();
  feed.return(undefined);
  e.driver.exec("INSERT INTO todos (id) VALUES ('after')");
  expect(tableRows(e, 'todos').length).toBe(11);
});

describe('schema alteration (D.2)', () => {
  test('an added column is back-filled as local changes and reaches a migrated peer', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 't'), ('y', 'u')");
    syncOneWay(a, b);
    const hashBefore = a.schemaHash();
    for (const e of [a, b]) {
      e.beginAlter('todos');
      e.driver.exec("ALTER TABLE todos ADD COLUMN tag TEXT NOT NULL DEFAULT 'none'");
      e.commitAlter('todos');
    }
    expect(a.schemaHash()).not.toBe(hashBefore);
    expect(a.knownSchemaHashes()).toContain(hashBefore);
    const v = a.dbVersion();
    a.driver.exec("UPDATE todos SET tag = 'home' WHERE id = 'x'");
    expect(a.dbVersion()).toBeGreaterThan(v);
    expect([...a.changes({ localOnly: true })].filter((c) => c.col === 'tag').length).toBe(2);
    syncOneWay(a, b);
    expect(tableRows(b, 'todos')).toEqual(tableRows(a, 'todos'));
    expect(tableRows(b, 'todos').map((r) => r['tag'])).toEqual(['home', 'none']);
  });

  test('a dropped column loses its clocks; a failed alter rolls back and keeps tracking', () => {
    const e = openReplica();
    e.driver.exec("INSERT INTO todos (id, title, note) VALUES ('x', 't', 'n')");
    e.beginAlter('todos');
    e.driver.exec('ALTER TABLE todos DROP COLUMN note');
    e.commitAlter('todos');
    expect([...e.changes()].some((c) => c.col === 'note')).toBe(false);
    expect(() => e.commitAlter('todos')).toThrow(/begin_alter must be called/);
    e.beginAlter('todos');
    e.driver.exec('CREATE TABLE todos_new (id TEXT, title TEXT, bad TEXT); INSERT INTO todos_new SELECT id, title, NULL FROM todos;');
    e.driver.exec('DROP TABLE todos; ALTER TABLE todos_new RENAME TO todos;');
    expect(() => e.commitAlter('todos')).toThrow(/Rowid only tables are not supported/);
    expect(readColumns(e)).not.toContain('bad');
    e.driver.exec("UPDATE todos SET title = 'changed' WHERE id = 'x'");
    expect([...e.changes()].find((c) => c.col === 'title')?.colVersion).toBe(2);
  });

  test('cleanup removes the metadata and stops tracking, rows stay', () => {
    const e = openReplica();
    e.driver.exec("INSERT INTO todos (id) VALUES ('x')");
    e.cleanup('todos');
    expect(e.syncedTables()).toEqual([]);
    e.driver.exec("INSERT INTO todos (id) VALUES ('y')");
    expect(tableRows(e, 'todos').length).toBe(2);
    expect([...e.changes()]).toEqual([]);
    expect(e.driver.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'todos__crdt%' OR name LIKE 'offsync_%todos'").get()?.['n']).toBe(0n);
  });
});

function readColumns(e: ReturnType<typeof openReplica>): string[] {
  return e.driver.prepare("SELECT name FROM pragma_table_info('todos')").all().map((r) => String(r['name']));
}

test('tables deployed through another connection are picked up without reopening', () => {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-refresh-'));
  const file = join(dir, 'central.db');
  const serving = openSyncDatabase(file);
  serving.driver.exec(TODOS_DDL);
  serving.init('todos');
  const admin = openSyncDatabase(file);
  admin.driver.exec('CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT)');
  admin.init('notes');
  admin.driver.exec("INSERT INTO notes (id, body) VALUES ('n1', 'hello')");
  admin.close();
  const peer = openReplica(`${TODOS_DDL}; CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT)`, ['todos', 'notes']);
  expect(syncOneWay(serving, peer)).toBe(1);
  expect(tableRows(peer, 'notes')).toEqual([{ id: 'n1', body: 'hello' }]);
  serving.close();
  rmSync(dir, { recursive: true, force: true });
});

test('rows of wide tables (column ids past 62) expand implicit and explicit cells exactly once', () => {
  const cols = Array.from({ length: 70 }, (_, i) => `c${i}`);
  const e = openReplica(`CREATE TABLE w (id TEXT PRIMARY KEY NOT NULL, ${cols.map((c) => `${c} INTEGER`).join(', ')})`, ['w']);
  e.driver.exec("INSERT INTO w (id) VALUES ('a')");
  e.driver.exec("UPDATE w SET c65 = 1, c3 = 2 WHERE id = 'a'");
  const feed = [...e.changes()];
  expect(feed.length).toBe(70);
  expect(new Set(feed.map((c) => c.col)).size).toBe(70);
  expect(feed.filter((c) => c.colVersion === 2).map((c) => c.col).sort()).toEqual(['c3', 'c65']);
});

describe('schemaHash', () => {
  test('is kept per table set and follows a schema change (an alter, a table added)', () => {
    const e = openReplica();
    const h1 = e.schemaHash();
    expect(e.schemaHash()).toBe(h1);
    e.beginAlter('todos');
    e.driver.exec('ALTER TABLE todos ADD COLUMN extra TEXT');
    e.commitAlter('todos');
    const h2 = e.schemaHash();
    expect(h2).not.toBe(h1);
    // A table added: a new set of tables, a new hash.
    e.driver.exec("CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL DEFAULT '')");
    e.init('notes');
    expect(e.schemaHash()).not.toBe(h2);
  });
});
