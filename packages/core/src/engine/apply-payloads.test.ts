/** `SyncEngine.applyPayloads`: several payloads (the chunks of one G3 batch) merged as one atomic batch. */
import { describe, expect, test } from 'vitest';
import type { RowWrite } from './apply.ts';
import { changesFor, openReplica, tableRows } from '../testing/replica.ts';

describe('applyPayloads', () => {
  test('a row split across two payloads is merged as one row write with all its columns', () => {
    const a = openReplica();
    const b = openReplica();
    a.driver.exec("INSERT INTO todos (id, title, done, note) VALUES ('x', 'whole', 1, 'n'), ('y', 'second', 0, NULL)");
    const changes = changesFor(a, b);
    // Cut inside row 'x': its first column in chunk 0, the rest (and row 'y') in chunk 1.
    const p0 = a.encodeChanges(changes.slice(0, 1))!;
    const p1 = a.encodeChanges(changes.slice(1))!;
    const writes: RowWrite[] = [];
    const r = b.applyPayloads([p0, p1], { authorize: (w) => void writes.push(w) });
    expect(r.received).toBe(changes.length);
    expect(r.schemaHash).toBe(a.schemaHash());
    expect(tableRows(b, 'todos')).toEqual(tableRows(a, 'todos'));
    // One write per row, carrying every column: a policy never sees a partial row.
    expect(writes.map((w) => [w.pk, Object.keys(w.values).sort()])).toEqual([
      [['x'], ['done', 'note', 'title']],
      [['y'], ['done', 'note', 'title']],
    ]);
    // Applying the chunks alone would have judged 'x' twice, once with a single column.
    const c = openReplica();
    const alone: RowWrite[] = [];
    c.applyPayload(p0, { authorize: (w) => void alone.push(w) });
    expect(Object.keys(alone[0]!.values)).toHaveLength(1);
  });

  test('all or nothing: a bad last payload leaves nothing of the first ones', () => {
    const a = openReplica();
    const b = openReplica();
    const other = openReplica("CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', extra TEXT)");
    a.driver.exec("INSERT INTO todos (id, title) VALUES ('x', 'one')");
    other.driver.exec("INSERT INTO todos (id, title) VALUES ('z', 'other schema')");
    const good = a.encodeChanges(changesFor(a, b))!;
    const unknownHash = other.encodeChanges(changesFor(other, b))!;
    expect(() => b.applyPayloads([good, unknownHash])).toThrowError(expect.objectContaining({ code: 'CORE_SCHEMA_HASH_UNKNOWN' }));
    expect(tableRows(b, 'todos')).toEqual([]);
    expect(b.dbVersion()).toBe(0);
    const truncated = good.slice(0, good.length - 3);
    expect(() => b.applyPayloads([good, truncated])).toThrowError(expect.objectContaining({ code: expect.stringMatching(/^CORE_PAYLOAD_/) }));
    expect(tableRows(b, 'todos')).toEqual([]);
    expect(b.applyPayloads([good]).applied).toBe(3);
    expect(tableRows(b, 'todos')).toEqual(tableRows(a, 'todos'));
  });
});
