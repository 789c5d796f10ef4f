/**
 * Block-LWW text columns on the engine (engine/blocks.ts, docs/PROTOCOL.md "Block columns"):
 * block cells as 1.1.4 sends them (`body` U+001F position id; NULL = removed line) merged per
 * block, the text materialised in the central table, the feed sending block cells and never the
 * whole column, and a row judge refusing a block edit alone.
 */
import { describe, expect, test } from 'vitest';
import { encodePk } from '@offsync/core';
import type { Change, SqlValue } from '@offsync/core';
import { openReplica } from '@offsync/core/testing';

const DDL = "CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '')";
const A = new Uint8Array(16).fill(1);
const B = new Uint8Array(16).fill(2);
const PK = encodePk(['n1']);
const US = '\u001f';

function cell(col: string, val: SqlValue, colVersion: number, dbVersion: number, seq: number, siteId = A): Change {
  return { tbl: 'notes', pk: PK, col, val, colVersion, dbVersion, siteId, cl: 1, seq };
}
const block = (pos: string, val: SqlValue, cv: number, dbv: number, seq: number, site = A): Change => cell(`body${US}${pos}`, val, cv, dbv, seq, site);

function server() {
  const e = openReplica(DDL, ['notes']);
  e.setBlockColumn('notes', 'body');
  return e;
}
const body = (e: ReturnType<typeof server>): unknown => e.driver.prepare("SELECT body FROM notes WHERE id = 'n1'").getRaw()?.[0];

describe('block columns', () => {
  test('an unmarked column refuses block cells; a marked one takes them and materialises the text', () => {
    const plain = openReplica(DDL, ['notes']);
    const insert = [cell('title', 't', 1, 1, 0), block('a0', 'line one', 1, 1, 1), block('a1', 'line two', 1, 1, 2), block('a2', 'line three', 1, 1, 3)];
    expect(() => plain.applyChanges(insert)).toThrowError(expect.objectContaining({ code: 'CORE_UNKNOWN_COLUMN' }));
    expect(() => plain.setBlockColumn('notes', 'nope')).toThrowError(expect.objectContaining({ code: 'CORE_UNKNOWN_COLUMN' }));
    const e = server();
    expect(e.blockColumns('notes')).toEqual(['body']);
    const r = e.applyChanges(insert);
    expect([r.received, r.applied]).toEqual([4, 4]);
    expect(body(e)).toBe('line one\nline two\nline three');
  });

  test('an edited line (new block between its neighbours, old block removed) and LWW per block, in position-id order', () => {
    const e = server();
    e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'l1', 1, 1, 1), block('a1', '', 1, 1, 2), block('a2', 'l3', 1, 1, 3)]);
    expect(body(e)).toBe('l1\n\nl3');
    // Device A edits line 1 (new block 'Zz' before 'a0', 'a0' removed); device B edits line 3 ('a1V' between 'a1' and 'a2').
    e.applyChanges([block('Zz', 'l1 by A', 1, 2, 0), block('a0', null, 2, 2, 1)]);
    e.applyChanges([block('a1V', 'l3 by B', 1, 2, 0, B), block('a2', null, 2, 2, 1, B)]);
    expect(body(e)).toBe('l1 by A\n\nl3 by B');
    // An older version of a removed block does not bring it back; a tie goes to the greater value.
    expect(e.applyChanges([block('a0', 'l1', 1, 1, 1, B)]).applied).toBe(0);
    e.applyChanges([block('a1V', 'l3 by Bz', 1, 3, 0, A)]);
    expect(body(e)).toBe('l1 by A\n\nl3 by Bz');
    expect(e.applyChanges([block('a1V', 'l3 by Ba', 1, 3, 0, A)]).applied).toBe(0);
    expect(body(e)).toBe('l1 by A\n\nl3 by Bz');
  });

  test('the feed sends block cells (removed ones as NULL), never the whole column, and not back to their site', () => {
    const e = server();
    e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'x', 1, 1, 1), block('a1', 'y', 1, 1, 2)]);
    e.applyChanges([block('a1', null, 2, 2, 0, B)]);
    const feed = [...e.changes()].map((c) => [c.col.replace(US, '|'), c.val, c.colVersion]);
    expect(feed).toEqual([
      ['title', 't', 1],
      ['body|a0', 'x', 1],
      ['body|a1', null, 2],
    ]);
    expect([...e.changes({ excludeSiteId: B })].map((c) => c.col.replace(US, '|'))).toEqual(['title', 'body|a0']);
    // After a cursor: only what is newer.
    const all = [...e.changes()];
    const last = all[1]!;
    expect([...e.changes({ after: { dbVersion: last.dbVersion, seq: last.seq } })].map((c) => c.col.replace(US, '|'))).toEqual(['body|a1']);
  });

  test('a row judge sees the whole new text and refuses a block edit alone', () => {
    const e = server();
    e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'keep', 1, 1, 1)]);
    const seen: unknown[] = [];
    const r = e.applyChanges([block('a1', 'forbidden', 1, 2, 0, B)], {
      judge: (t) => {
        seen.push([t.operation, t.old?.['body'], t.new?.['body']]);
        return String(t.new?.['body']).includes('forbidden') ? { code: 'rls_denied', reason: 'no' } : undefined;
      },
    });
    expect(seen).toEqual([['UPDATE', 'keep', 'keep\nforbidden']]);
    expect(r.rejected.map((x) => [x.table, x.code, x.values['body']])).toEqual([['notes', 'rls_denied', 'keep\nforbidden']]);
    expect(body(e)).toBe('keep');
    expect([...e.changes()].map((c) => c.col.replace(US, '|'))).toEqual(['title', 'body|a0']);
  });
});

describe('block columns across lives of a row', () => {
  test('a re-inserted row (higher causal length) replaces the old life\'s blocks; an older life\'s block loses', () => {
    const e = server();
    e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'old1', 1, 1, 1), block('a1', 'old2', 1, 1, 2)]);
    e.applyChanges([block('Zz', 'old1 x', 1, 2, 0), block('a0', null, 2, 2, 1)]);
    expect(body(e)).toBe('old1 x\nold2');
    // Deleted (cl 2), then inserted again (cl 3): the new life restarts at a0 with col_version 1.
    e.applyChanges([{ ...cell('__[RIP]__', null, 2, 3, 0), cl: 2 }]);
    e.applyChanges([{ ...cell('__[RIP]__', null, 3, 4, 0), cl: 3 }, { ...cell('title', 't', 1, 4, 1), cl: 3 }, { ...block('a0', 'new1', 1, 4, 2), cl: 3 }, { ...block('a1', 'new2', 1, 4, 3), cl: 3 }]);
    expect(body(e)).toBe('new1\nnew2');
    expect(e.applyChanges([block('a2', 'late edit of the old life', 1, 5, 0, B)]).applied).toBe(0);
    expect(body(e)).toBe('new1\nnew2');
    expect([...e.changes()].filter((c) => c.col.includes(US)).map((c) => [c.col.replace(US, '|'), c.val, c.cl])).toEqual([
      ['body|a0', 'new1', 3],
      ['body|a1', 'new2', 3],
    ]);
  });
});

describe('server-side writes of a block column', () => {
  test('an UPDATE by another program becomes block cells: kept lines keep their blocks, removed ones turn NULL, new ones get ids between their neighbours', () => {
    const e = server();
    e.applyChanges([cell('title', 't', 1, 1, 0), block('a0', 'one', 1, 1, 1), block('a1', 'two', 1, 1, 2), block('a2', 'three', 1, 1, 3)]);
    const cursor = [...e.changes()].at(-1)!;
    e.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('zero\none\nthree\nfour');
    const out = [...e.changes({ after: { dbVersion: cursor.dbVersion, seq: cursor.seq } })].map((c) => [c.col.replace(US, '|'), c.val, c.colVersion]);
    expect(out).toEqual([
      ['body|a1', null, 2],
      ['body|Zz', 'zero', 1],
      ['body|a3', 'four', 1],
    ]);
    // Not again on the next read; a second edit between kept lines takes an id between them.
    expect([...e.changes({ after: { dbVersion: cursor.dbVersion, seq: cursor.seq } })]).toHaveLength(3);
    e.driver.prepare("UPDATE notes SET body = ? WHERE id = 'n1'").run('zero\none\none and a half\nthree\nfour');
    const again = [...e.changes()].filter((c) => c.col.includes(US) && c.val !== null).map((c) => c.col.slice(5));
    expect(again).toContain('a1V'); // between a0 and a2, never the removed a1
    // The blocks a device would apply give back the central text.
    const lines = [...e.changes()].filter((c) => c.col.includes(US) && c.val !== null).sort((x, y) => (x.col < y.col ? -1 : 1)).map((c) => c.val);
    expect(lines.join('\n')).toBe(body(e));
  });

  test('a row inserted by another program gets a block per line', () => {
    const e = server();
    e.driver.prepare("INSERT INTO notes (id, title, body) VALUES ('n1', 't', ?)").run('a\n\nb');
    expect([...e.changes()].map((c) => [c.col.replace(US, '|'), c.val])).toEqual([
      ['title', 't'],
      ['body|a0', 'a'],
      ['body|a1', ''],
      ['body|a2', 'b'],
    ]);
  });
});
