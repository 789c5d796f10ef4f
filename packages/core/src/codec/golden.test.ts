/**
 * Golden tests against the real extension (cloudsync 0.9.99 in @sqliteai/sqlite-wasm, test use
 * only): its payloads decode to exactly the rows of `cloudsync_changes`, it applies our payloads,
 * and its `cloudsync_pk_encode` agrees with ours byte for byte.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Change, SqlValue } from '../types.ts';
import { decodePayload, decodePayloadHeader, encodePayload } from './payload.ts';
import { encodePk } from './pk.ts';
import { INT64_MAX, INT64_MIN, numRuns, pkValueArb, sameValue, toHex } from './test-arbitraries.ts';
import { openTestDb, type TestDb } from './test-sqlite.ts';

const TODOS =
  "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0, score REAL, data BLOB)";
const CHANGES = 'SELECT tbl, pk, col_name, col_value, col_version, db_version, site_id, cl, seq FROM cloudsync_changes';
const ENCODE = 'SELECT cloudsync_payload_encode(tbl, pk, col_name, col_value, col_version, db_version, site_id, cl, seq) FROM cloudsync_changes';

let a: TestDb;
let b: TestDb;

function rowToChange(r: SqlValue[]): Change {
  const num = (v: SqlValue): number => Number(v as bigint);
  return {
    tbl: r[0] as string,
    pk: r[1] as Uint8Array,
    col: r[2] as string,
    val: r[3] as SqlValue,
    colVersion: num(r[4]!),
    dbVersion: num(r[5]!),
    siteId: r[6] as Uint8Array,
    cl: num(r[7]!),
    seq: num(r[8]!),
  };
}

function expectSame(got: Change[], want: Change[]): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    expect([g.tbl, g.col, toHex(g.pk), toHex(g.siteId)]).toEqual([w.tbl, w.col, toHex(w.pk), toHex(w.siteId)]);
    expect(sameValue(g.val, w.val), `row ${i} value ${String(g.val)} vs ${String(w.val)}`).toBe(true);
    expect([g.colVersion, g.dbVersion, g.cl, g.seq]).toEqual([w.colVersion, w.dbVersion, w.cl, w.seq]);
  });
}

function tableRows(db: TestDb): string {
  const rows = db.all('SELECT id, title, done, score, data, typeof(done), typeof(score), typeof(data) FROM todos ORDER BY id');
  return JSON.stringify(rows, (_k, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? `x'${toHex(v)}'` : typeof v === 'number' ? `${Object.is(v, -0) ? '-0' : v}r` : v,
  );
}

beforeAll(async () => {
  a = await openTestDb();
  b = await openTestDb();
  for (const db of [a, b]) {
    db.exec(TODOS);
    db.one("SELECT cloudsync_init('todos')");
  }
  const ins = 'INSERT INTO todos (id, title, done, score, data) VALUES (?, ?, ?, ?, ?)';
  const big = new Uint8Array(300).map((_, i) => (i * 7) & 255);
  a.all(ins, ['a1', 'héllo ☃ 😀', -5n, -1.5, Uint8Array.of(0, 255)]);
  a.all(ins, ['a2', '', INT64_MIN, 1e300, INT64_MAX]);
  a.all(ins, ['a3', 'x'.repeat(400), 0n, null, 'text in blob col']);
  a.all(ins, ['a4', 'ok', 255n, 0.1, -3.25]);
  a.all(ins, ['a5', 'del', 1n, -Infinity, big]);
  a.all(ins, ['ü-ключ', 'unicode key', 65536n, Infinity, null]);
  a.exec("UPDATE todos SET title = 'changed', done = -1 WHERE id = 'a1'");
  a.exec("DELETE FROM todos WHERE id = 'a5'");
  a.exec("DELETE FROM todos WHERE id = 'a4'");
  a.all(ins, ['a4', 'resurrected', 2n, 2.5, new Uint8Array()]);
});

afterAll(() => {
  a?.close();
  b?.close();
});

test("the extension's payload decodes to exactly the rows of cloudsync_changes", () => {
  const payload = a.one(ENCODE) as Uint8Array;
  const { header, changes } = decodePayload(payload);
  expect(header.version).toBe(2);
  expect(header.libVersion).toEqual([0, 9, 99]);
  expect(header.expandedSize).toBeGreaterThan(0); // the extension compressed it
  const want = a.all(CHANGES).map(rowToChange);
  expect(want.length).toBeGreaterThan(20);
  expect(want.some((c) => c.col === '__[RIP]__')).toBe(true);
  expectSame(changes, want);
});

test('a single-row extension payload (uncompressed) decodes too', () => {
  const payload = a.one(`${ENCODE} WHERE col_name = 'title' AND pk = x'010B026131'`) as Uint8Array;
  expect(decodePayloadHeader(payload).expandedSize).toBe(0);
  expectSame(decodePayload(payload).changes, a.all(`${CHANGES} WHERE col_name = 'title' AND pk = x'010B026131'`).map(rowToChange));
});

test('the extension applies our payload and ends with an identical table', () => {
  const changes = a.all(CHANGES).map(rowToChange);
  const ours = encodePayload(changes, { schemaHash: 0n })!;
  expect(decodePayloadHeader(ours).expandedSize).toBeGreaterThan(0);
  b.one('SELECT cloudsync_payload_decode(?)', [ours]);
  expect(tableRows(b)).toBe(tableRows(a));
  expect(tableRows(a)).toContain('resurrected');
  expect(tableRows(a)).not.toContain('"a5"');
  // and re-encoding b's changes through us round-trips the same cells
  const fromB = decodePayload(b.one(ENCODE) as Uint8Array).changes;
  expect(fromB.map((c) => `${c.col}:${toHex(c.pk)}`).sort()).toEqual(changes.map((c) => `${c.col}:${toHex(c.pk)}`).sort());
});

test('the extension applies an uncompressed payload of ours', async () => {
  const c = await openTestDb();
  c.exec(TODOS);
  c.one("SELECT cloudsync_init('todos')");
  const row = a.all(`${CHANGES} WHERE col_name = 'done' AND pk = x'010B026132'`).map(rowToChange);
  const ours = encodePayload(row, { schemaHash: 0n })!;
  expect(decodePayloadHeader(ours).expandedSize).toBe(0);
  c.one('SELECT cloudsync_payload_decode(?)', [ours]);
  expect(c.all("SELECT id, done FROM todos")).toEqual([['a2', INT64_MIN]]);
  c.close();
});

test('cloudsync_pk_encode agrees with encodePk', () => {
  const fixed: SqlValue[][] = [
    ['a1'],
    [1n, -1n, 1.5, Uint8Array.of(0), 's', 127n, 128n, 200n, 255n, 256n, 32767n, 32768n, INT64_MIN],
    [INT64_MAX, -INT64_MAX, 0n, -0, Infinity, -Infinity, '', new Uint8Array(), 'é'.repeat(300)],
  ];
  const check = (values: SqlValue[]): void => {
    const sql = `SELECT cloudsync_pk_encode(${values.map(() => '?').join(',')})`;
    const theirs = a.one(sql, values) as Uint8Array;
    expect(toHex(encodePk(values))).toBe(toHex(theirs));
  };
  fixed.forEach(check);
  fc.assert(
    fc.property(fc.array(pkValueArb.filter((v) => !Number.isNaN(v)), { minLength: 1, maxLength: 5 }), (values) => check(values)),
    { seed: 5, numRuns: numRuns(300) },
  );
});
