import type { MergeConflict, SyncEngine } from '@offsync/core';
import { changesFor, openReplica } from '@offsync/core/testing';
import { afterEach, describe, expect, test } from 'vitest';
import {
  ConflictLog,
  ConflictRestoreError,
  conflictCursor,
  conflictInput,
  conflictLogOf,
  decodeConflictCursor,
  DEFAULT_CONFLICT_MAX_AGE_MS,
  DEFAULT_CONFLICT_MAX_ENTRIES,
  dropRejected,
  keyCandidates,
  restoreLosingWrite,
} from './conflict-log.ts';
import type { ConflictInput } from './conflict-log.ts';

const engines: SyncEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function replica(ddl?: string, tables?: string[]): SyncEngine {
  const e = openReplica(ddl, tables);
  engines.push(e);
  return e;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const SITE_A = 'a'.repeat(32);
const SITE_B = '0123456789abcdef0123456789abcdef';
const T0 = Date.parse('2025-06-15T12:00:00Z');

function input(over: Partial<ConflictInput> = {}): ConflictInput {
  return {
    table: 'todos',
    pk: new Uint8Array([1, 0x0b, 0x01, 0x74]),
    pkValues: ['t'],
    column: 'title',
    kind: 'tiebreak',
    winner: { value: 'from b', colVersion: 2, cl: 1, siteId: SITE_B },
    loser: { value: 'from a', colVersion: 2, cl: 1, siteId: SITE_A },
    row: null,
    uploaderSiteId: SITE_B,
    uploaderUserId: 'bob',
    ...over,
  };
}

/** srv ← a, srv → b, then both edit `title` of 't' from the same base; returns the reports of b's upload. */
function concurrentEdit(): { srv: SyncEngine; a: SyncEngine; b: SyncEngine; reports: MergeConflict[] } {
  const srv = replica();
  const a = replica();
  const b = replica();
  a.driver.exec("INSERT INTO todos (id, title) VALUES ('t', 'base')");
  srv.applyChanges(changesFor(a, srv));
  b.applyChanges(changesFor(srv, b));
  a.driver.exec("UPDATE todos SET title = 'from a' WHERE id = 't'");
  b.driver.exec("UPDATE todos SET title = 'from b' WHERE id = 't'");
  srv.applyChanges([...a.changes({ localOnly: true })]);
  const reports: MergeConflict[] = [];
  srv.applyChanges([...b.changes({ localOnly: true })], { onConflict: (c) => reports.push(c) });
  return { srv, a, b, reports };
}

describe('record and list', () => {
  test('a real tiebreak report is recorded with both sides, the uploader and the time', () => {
    const { srv, a, b, reports } = concurrentEdit();
    const log = conflictLogOf(srv);
    const [e] = log.record(reports.map((c) => conflictInput(c, hex(b.siteId), 'bob')), T0);
    expect(e?.id).toBe(1);
    const page = log.list({ first: 10 });
    expect(page.totalCount).toBe(1);
    const n = page.nodes[0];
    expect(n).toMatchObject({
      table: 'todos', pkValues: ['t'], column: 'title', kind: 'tiebreak',
      winner: { value: 'from b', colVersion: 2, siteId: hex(b.siteId) },
      loser: { value: 'from a', colVersion: 2, siteId: hex(a.siteId) },
      uploaderSiteId: hex(b.siteId), uploaderUserId: 'bob', row: null, restoredAt: null,
    });
    expect(n?.at.getTime()).toBe(T0);
    expect(n?.pk).toEqual(new Uint8Array(reports[0]?.pk ?? []));
  });

  test('every SQL value type round-trips (INTEGER as bigint, BLOB, non-finite REAL, NULL, the row of a delete)', () => {
    const log = new ConflictLog(replica());
    const blob = new Uint8Array([0, 0xff, 0x10]);
    log.record([
      input({
        pkValues: [42n, blob],
        column: null,
        kind: 'delete_over_update',
        winner: { value: null, colVersion: 2, cl: 2, siteId: SITE_B },
        loser: { value: null, colVersion: 1, cl: 1, siteId: SITE_A },
        row: { id: 42n, data: blob, score: -Infinity, ratio: 0.5, note: null, big: 9007199254740993n },
      }),
      input({ winner: { value: blob, colVersion: 3, cl: 1, siteId: SITE_B }, loser: { value: Number.NaN, colVersion: 3, cl: 1, siteId: SITE_A } }),
    ], T0);
    const [second, first] = log.list({ first: 10 }).nodes;
    expect(first?.pkValues).toEqual([42n, blob]);
    expect(first?.row).toEqual({ id: 42n, data: blob, score: -Infinity, ratio: 0.5, note: null, big: 9007199254740993n });
    expect(first?.column).toBeNull();
    expect(second?.winner.value).toEqual(blob);
    expect(second?.winner.value).toBeInstanceOf(Uint8Array);
    expect(Number.isNaN(second?.loser.value)).toBe(true);
  });

  test('filters: table, key (text, JSON, integer), either side’s site, user (uploader or a device of theirs), kind, since; keyset pages newest first', () => {
    const log = new ConflictLog(replica());
    log.record([input({ pkValues: ['t'] }), input({ table: 'notes', pkValues: [7n], uploaderUserId: null, uploaderSiteId: SITE_A, winner: { value: 1n, colVersion: 1, cl: 1, siteId: SITE_A }, loser: { value: 2n, colVersion: 1, cl: 1, siteId: SITE_A } })], T0);
    log.record([input({ pkValues: ['u'], kind: 'superseded' }), input({ pkValues: ['a', 1n], table: 'pairs' })], T0 + 60_000);
    const ids = (filter: Parameters<ConflictLog['list']>[0]['filter']): number[] => log.list({ first: 10, filter }).nodes.map((n) => n.id);
    expect(ids({})).toEqual([4, 3, 2, 1]);
    expect(ids({ table: 'notes' })).toEqual([2]);
    expect(ids({ key: 't' })).toEqual([1]);
    expect(ids({ key: '["u"]' })).toEqual([3]);
    expect(ids({ key: '7' })).toEqual([2]);
    expect(ids({ key: '[7]' })).toEqual([2]);
    expect(ids({ key: '[{"$int":"7"}]' })).toEqual([2]);
    expect(ids({ key: '["a", 1]' })).toEqual([4]);
    expect(ids({ key: 'nope' })).toEqual([]);
    expect(ids({ siteId: SITE_B })).toEqual([4, 3, 1]);
    expect(ids({ siteId: SITE_A.toUpperCase() })).toEqual([4, 3, 2, 1]);
    expect(ids({ userId: 'bob' })).toEqual([4, 3, 1]);
    // A user whose device (site A) wrote one side: found through the devices, not the uploader.
    expect(ids({ userId: 'alice', userSiteIds: [SITE_A] })).toEqual([4, 3, 2, 1]);
    expect(ids({ userId: 'carol', userSiteIds: [] })).toEqual([]);
    expect(ids({ kind: 'superseded' })).toEqual([3]);
    expect(ids({ since: new Date(T0 + 1) })).toEqual([4, 3]);
    const p1 = log.list({ first: 3 });
    expect([p1.nodes.map((n) => n.id), p1.hasNextPage, p1.endCursor]).toEqual([[4, 3, 2], true, conflictCursor(2)]);
    const p2 = log.list({ first: 3, after: p1.endCursor ?? undefined });
    expect([p2.nodes.map((n) => n.id), p2.hasNextPage, p2.totalCount]).toEqual([[1], false, 4]);
    expect(() => log.list({ first: 1, after: 'bogus' })).toThrow(RangeError);
    expect(decodeConflictCursor(conflictCursor(99))).toBe(99);
  });

  test('keyCandidates reads JSON arrays in the log encoding and single-column text keys', () => {
    expect(keyCandidates('t')).toEqual(['["t"]']);
    expect(keyCandidates('12').sort()).toEqual(['["12"]', '[12]', '[{"$int":"12"}]']);
    expect(keyCandidates('[{"$blob":"AAE="}]')).toEqual(['[{"$blob":"AAE="}]']);
  });

  test('invalid inputs are refused before anything is written', () => {
    const log = new ConflictLog(replica());
    expect(() => log.record([input(), input({ kind: 'nope' as never })], T0)).toThrow(TypeError);
    expect(() => log.record([input({ uploaderSiteId: 'xyz' })], T0)).toThrow(TypeError);
    expect(log.list({ first: 10 }).totalCount).toBe(0);
  });
});

describe('retention', () => {
  test('keeps the newest maxEntries and drops entries older than maxAgeMs, applied in record; configurable', () => {
    const log = new ConflictLog(replica(), { maxEntries: 3, maxAgeMs: 3_600_000 });
    log.record([input(), input(), input()], T0);
    log.record([input(), input()], T0 + 1000);
    expect(log.list({ first: 10 }).nodes.map((n) => n.id)).toEqual([5, 4, 3]);
    log.record([input()], T0 + 3_600_000 + 1001); // everything recorded before is now over an hour old
    expect(log.list({ first: 10 }).nodes.map((n) => n.id)).toEqual([6]);
    expect(() => new ConflictLog(replica(), { maxEntries: 0 })).toThrow(RangeError);
    const e = replica();
    expect([conflictLogOf(e).maxEntries, conflictLogOf(e).maxAgeMs]).toEqual([DEFAULT_CONFLICT_MAX_ENTRIES, DEFAULT_CONFLICT_MAX_AGE_MS]);
    expect(conflictLogOf(e, { maxEntries: 7 }).maxEntries).toBe(7);
    expect(conflictLogOf(e)).toBe(conflictLogOf(e, {}));
  });
});

test('dropRejected removes the reports of rows the merge then rejected', () => {
  const keep = input({ pk: new Uint8Array([1]) });
  const gone = input({ pk: new Uint8Array([2]) });
  expect(dropRejected([keep, gone], [{ table: 'TODOS', pk: new Uint8Array([2]) }])).toEqual([keep]);
  expect(dropRejected([keep], [])).toEqual([keep]);
});

describe('restoreLosingWrite', () => {
  test('a lost cell comes back as a new local write of the server (col_version + 1, the server’s site) that wins on every device', () => {
    const { srv, a, b, reports } = concurrentEdit();
    a.applyChanges(changesFor(srv, a));
    b.applyChanges(changesFor(srv, b));
    expect(a.driver.prepare("SELECT title FROM todos WHERE id = 't'").get()).toEqual({ title: 'from b' });
    const [entry] = conflictLogOf(srv).record(reports.map((c) => conflictInput(c, hex(b.siteId), null)), T0);
    const before = srv.dbVersion();
    const r = restoreLosingWrite(srv, entry?.id ?? 0, T0 + 5);
    expect([r.action, r.dbVersion > before, r.entry.restoredAt?.getTime()]).toEqual(['update', true, T0 + 5]);
    expect(conflictLogOf(srv).get(entry?.id ?? 0)?.restoredAt?.getTime()).toBe(T0 + 5);
    const change = [...srv.changes({ after: { dbVersion: before, seq: Number.MAX_SAFE_INTEGER } })].find((c) => c.col === 'title');
    expect([change?.val, change?.colVersion, hex(change?.siteId ?? new Uint8Array())]).toEqual(['from a', 3, hex(srv.siteId)]);
    for (const d of [a, b]) {
      d.applyChanges(changesFor(srv, d));
      expect(d.driver.prepare("SELECT title FROM todos WHERE id = 't'").get()).toEqual({ title: 'from a' });
    }
  });

  test('delete_over_update re-inserts the deleted row; update_lost_to_delete re-inserts the row with the lost cell and the tombstone’s last values', () => {
    const srv = replica();
    srv.setKeepTombstoneValues(true);
    const a = replica();
    const b = replica();
    a.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('x', 'one', 1, 'nx'), ('y', 'two', 0, 'ny')");
    srv.applyChanges(changesFor(a, srv));
    b.applyChanges(changesFor(srv, b));
    a.driver.exec("DELETE FROM todos WHERE id = 'x'");
    b.driver.exec("UPDATE todos SET title = 'edited' WHERE id = 'x'");
    b.driver.exec("UPDATE todos SET title = 'kept?' WHERE id = 'y'");
    a.driver.exec("DELETE FROM todos WHERE id = 'y'");
    const reports: MergeConflict[] = [];
    const mine = (d: SyncEngine, key: string) => [...d.changes({ localOnly: true })].filter((c) => Buffer.from(c.pk).toString().endsWith(key));
    srv.applyChanges(mine(a, 'x'), { onConflict: (c) => reports.push(c) });
    srv.applyChanges([...b.changes({ localOnly: true })], { onConflict: (c) => reports.push(c) });
    srv.applyChanges(mine(a, 'y'), { onConflict: (c) => reports.push(c) });
    expect(reports.map((c) => c.kind)).toEqual(['update_lost_to_delete', 'delete_over_update']);
    const entries = conflictLogOf(srv).record(reports.map((c) => conflictInput(c, hex(a.siteId), null)), T0);
    expect(srv.driver.prepare('SELECT count(*) AS n FROM todos').get()).toEqual({ n: 0n });
    expect(restoreLosingWrite(srv, entries[0]?.id ?? 0, T0).action).toBe('insert');
    expect(restoreLosingWrite(srv, entries[1]?.id ?? 0, T0).action).toBe('insert');
    const rows = [
      { id: 'x', title: 'edited', done: 1n, note: 'nx' },
      { id: 'y', title: 'kept?', done: 0n, note: 'ny' },
    ];
    expect(srv.driver.prepare('SELECT * FROM todos ORDER BY id').all()).toEqual(rows);
    for (const d of [a, b]) {
      d.applyChanges(changesFor(srv, d));
      expect(d.driver.prepare('SELECT * FROM todos ORDER BY id').all()).toEqual(rows);
    }
  });

  test('unknown ids and tables that are no longer synced are refused with a code', () => {
    const srv = replica();
    expect(() => restoreLosingWrite(srv, 1, T0)).toThrow(expect.objectContaining({ code: 'not_found' }) as Error);
    const [e] = conflictLogOf(srv).record([input({ table: 'gone' })], T0);
    expect(() => restoreLosingWrite(srv, e?.id ?? 0, T0)).toThrow(ConflictRestoreError);
    expect(conflictLogOf(srv).get(e?.id ?? 0)?.restoredAt).toBeNull();
  });
});
