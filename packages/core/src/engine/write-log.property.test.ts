/**
 * Property test of the write-log layout (engine/write-log.ts): random local operations — insert,
 * update (no-op updates and storage-class changes included), delete, re-insert, primary-key
 * change, random transactions (some rolled back), with folds at random points (feed reads) and
 * merges from a peer interleaved — leave exactly the same feed (every change with its versions,
 * seqs, causal lengths, values), the same clock tables and the same db_version as the previous
 * design, where the triggers wrote the clock tables row by row. That design is kept below as the
 * reference implementation (`referenceTriggerSql`, the triggers of the previous OffSync release).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { openSyncDatabase } from '../adapters/sqlite/index.ts';
import type { SyncEngine } from './engine.ts';
import {
  TOMBSTONE_VALUES_SETTING,
  cellsTableName,
  dropTriggersSql,
  orderedColumns,
  pkBlobSql,
  quoteIdent,
  quoteText,
  rowFilterSql,
  rowsTableName,
  tombstoneValuesSql,
  triggerNames,
} from './sql-gen.ts';
import type { TriggerInput } from './sql-gen.ts';
import { foldWriteLog } from './write-log.ts';
import { clockTables } from '../testing/db-dump.ts';
import type { SqlDriver } from '../storage/driver.ts';
import { readTableSchema } from '../schema/introspect.ts';
import type { TableSchema } from '../schema/introspect.ts';
import type { Change, SqlValue } from '../types.ts';

// ---------------------------------------------------------------------------------------------
// Reference: the previous design's triggers (clock tables written directly, one version per row change).
// ---------------------------------------------------------------------------------------------

function changedSql(col: string): string {
  const c = quoteIdent(col);
  return `(NEW.${c} IS NOT OLD.${c} COLLATE BINARY OR typeof(NEW.${c}) <> typeof(OLD.${c}))`;
}

function pkSameSql(schema: TableSchema): string {
  return schema.pkColumns
    .map((k) => {
      const c = quoteIdent(k.name);
      return `(NEW.${c} IS OLD.${c} COLLATE BINARY AND typeof(NEW.${c}) = typeof(OLD.${c}))`;
    })
    .join(' AND ');
}

const NOT_APPLYING = '(SELECT applying FROM offsync_clock WHERE id = 1) = 0';
const BUMP_CLOCK = 'UPDATE offsync_clock SET v = v + 1 WHERE id = 1;';

function referenceTriggerSql({ schema, columnIds, algorithm, filter }: TriggerInput): string {
  const t = quoteIdent(schema.name);
  const r = quoteIdent(rowsTableName(schema.name));
  const c = quoteIdent(cellsTableName(schema.name));
  const [ins, upd, updpk, del, gosUpd, gosDel] = triggerNames(schema.name).map(quoteIdent);
  const newPk = pkBlobSql(schema, 'NEW');
  const oldPk = pkBlobSql(schema, 'OLD');
  const cols = orderedColumns(columnIds, schema.valueColumns.map((v) => v.name));
  const pkOnly = cols.length === 0;
  const clock = `(SELECT v FROM offsync_clock WHERE id = 1)`;
  const when = (alias: string): string => (filter === undefined ? '' : ` AND ${rowFilterSql(schema, alias, filter)}`);
  const revive = (pk: string, forceSentinel: boolean): string => `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
    SELECT p.pk, 1 + 2 * p.e, ${forceSentinel || pkOnly ? 1 : 'p.e'}, ${pkOnly ? 'NULL' : 1}, k.v, 0, 0
    FROM (SELECT q.pk, EXISTS (SELECT 1 FROM ${c} WHERE rid = (SELECT rid FROM ${r} WHERE pk = q.pk)) AS e FROM (SELECT ${pk} AS pk) q LIMIT 1) p,
      offsync_clock k WHERE k.id = 1
    ON CONFLICT (pk) DO UPDATE SET cl = CASE cl WHEN 0 THEN excluded.cl ELSE cl + CASE cl % 2 WHEN 0 THEN 1 ELSE 2 END END, sent = CASE cl WHEN 0 THEN excluded.sent ELSE 1 END,
      icv = ${pkOnly ? 'NULL' : 'CASE WHEN icv IS NULL OR cl % 2 = 0 THEN 1 ELSE icv + 1 END'},
      db_version = excluded.db_version, seq = 0, site = 0;
  ${pkOnly ? '' : `UPDATE ${c} SET col_version = col_version + 1, db_version = ${clock}, seq = 0, site = 0
    WHERE rid = (SELECT rid FROM ${r} WHERE pk = ${pk} AND cl % 2 = 1 AND cl > 1);`}`;
  const tombstone = (pk: string): string => `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
    SELECT ${pk}, 2, 1, NULL, k.v, 0, 0 FROM offsync_clock k WHERE k.id = 1
    ON CONFLICT (pk) DO UPDATE SET cl = cl + CASE cl % 2 WHEN 1 THEN 1 ELSE 2 END, sent = 1, icv = NULL,
      db_version = excluded.db_version, seq = 0, site = 0;
  ${pkOnly ? '' : `DELETE FROM ${c} WHERE rid = (SELECT rid FROM ${r} WHERE pk = ${pk});`}`;
  // (A cell of a row without a record: a bare record, causal length 0, gives it a rid.)
  const bumpCell = (col: { name: string; id: number; ord: number }, pk: string): string => `INSERT INTO ${r} (pk, cl, sent, icv, db_version, seq, site)
    SELECT ${pk}, 0, 0, NULL, -1, 0, 0 WHERE ${changedSql(col.name)} ON CONFLICT (pk) DO NOTHING;
  INSERT INTO ${c} (rid, col, col_version, db_version, seq, site)
    SELECT (SELECT rid FROM ${r} WHERE pk = p.pk), ${col.id}, COALESCE((SELECT icv FROM ${r} WHERE pk = p.pk AND cl % 2 = 1), 0) + 1, k.v, ${col.ord + 1}, 0
    FROM (SELECT ${pk} AS pk WHERE ${changedSql(col.name)}) p, offsync_clock k WHERE k.id = 1
    ON CONFLICT (rid, col) DO UPDATE SET col_version = col_version + 1, db_version = excluded.db_version, seq = excluded.seq, site = 0;`;
  const out: string[] = [];
  out.push(`CREATE TRIGGER ${ins} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING}${when('NEW')} BEGIN
  ${BUMP_CLOCK}
  ${revive(newPk, false)}
END;`);
  if (algorithm === 'gos') {
    out.push(`CREATE TRIGGER ${gosUpd} BEFORE UPDATE ON ${t} WHEN ${NOT_APPLYING} BEGIN SELECT RAISE(ABORT, 'UPDATE operation is not allowed'); END;`);
    out.push(`CREATE TRIGGER ${gosDel} BEFORE DELETE ON ${t} WHEN ${NOT_APPLYING} BEGIN SELECT RAISE(ABORT, 'DELETE operation is not allowed'); END;`);
    return out.join('\n');
  }
  const same = pkSameSql(schema);
  if (!pkOnly) {
    out.push(`CREATE TRIGGER ${upd} AFTER UPDATE ON ${t}
WHEN ${NOT_APPLYING} AND ${same} AND (${cols.map((col) => changedSql(col.name)).join(' OR ')})${when('NEW')} BEGIN
  ${BUMP_CLOCK}
  ${cols.map((col) => bumpCell(col, newPk)).join('\n  ')}
END;`);
  }
  const allCols = schema.columns.map((x) => x.name);
  const keepLast = `INSERT OR REPLACE INTO offsync_tombstones (tbl, pk, vals, audience)
    SELECT ${quoteText(schema.name)}, ${oldPk}, ${tombstoneValuesSql(allCols, 'OLD')}, NULL
    WHERE EXISTS (SELECT 1 FROM offsync_settings WHERE key = '${TOMBSTONE_VALUES_SETTING}');`;
  out.push(`CREATE TRIGGER ${updpk} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} AND NOT (${same})${when('NEW')} BEGIN
  ${BUMP_CLOCK}
  ${tombstone(oldPk)}
  ${keepLast}
  ${revive(newPk, true)}
  ${cols.map((col) => bumpCell(col, newPk)).join('\n  ')}
END;`);
  out.push(`CREATE TRIGGER ${del} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING}${when('OLD')} BEGIN
  ${BUMP_CLOCK}
  ${tombstone(oldPk)}
  ${keepLast}
END;`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------------------------

const TABLES: { ddl: string; name: string; algo?: string; filter?: string }[] = [
  // TEXT key; a column of every affinity, one untyped (INTEGER vs REAL of the same number is a change there).
  { name: 'todos', ddl: "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, v, r REAL, n NUMERIC, s TEXT COLLATE NOCASE)" },
  // Composite key, row filter.
  { name: 'pairs', ddl: 'CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, x, y TEXT, PRIMARY KEY (a, b))', filter: "x IS NULL OR x <> 'hidden'" },
  // Only a key; an untyped single key.
  { name: 'tags', ddl: 'CREATE TABLE tags (k NOT NULL PRIMARY KEY)' },
  // Grow-only.
  { name: 'events', ddl: 'CREATE TABLE events (id TEXT PRIMARY KEY NOT NULL, body TEXT)', algo: 'gos' },
  // More value columns than the integer change mask holds (the mask is kept as text).
  { name: 'wide', ddl: `CREATE TABLE wide (id TEXT PRIMARY KEY NOT NULL, ${Array.from({ length: 64 }, (_, i) => `c${i}`).join(', ')})` },
];

function openPair(): { log: SyncEngine; ref: SyncEngine; peer: SyncEngine } {
  let n = 0;
  const open = (reference: boolean): SyncEngine => {
    const e = openSyncDatabase(':memory:', { now: () => 1_700_000_000_000, randomBytes: (k) => new Uint8Array(k).fill(++n) });
    for (const t of TABLES) {
      e.driver.exec(t.ddl);
      e.init(t.name, t.algo);
      if (t.filter !== undefined) e.setRowFilter(t.name, t.filter);
    }
    e.setKeepTombstoneValues(true);
    if (reference) {
      for (const t of TABLES) {
        const ctx = e.table(t.name);
        if (ctx === undefined) throw new Error('no table');
        e.driver.exec(dropTriggersSql(t.name));
        e.driver.exec(referenceTriggerSql({ schema: readTableSchema(e.driver, t.name) as TableSchema, columnIds: ctx.colIds, algorithm: ctx.algorithm, filter: t.filter }));
      }
    }
    return e;
  };
  // Both replicas get the same site id (same random bytes), so their feeds compare byte for byte.
  const log = open(false);
  n = 0;
  const ref = open(true);
  n = 100;
  const peer = open(false);
  return { log, ref, peer };
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

type Stmt = { sql: string; params: readonly SqlValue[] };
type Step =
  | { kind: 'stmts'; stmts: Stmt[]; tx: 'none' | 'commit' | 'rollback' }
  | { kind: 'feed' }
  | { kind: 'merge'; stmts: Stmt[] };

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const anyValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constantFrom<SqlValue>(null, 1n, 2n, 'x', 'X', 'hidden', ''),
  fc.constantFrom<SqlValue>(1, 1.5, 2),
  fc.constant<SqlValue>(new Uint8Array([1, 2])),
);
const todosCol = fc.constantFrom('title', 'done', 'v', 'r', 'n', 's');
const stmtArb: fc.Arbitrary<Stmt> = fc.oneof(
  // todos
  fc.record({ id: key, title: fc.constantFrom('t1', 't2'), v: anyValue }).map(({ id, title, v }) => ({ sql: 'INSERT OR IGNORE INTO todos (id, title, v) VALUES (?, ?, ?)', params: [id, title, v] })),
  fc.record({ id: key, col: todosCol, v: anyValue }).map(({ id, col, v }) => ({ sql: `UPDATE OR IGNORE todos SET ${col} = ? WHERE id = ?`, params: [col === 'title' && v === null ? 'n' : col === 'done' && v === null ? 0n : v, id] })),
  fc.record({ id: key, v: anyValue }).map(({ id, v }) => ({ sql: 'UPDATE todos SET v = ?, title = title WHERE id = ?', params: [v, id] })),
  fc.constant({ sql: "UPDATE todos SET title = title || '+' WHERE id < 'c'", params: [] }),
  fc.constant({ sql: 'UPDATE todos SET done = done WHERE 1', params: [] }),
  key.map((id) => ({ sql: 'DELETE FROM todos WHERE id = ?', params: [id] })),
  fc.record({ from: key, to: key, bump: fc.boolean() }).map(({ from, to, bump }) => ({ sql: `UPDATE OR IGNORE todos SET id = ?${bump ? ", title = title || '*'" : ''} WHERE id = ?`, params: [to, from] })),
  fc.constant({ sql: "INSERT OR REPLACE INTO todos (id, title) VALUES ('a', 'replaced')", params: [] }),
  // pairs (composite key, row filter)
  fc.record({ a: fc.constantFrom(1n, 2n), b: key, x: anyValue }).map(({ a, b, x }) => ({ sql: 'INSERT OR IGNORE INTO pairs (a, b, x) VALUES (?, ?, ?)', params: [a, b, x] })),
  fc.record({ a: fc.constantFrom(1n, 2n), b: key, x: anyValue, y: fc.constantFrom<SqlValue>(null, 'y') }).map(({ a, b, x, y }) => ({ sql: 'UPDATE pairs SET x = ?, y = ? WHERE a = ? AND b = ?', params: [x, y, a, b] })),
  fc.record({ a: fc.constantFrom(1n, 2n), b: key }).map(({ a, b }) => ({ sql: 'DELETE FROM pairs WHERE a = ? AND b = ?', params: [a, b] })),
  fc.record({ a: fc.constantFrom(1n, 2n), b: key, to: key }).map(({ a, b, to }) => ({ sql: 'UPDATE OR IGNORE pairs SET b = ? WHERE a = ? AND b = ?', params: [to, a, b] })),
  // tags (key only) and events (grow-only)
  key.map((k) => ({ sql: 'INSERT OR IGNORE INTO tags (k) VALUES (?)', params: [k] })),
  key.map((k) => ({ sql: 'DELETE FROM tags WHERE k = ?', params: [k] })),
  fc.record({ from: key, to: key }).map(({ from, to }) => ({ sql: 'UPDATE OR IGNORE tags SET k = ? WHERE k = ?', params: [to, from] })),
  key.map((k) => ({ sql: 'INSERT OR IGNORE INTO events (id, body) VALUES (?, ?)', params: [k, `b-${k}`] })),
  // wide
  fc.record({ id: key, a: fc.integer({ min: 0, max: 63 }), b: fc.integer({ min: 0, max: 63 }), v: anyValue }).map(({ id, a, b, v }) => ({ sql: `INSERT OR IGNORE INTO wide (id, c${a}, c${b}) VALUES (?, ?, ?)`, params: [id, v, v] })),
  fc.record({ id: key, a: fc.integer({ min: 0, max: 63 }), b: fc.integer({ min: 0, max: 63 }), v: anyValue }).map(({ id, a, b, v }) => ({ sql: `UPDATE wide SET c${a} = ?, c${b} = ? WHERE id = ?`, params: [v, v, id] })),
  fc.record({ from: key, to: key, a: fc.integer({ min: 0, max: 63 }) }).map(({ from, to, a }) => ({ sql: `UPDATE OR IGNORE wide SET id = ?, c${a} = 'k' WHERE id = ?`, params: [to, from] })),
  key.map((k) => ({ sql: 'DELETE FROM wide WHERE id = ?', params: [k] })),
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('stmts' as const), stmts: fc.array(stmtArb, { minLength: 1, maxLength: 6 }), tx: fc.constantFrom('none' as const, 'commit' as const, 'rollback' as const) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'feed' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('merge' as const), stmts: fc.array(stmtArb, { minLength: 1, maxLength: 4 }) }) },
);

function run(e: SyncEngine, step: Extract<Step, { kind: 'stmts' }>): void {
  const exec = (): void => {
    for (const s of step.stmts) e.driver.prepare(s.sql).run(...s.params);
  };
  if (step.tx === 'none') {
    for (const s of step.stmts) e.driver.prepare(s.sql).run(...s.params);
    return;
  }
  e.driver.exec('BEGIN');
  exec();
  e.driver.exec(step.tx === 'commit' ? 'COMMIT' : 'ROLLBACK');
}

const show = (c: Change): string =>
  [c.tbl, Buffer.from(c.pk).toString('hex'), c.col, JSON.stringify(c.val, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)), c.colVersion, c.dbVersion, Buffer.from(c.siteId).toString('hex'), c.cl, c.seq].join('|');

function clocks(e: SyncEngine, only?: string): string[] {
  e.foldPending();
  const out: string[] = [];
  for (const t of TABLES.filter((x) => only === undefined || x.name === only)) {
    const json = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
    const { records, cells } = clockTables(e, t.name);
    for (const r of records) out.push(`${t.name} row ${json(r)}`);
    for (const r of cells) out.push(`${t.name} cell ${json(r)}`);
  }
  for (const r of e.driver.prepare('SELECT tbl, hex(pk), vals FROM offsync_tombstones ORDER BY tbl, pk').all()) out.push(`tomb ${JSON.stringify(Object.values(r))}`);
  return out;
}

function tryRun(e: SyncEngine, step: Extract<Step, { kind: 'stmts' }>): string {
  try {
    run(e, step);
    return 'ok';
  } catch (err) {
    if (e.driver.inTransaction) e.driver.exec('ROLLBACK');
    return err instanceof Error ? err.message.replace(/\(table .*\)/, '') : String(err);
  }
}

function replay(steps: Step[]): void {
  const { log, ref, peer } = openPair();
  try {
    for (const step of steps) {
      if (step.kind === 'stmts') {
        // The same outcome (a constraint error or a refused REAL key rolls back the same way).
        expect(tryRun(log, step)).toBe(tryRun(ref, step));
        expect(log.dbVersion()).toBe(ref.dbVersion());
      } else if (step.kind === 'feed') {
        expect([...log.changes({})].map(show)).toEqual([...ref.changes({})].map(show));
      } else {
        tryRun(peer, { kind: 'stmts', stmts: step.stmts, tx: 'commit' });
        const payload = peer.encodeChanges([...peer.changes({})]);
        if (payload !== null) {
          const a = log.applyPayload(payload);
          const b = ref.applyPayload(payload);
          expect(a.applied).toBe(b.applied);
        }
      }
    }
    expect(log.dbVersion()).toBe(ref.dbVersion());
    expect([...log.changes({})].map(show)).toEqual([...ref.changes({})].map(show));
    expect([...log.changes({ localOnly: true, after: { dbVersion: 2, seq: 0 } })].map(show)).toEqual([...ref.changes({ localOnly: true, after: { dbVersion: 2, seq: 0 } })].map(show));
    expect(clocks(log)).toEqual(clocks(ref));
    expect(log.driver.prepare('SELECT count(*) FROM offsync_write_log').getRaw()?.[0]).toBe(0n);
  } finally {
    log.close();
    ref.close();
    peer.close();
  }
}

describe('write log (engine/write-log.ts) against the previous direct-trigger design', () => {
  // 40 seeded runs in the suite (about 5 s alone, several times that while turbo runs every package at once);
  // WRITE_LOG_RUNS=500 for a long local run.
  const runs = Number(process.env['WRITE_LOG_RUNS'] ?? 40);
  test('random local operations, transactions and merges give the same feed, clocks and versions', () => {
    fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 25 }), (steps) => replay(steps)), { numRuns: runs, seed: 20_261_201 });
  }, 240_000);

  test('many changes of one key in one fold (many rounds) and a long run of updates', () => {
    const steps: Step[] = [];
    for (let i = 0; i < 30; i++) {
      steps.push({ kind: 'stmts', tx: 'commit', stmts: [
        { sql: 'INSERT OR IGNORE INTO todos (id, title) VALUES (?, ?)', params: ['a', `t${i}`] },
        { sql: 'UPDATE todos SET title = ? WHERE id = ?', params: [`u${i}`, 'a'] },
        { sql: 'UPDATE todos SET v = ?, done = ? WHERE id = ?', params: [i, BigInt(i % 2), 'a'] },
        { sql: i % 3 === 0 ? 'UPDATE todos SET id = ? WHERE id = ?' : 'DELETE FROM todos WHERE id = ? OR id = ?', params: ['b', 'a'] },
        { sql: 'UPDATE OR IGNORE todos SET id = ? WHERE id = ?', params: ['a', 'b'] },
      ] });
    }
    replay(steps);
  });

  test('a REAL or NULL key is refused by the trigger, nothing logged', () => {
    const { log, ref, peer } = openPair();
    try {
      for (const e of [log, ref]) {
        expect(() => e.driver.exec('INSERT INTO tags (k) VALUES (1.5)')).toThrow(/REAL primary key/);
        expect(() => e.driver.exec('INSERT INTO pairs (a, b) VALUES (1.5, 1)')).toThrow(/REAL primary key/);
      }
      expect(log.driver.prepare('SELECT count(*) FROM offsync_write_log').getRaw()?.[0]).toBe(0n);
      expect(log.dbVersion()).toBe(ref.dbVersion());
    } finally {
      log.close();
      ref.close();
      peer.close();
    }
  });
});

describe('files of the previous design (upgrade on open)', () => {
  test('an older file gets the log triggers on open; a file with a pending log is folded on open; clocks continue as before', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const Database = (await import('better-sqlite3')).default;
    const dir = mkdtempSync(join(tmpdir(), 'offsync-upgrade-'));
    const rnd = (k: number): Uint8Array => new Uint8Array(k).fill(7);
    const opts = { now: () => 1_700_000_000_000, randomBytes: rnd };
    const make = (file: string): void => {
      const e = openSyncDatabase(join(dir, file), opts);
      for (const t of TABLES) {
        e.driver.exec(t.ddl);
        e.init(t.name, t.algo);
      }
      // As an older OffSync left it: direct triggers, no write log.
      for (const t of TABLES) {
        const ctx = e.table(t.name);
        if (ctx === undefined) throw new Error('no table');
        e.driver.exec(dropTriggersSql(t.name));
        e.driver.exec(referenceTriggerSql({ schema: ctx.schema, columnIds: ctx.colIds, algorithm: ctx.algorithm }));
      }
      e.driver.exec('DROP TABLE offsync_write_log');
      e.close();
    };
    const write = (file: string, sql: string): void => {
      const db = new Database(join(dir, file));
      db.exec(sql);
      db.close();
    };
    try {
      make('old.db');
      make('ref.db');
      const first = "INSERT INTO todos (id, title) VALUES ('a', 'one'), ('b', 'two'); UPDATE todos SET title = 'uno' WHERE id = 'a'; DELETE FROM todos WHERE id = 'b'";
      const second = "INSERT INTO todos (id, title) VALUES ('b', 'again'); UPDATE todos SET id = 'c', done = 1 WHERE id = 'a'; INSERT INTO wide (id, c63) VALUES ('w', 1)";
      write('old.db', first);
      write('ref.db', first);
      const upgraded = openSyncDatabase(join(dir, 'old.db'), opts);
      const trig = upgraded.driver.prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'offsync_ins_todos'").getRaw();
      expect(String(trig?.[0])).toContain('offsync_write_log');
      upgraded.close();
      // Writes of another program are logged; the log is folded when the engine next opens the file.
      write('old.db', second);
      write('ref.db', second);
      const raw = new Database(join(dir, 'old.db'));
      expect(raw.prepare('SELECT count(*) FROM offsync_write_log').pluck().get()).toBe(3);
      raw.close();
      const old = openSyncDatabase(join(dir, 'old.db'), opts);
      expect(old.driver.prepare('SELECT count(*) FROM offsync_write_log').getRaw()?.[0]).toBe(0n);
      // The reference's clocks were all written by the direct triggers.
      const refDb = new Database(join(dir, 'ref.db'));
      const ref = (await import('../adapters/sqlite/index.ts')).createSyncEngine(refDb, opts);
      expect(clocks(old)).toEqual(clocks(ref));
      expect(old.dbVersion()).toBe(ref.dbVersion());
      expect([...old.changes({})].map(show)).toEqual([...ref.changes({})].map(show));
      old.close();
      ref.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('several connections on one file', () => {
  test('writes of any connection are folded once, by whichever engine reads first; versions as with direct triggers', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const Database = (await import('better-sqlite3')).default;
    const dir = mkdtempSync(join(tmpdir(), 'offsync-conns-'));
    const opts = { now: () => 1_700_000_000_000, randomBytes: (k: number) => new Uint8Array(k).fill(9) };
    try {
      const a = openSyncDatabase(join(dir, 'shared.db'), opts);
      a.driver.exec(TABLES[0]?.ddl ?? '');
      a.init('todos');
      const b = openSyncDatabase(join(dir, 'shared.db'), opts);
      const shell = new Database(join(dir, 'shared.db'));
      const ref = openSyncDatabase(':memory:', opts);
      ref.driver.exec(TABLES[0]?.ddl ?? '');
      ref.init('todos');
      const refCtx = ref.table('todos');
      if (refCtx === undefined) throw new Error('no table');
      ref.driver.exec(dropTriggersSql('todos') + referenceTriggerSql({ schema: refCtx.schema, columnIds: refCtx.colIds, algorithm: 'cls' }));
      const steps = [
        "INSERT INTO todos (id, title) VALUES ('a', 'one'), ('b', 'two'), ('c', 'three')",
        "UPDATE todos SET title = title || '!' WHERE id <> 'b'",
        "DELETE FROM todos WHERE id = 'c'",
        "INSERT INTO todos (id, title) VALUES ('c', 'back')",
        "UPDATE todos SET id = 'd' WHERE id = 'a'",
        "UPDATE todos SET done = 1",
      ];
      const writers = [shell, a.driver, b.driver];
      steps.forEach((sql, i) => {
        const w = writers[i % 3];
        if (w === undefined) return;
        w.exec(sql);
        ref.driver.exec(sql);
        // Every engine sees the pending versions; one of them folds.
        expect(a.dbVersion()).toBe(ref.dbVersion());
        expect(b.dbVersion()).toBe(ref.dbVersion());
        if (i % 2 === 0) expect([...(i % 4 === 0 ? a : b).changes({})].map(show)).toEqual([...ref.changes({})].map(show));
      });
      expect([...a.changes({})].map(show)).toEqual([...ref.changes({})].map(show));
      expect([...b.changes({})].map(show)).toEqual([...ref.changes({})].map(show));
      expect(clocks(b, 'todos')).toEqual(clocks(ref, 'todos'));
      // A fold that saw a pending log, then lost the race to another connection's fold, folds nothing.
      shell.exec("INSERT INTO todos (id) VALUES ('race')");
      ref.driver.exec("INSERT INTO todos (id) VALUES ('race')");
      let raced = false;
      const racing: SqlDriver = {
        prepare: (sql) => a.driver.prepare(sql),
        exec: (sql) => a.driver.exec(sql),
        transaction: (fn) => {
          if (!raced) {
            raced = true;
            expect(b.foldPending()).toBe(1);
          }
          return a.driver.transaction(fn);
        },
        get inTransaction() {
          return a.driver.inTransaction;
        },
        close: () => undefined,
      };
      expect(foldWriteLog(racing, (n) => a.table(n), (v) => v)).toBe(0);
      expect(raced).toBe(true);
      expect(a.dbVersion()).toBe(ref.dbVersion());
      expect([...a.changes({})].map(show)).toEqual([...ref.changes({})].map(show));
      shell.close();
      a.close();
      b.close();
      ref.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
