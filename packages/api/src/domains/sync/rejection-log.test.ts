import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { afterEach, describe, expect, test } from 'vitest';
import { decodeSqlValue, encodeSqlValue } from './central-log.ts';
import { DEFAULT_REJECTION_MAX_AGE_MS, decodeRejectionCursor, RejectionLog, rejectionCursor, rejectionLogOf, toRejectionJson } from './rejection-log.ts';
import type { RejectionInput } from './rejection-log.ts';

const engines: { close(): void }[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function central() {
  const engine = openSyncDatabase(':memory:');
  engines.push(engine);
  engine.driver.exec("CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL DEFAULT '', data BLOB)");
  engine.init('items');
  return engine;
}

const SITE_A = 'a'.repeat(32);
const SITE_B = '0123456789abcdef0123456789abcdef';
const T0 = Date.parse('2025-06-15T12:00:00Z');

function input(over: Partial<RejectionInput> = {}): RejectionInput {
  return {
    siteId: SITE_A,
    userId: 'u1',
    credentialKind: 'accessToken',
    credentialId: 'accessToken:t1',
    table: 'items',
    pk: new Uint8Array([1, 0x0b, 0x61, 0x31]),
    pkValues: ['a1'],
    operation: 'INSERT',
    code: 'rls_denied',
    policy: "NEW.owner = auth_userid()",
    reason: 'INSERT denied by policy',
    values: { owner: 'u2' },
    ...over,
  };
}

describe('RejectionLog', () => {
  test('record returns the entries with ids and time; list reads them back newest first, across a reopen of the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'offsync-rejections-'));
    try {
      const path = join(dir, 'central.sqlite');
      const engine = openSyncDatabase(path);
      const log = new RejectionLog(engine);
      const recorded = engine.driver.transaction(() => log.record([input(), input({ operation: 'UPDATE', values: { owner: 'u3' } })], T0));
      expect(recorded.map((e) => e.id)).toEqual([1, 2]);
      expect(recorded[0]?.at).toEqual(new Date(T0));
      expect(recorded[1]).toMatchObject({ operation: 'UPDATE', values: { owner: 'u3' }, userId: 'u1', credentialId: 'accessToken:t1' });
      engine.close();

      const reopened = openSyncDatabase(path);
      engines.push(reopened);
      const page = new RejectionLog(reopened).list({ first: 10 });
      expect(page.totalCount).toBe(2);
      expect(page.hasNextPage).toBe(false);
      expect(page.nodes.map((n) => n.id)).toEqual([2, 1]);
      expect(page.nodes[1]).toEqual(recorded[0]);
      expect(page.endCursor).toBe(rejectionCursor(1));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an entry recorded in a transaction that rolls back is not in the log (exactly as durable as the merge)', () => {
    const engine = central();
    const log = new RejectionLog(engine);
    expect(() => engine.driver.transaction(() => {
      log.record([input()], T0);
      throw new Error('merge failed');
    })).toThrow('merge failed');
    expect(log.list({ first: 10 }).totalCount).toBe(0);
    // The table is created once; a second instance over the same file sees the same log.
    log.record([input()], T0);
    expect(new RejectionLog(engine).list({ first: 10 }).totalCount).toBe(1);
  });

  test('BLOB, bigint, non-finite REAL, null and text values round-trip exactly (stored and as JSON)', () => {
    const engine = central();
    const log = new RejectionLog(engine);
    const blob = new Uint8Array(randomBytes(300));
    const values = { data: blob, n: 2n ** 63n - 1n, neg: -(2n ** 63n), r: 1.5, inf: Number.POSITIVE_INFINITY, ninf: Number.NEGATIVE_INFINITY, nul: null, s: '{"$blob":"x"}', empty: new Uint8Array(0) };
    const pk = new Uint8Array([2, 0x09, 0x05, 0x0b, 0x01, 0x78]);
    log.record([input({ pk, pkValues: [5n, new Uint8Array([0x78]), 'x', 0.25], values })], T0);
    const [got] = log.list({ first: 1 }).nodes;
    expect(got?.values).toEqual(values);
    expect(got?.values['data']).toBeInstanceOf(Uint8Array);
    expect(typeof got?.values['n']).toBe('bigint');
    expect(got?.pkValues).toEqual([5n, new Uint8Array([0x78]), 'x', 0.25]);
    expect(got?.pk).toEqual(pk);
    // NaN cannot be stored in SQLite but can arrive in a decoded payload value.
    expect(Number.isNaN(decodeSqlValue(encodeSqlValue(Number.NaN)))).toBe(true);

    const json = toRejectionJson(got!);
    expect(json.pk).toBe(Buffer.from(pk).toString('base64'));
    expect(json.values['data']).toEqual({ $blob: Buffer.from(blob).toString('base64') });
    expect(json.values['n']).toEqual({ $int: '9223372036854775807' });
    expect(json.values['inf']).toEqual({ $real: 'Infinity' });
    expect(json.values['s']).toBe('{"$blob":"x"}');
    const decoded = Object.fromEntries(Object.entries(JSON.parse(JSON.stringify(json.values)) as Record<string, unknown>).map(([k, v]) => [k, decodeSqlValue(v)]));
    expect(decoded).toEqual(values);
  });

  test('paging: first/after walk every entry once, newest first; entries recorded meanwhile do not shift later pages', () => {
    const engine = central();
    const log = new RejectionLog(engine);
    log.record(Array.from({ length: 7 }, (_, i) => input({ reason: `r${i}` })), T0);
    const p1 = log.list({ first: 3 });
    expect(p1.nodes.map((n) => n.reason)).toEqual(['r6', 'r5', 'r4']);
    expect(p1.hasNextPage).toBe(true);
    log.record([input({ reason: 'late' })], T0 + 1);
    const p2 = log.list({ first: 3, after: p1.endCursor! });
    expect(p2.nodes.map((n) => n.reason)).toEqual(['r3', 'r2', 'r1']);
    expect(p2.totalCount).toBe(8);
    const p3 = log.list({ first: 3, after: p2.endCursor! });
    expect(p3.nodes.map((n) => n.reason)).toEqual(['r0']);
    expect(p3.hasNextPage).toBe(false);
    const counted = log.list({ first: 0 });
    expect(counted).toMatchObject({ nodes: [], totalCount: 8, endCursor: null, hasNextPage: true });
    expect(() => log.list({ first: 3, after: 'bm9wZQ' })).toThrow(RangeError);
    expect(() => log.list({ first: -1 })).toThrow(RangeError);
    expect(decodeRejectionCursor(rejectionCursor(123))).toBe(123);
    expect(log.list({ first: 100_000 }).nodes).toHaveLength(8);
  });

  test('filters by table, site, user, operation, code and since, combined, with totalCount of the filter', () => {
    const engine = central();
    engine.driver.exec('CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT)');
    const log = new RejectionLog(engine);
    log.record([
      input({ table: 'items', siteId: SITE_A, userId: 'u1', operation: 'INSERT', code: 'rls_denied' }),
      input({ table: 'notes', siteId: SITE_B, userId: 'u2', operation: 'UPDATE', code: 'constraint_violation', policy: null }),
      input({ table: 'items', siteId: SITE_B, userId: null, credentialKind: 'apiKey', credentialId: null, operation: 'DELETE', code: 'pk_type_mismatch' }),
    ], T0);
    log.record([input({ table: 'items', siteId: SITE_A, userId: 'u1', operation: 'UPDATE', reason: 'later' })], T0 + 60_000);
    const ids = (filter: Parameters<RejectionLog['list']>[0]['filter']) => {
      const p = log.list({ first: 10, filter });
      expect(p.totalCount).toBe(p.nodes.length);
      return p.nodes.map((n) => n.id);
    };
    expect(ids({ table: 'items' })).toEqual([4, 3, 1]);
    expect(ids({ siteId: SITE_B.toUpperCase() })).toEqual([3, 2]);
    expect(ids({ userId: 'u1' })).toEqual([4, 1]);
    expect(ids({ operation: 'UPDATE' })).toEqual([4, 2]);
    expect(ids({ code: 'pk_type_mismatch' })).toEqual([3]);
    expect(ids({ since: new Date(T0 + 1) })).toEqual([4]);
    expect(ids({ table: 'items', siteId: SITE_A, operation: 'INSERT' })).toEqual([1]);
    expect(ids({ table: 'nope' })).toEqual([]);
    const filtered = log.list({ first: 1, filter: { table: 'items' } });
    expect(filtered.hasNextPage).toBe(true);
    expect(log.list({ first: 5, after: filtered.endCursor!, filter: { table: 'items' } }).nodes.map((n) => n.id)).toEqual([3, 1]);
  });

  test('retention keeps the newest maxEntries and drops entries older than maxAgeMs, applied in record', () => {
    const engine = central();
    const log = new RejectionLog(engine, { maxEntries: 5, maxAgeMs: 3_600_000 });
    log.record(Array.from({ length: 4 }, (_, i) => input({ reason: `a${i}` })), T0);
    log.record(Array.from({ length: 3 }, (_, i) => input({ reason: `b${i}` })), T0 + 1000);
    const kept = log.list({ first: 50 });
    expect(kept.totalCount).toBe(5);
    expect(kept.nodes.map((n) => n.reason)).toEqual(['b2', 'b1', 'b0', 'a3', 'a2']);
    // An hour later the first batch has aged out; ids are never reused after deletions.
    const later = log.record([input({ reason: 'c0' })], T0 + 3_600_000 + 500);
    expect(later[0]?.id).toBe(8);
    expect(log.list({ first: 50 }).nodes.map((n) => n.reason)).toEqual(['c0', 'b2', 'b1', 'b0']);
    const raw = engine.driver.prepare('SELECT count(*) AS n FROM offsync_rejections').get();
    expect(Number(raw?.['n'])).toBe(4);
    expect(() => new RejectionLog(engine, { maxEntries: 0 })).toThrow(RangeError);
  });

  test('record validates its input and writes nothing of a batch with a bad row', () => {
    const engine = central();
    const log = new RejectionLog(engine);
    expect(() => log.record([input(), input({ siteId: 'XYZ' })], T0)).toThrow(TypeError);
    expect(() => log.record([input({ operation: 'UPSERT' as never })], T0)).toThrow(TypeError);
    expect(log.list({ first: 10 }).totalCount).toBe(0);
    expect(log.record([], T0)).toEqual([]);
  });

  test('the log table is invisible to the sync engine (not a user table, not in the change feed, no schema-hash change)', () => {
    const engine = central();
    const hashes = [engine.schemaHash(), engine.ddlSchemaHash()];
    rejectionLogOf(engine).record([input()], T0);
    expect(rejectionLogOf(engine)).toBe(rejectionLogOf(engine));
    // Options given later reconfigure the shared instance (a reader may have created it first).
    expect(rejectionLogOf(engine, { maxEntries: 7 }).maxEntries).toBe(7);
    expect(rejectionLogOf(engine).maxAgeMs).toBe(DEFAULT_REJECTION_MAX_AGE_MS);
    expect([...engine.changes()]).toHaveLength(0);
    expect(engine.listTables().map((t) => t.name)).not.toContain('offsync_rejections');
    expect([engine.schemaHash(), engine.ddlSchemaHash()]).toEqual(hashes);
  });
});
