/**
 * Slow-start pages (docs/PROTOCOL.md "Packages"): the page budget sequence, the page cutter under
 * a growing budget (exact cursors, no page between two changes of one (db_version, seq)), and the
 * budgets G3 continuation cursors carry from one `/check` to the next.
 */
import { describe, expect, test } from 'vitest';
import type { Change } from '@offsync/core';
import { compareCursor, pageBudget, scanFeedPages } from '../download-pages.ts';
import type { Cursor } from '../download-pages.ts';
import { G3Cursors } from './g3-cursors.ts';

describe('pageBudget', () => {
  test('grows from the first page by the growth factor up to pageBytes', () => {
    const opts = { pageBytes: 5_000_000, firstPageBytes: 128 * 1024, pageGrowth: 4 };
    expect([0, 1, 2, 3, 4, 9].map((i) => pageBudget(opts, i))).toEqual([131_072, 524_288, 2_097_152, 5_000_000, 5_000_000, 5_000_000]);
    expect([0, 1, 2].map((i) => pageBudget({ ...opts, pageGrowth: 2 }, i))).toEqual([131_072, 262_144, 524_288]);
  });

  test('without slow start, or with a first page of pageBytes or more, every page is pageBytes', () => {
    expect(pageBudget({ pageBytes: 4000 }, 0)).toBe(4000);
    expect(pageBudget({ pageBytes: 4000, firstPageBytes: 9000 }, 0)).toBe(4000);
    // Growth below 1 never shrinks pages.
    expect(pageBudget({ pageBytes: 4000, firstPageBytes: 1000, pageGrowth: 0.5 }, 3)).toBe(1000);
  });
});

/** A fake encoder: every change weighs 100 bytes; the payload lists the changes' indexes. */
function fakeEncoder(): { add(ch: Change): void; readonly byteLength: number; finish(): Uint8Array | null } {
  let items: number[] = [];
  return {
    add(ch) {
      items.push(ch.colVersion);
    },
    get byteLength() {
      return items.length * 100;
    },
    finish() {
      const out = new Uint8Array(new Uint32Array(items).buffer);
      items = [];
      return out;
    },
  };
}

/** `n` changes; of every 7, the first three share one (db_version, seq). */
function changes(n: number): Change[] {
  const out: Change[] = [];
  let v = 1;
  let seq = 0;
  for (let i = 0; i < n; i++) {
    if (i % 7 !== 1 && i % 7 !== 2) {
      seq++;
      if (seq > 5) {
        v++;
        seq = 1;
      }
    }
    out.push({ tbl: 't', pk: new Uint8Array([i & 255]), col: 'c', val: i, colVersion: i, dbVersion: v, siteId: new Uint8Array(16), cl: 1, seq });
  }
  return out;
}

async function* feedOf(list: Change[]): AsyncIterable<Change> {
  for (const ch of list) yield ch;
}

describe('page cutter under slow start', () => {
  test('pages grow by budget, stay contiguous and exact, never split one (db_version, seq)', async () => {
    const list = changes(2000);
    const after: Cursor = { dbVersion: 0, seq: 0 };
    const r = await scanFeedPages(feedOf(list), 99, after, { pageBytes: 20_000, firstPageBytes: 1000, pageGrowth: 4, maxPages: 1000, schemaHash: 0n, payloads: true }, fakeEncoder);
    expect(r.complete).toBe(true);
    const budgets = [1000, 4000, 16_000, 20_000];
    const got: number[] = [];
    let from = after;
    for (const [i, p] of r.pages.entries()) {
      expect(p.from).toEqual(from);
      const idx = [...new Uint32Array((p.payload ?? new Uint8Array()).slice().buffer)];
      expect(idx).toHaveLength(p.rows);
      got.push(...idx);
      const budget = budgets[Math.min(i, 3)] ?? 0;
      // Full at its budget, past it by at most the rest of one key's changes (here 3 × 100 bytes), except the last page.
      if (i < r.pages.length - 1) {
        expect(p.bytes).toBeGreaterThanOrEqual(budget);
        expect(p.bytes).toBeLessThanOrEqual(budget + 200);
        const next = list[idx[idx.length - 1]! + 1]!;
        expect(compareCursor({ dbVersion: next.dbVersion, seq: next.seq }, p.to)).toBeGreaterThan(0);
      }
      const last = list[idx[idx.length - 1]!]!;
      expect(p.to).toEqual({ dbVersion: last.dbVersion, seq: last.seq });
      from = p.to;
    }
    expect(got).toEqual(list.map((_, i) => i));
    expect(r.pages.length).toBeGreaterThan(10);
  });

  test('maxPages counts small pages too; the rest stays for the next scan', async () => {
    const list = changes(300);
    const r = await scanFeedPages(feedOf(list), 9, { dbVersion: 0, seq: 0 }, { pageBytes: 20_000, firstPageBytes: 1000, pageGrowth: 4, maxPages: 2, schemaHash: 0n }, fakeEncoder);
    expect(r.complete).toBe(false);
    expect(r.pages).toHaveLength(2);
    expect(r.pages[0]!.bytes).toBeLessThan(1300);
    expect(r.pages[1]!.bytes).toBeLessThan(4300);
  });
});

describe('G3 cursors carry the next page budget', () => {
  const base = { dbVersion: 0, seq: Number.MAX_SAFE_INTEGER };

  test('a cursor resumes at its position with the budget of the page after it', async () => {
    const c = new G3Cursors();
    const ids = await c.issue('db', 'site', base, [{ dbVersion: 3, seq: 2 }, { dbVersion: 9, seq: 1 }], [4000, 16_000]);
    expect(await c.resolve('db', 'site', base, ids[0]!)).toEqual({ after: { dbVersion: 3, seq: 2 }, pageBytes: 4000, continued: true });
    expect(await c.resolve('db', 'site', base, ids[1]!)).toEqual({ after: { dbVersion: 9, seq: 1 }, pageBytes: 16_000, continued: true });
  });

  test('a record without budgets (full pages, an older node) resumes with no budget; unknown cursors restart', async () => {
    const c = new G3Cursors();
    const [id] = await c.issue('db', 'site', base, [{ dbVersion: 3, seq: 2 }]);
    expect(await c.resolve('db', 'site', base, id!)).toEqual({ after: { dbVersion: 3, seq: 2 }, pageBytes: undefined, continued: true });
    expect(await c.resolve('db', 'site', base, 0)).toEqual({ after: base, continued: false });
    expect(await c.resolve('db', 'other', base, id!)).toEqual({ after: base, continued: false });
    expect(await c.resolve('db', 'site', { dbVersion: 1, seq: 0 }, id!)).toEqual({ after: { dbVersion: 1, seq: 0 }, continued: false });
  });
});
