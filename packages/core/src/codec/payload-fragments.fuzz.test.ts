/**
 * Fuzz of fragmented values (payload v3, docs/PROTOCOL.md "Fragmented values"): random changes
 * cut into random-sized parts, spread over random payloads in random order, reassemble to exactly
 * the original changes; one mutation of one part (dropped, repeated, a name field, a value byte,
 * a row field, a garbage name) is either harmless (the same changes come back) or refused with a
 * stable CoreError code — never a crash, never another value — and a refused batch applied to a
 * real database leaves it byte-for-byte unchanged.
 *
 * CI: ~2,150 inputs, fixed seeds; FC_NUM_RUNS / FC_SEED as in payload.fuzz.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CoreError, CoreErrorCode } from '../errors.ts';
import { dumpDatabase } from '../testing/db-dump.ts';
import { openReplica } from '../testing/replica.ts';
import type { Change } from '../types.ts';
import { decodePayload, encodePayload, FRAGMENT_COL_PREFIX, fragmentAssemblerFor, fragmentChange } from './payload.ts';
import type { PayloadDecodeLimits } from './payload.ts';
import { encodePk } from './pk.ts';
import { changeArb, fcSeed, numRuns, sameValue, toHex } from './test-arbitraries.ts';

const STABLE = new Set<string>(Object.values(CoreErrorCode));
const SITES = [new Uint8Array(16).fill(7), new Uint8Array(16).fill(9)];
const LIMITS: PayloadDecodeLimits = { maxValueSize: 1 << 16, maxExpandedSize: 1 << 20 };

const streamIdArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''));

/** A few changes, some of them cut into parts; the rows spread over payloads (in random order). */
const batchArb = fc
  .record({
    changes: fc.array(
      fc.record({
        change: changeArb(SITES).filter((c) => c.col !== '' && !c.col.startsWith(FRAGMENT_COL_PREFIX)),
        cut: fc.option(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 80 })), { freq: 3 }),
        stream: streamIdArb,
      }),
      { minLength: 1, maxLength: 6 },
    ),
    cuts: fc.array(fc.nat(), { maxLength: 8 }),
    order: fc.array(fc.nat(), { maxLength: 40 }),
  })
  .filter((b) => new Set(b.changes.map((c) => c.stream)).size === b.changes.length);

type Batch = typeof batchArb extends fc.Arbitrary<infer T> ? T : never;

function rowsOf(b: Batch): Change[] {
  return b.changes.flatMap(({ change, cut, stream }) => (cut === null ? [change] : fragmentChange(change, cut, stream)));
}

/** Cuts `rows` into payloads at `cuts` and shuffles the payloads by `order`. */
function payloadsOf(rows: Change[], cuts: number[], order: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (rows.length + 1)))].sort((x, y) => x - y);
  const groups: Change[][] = [];
  let from = 0;
  for (const c of [...at, rows.length]) {
    if (c > from) groups.push(rows.slice(from, c));
    from = Math.max(from, c);
  }
  for (let i = 0; i < order.length && groups.length > 1; i++) {
    const j = order[i]! % groups.length;
    const k = (i * 7 + 3) % groups.length;
    [groups[j], groups[k]] = [groups[k]!, groups[j]!];
  }
  return groups.map((g) => encodePayload(g, { schemaHash: 5n })!);
}

function decodeBatch(payloads: readonly Uint8Array[]): Change[] {
  const asm = fragmentAssemblerFor(LIMITS);
  const out = payloads.flatMap((p) => decodePayload(p, LIMITS, asm).changes);
  asm.finish();
  return out;
}

const key = (c: Change, withCol = true): string =>
  `${c.tbl}|${toHex(c.pk)}|${withCol ? c.col : ''}|${c.colVersion}|${c.dbVersion}|${toHex(c.siteId)}|${c.cl}|${c.seq}`;

/** Same changes (any order), values compared exactly. */
function expectSameChanges(got: Change[], want: Change[], withCol = true): void {
  const sort = (l: Change[]): Change[] => [...l].sort((a, b) => (key(a, withCol) < key(b, withCol) ? -1 : 1));
  const g = sort(got);
  const w = sort(want);
  expect(g.map((c) => key(c, withCol))).toEqual(w.map((c) => key(c, withCol)));
  g.forEach((c, i) => expect(sameValue(c.val, w[i]!.val), `value of ${key(c)}`).toBe(true));
}

function stable(e: unknown): void {
  if (!(e instanceof CoreError) || !STABLE.has(e.code)) throw e;
}

const mutationArb = fc.record({
  kind: fc.constantFrom('drop', 'repeat', 'index', 'count', 'total', 'hash', 'stream', 'col', 'byte', 'type', 'seq', 'garbage'),
  which: fc.nat(),
  n: fc.nat(),
  text: fc.string({ maxLength: 60 }),
});
type Mutation = typeof mutationArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * Applies one mutation to one part of a value cut in several parts (null when there is none; a
 * one-part value is an ordinary row in another form, its fields can change like any row's).
 */
function mutate(rows: Change[], m: Mutation): Change[] | null {
  const frags = rows.map((r, i) => [r, i] as const).filter(([r]) => r.col.startsWith(FRAGMENT_COL_PREFIX) && r.col.split(':')[4] !== '1');
  if (frags.length === 0) return null;
  const [row, at] = frags[m.which % frags.length]!;
  const out = [...rows];
  const fields = row.col.slice(FRAGMENT_COL_PREFIX.length).split(':');
  const rename = (i: number, v: string): Change => ({ ...row, col: FRAGMENT_COL_PREFIX + [...fields.slice(0, i), v, ...fields.slice(i + 1)].join(':') });
  switch (m.kind) {
    case 'drop': out.splice(at, 1); break;
    case 'repeat': out.splice(at, 0, row); break;
    case 'index': out[at] = rename(2, String(m.n % 5)); break;
    case 'count': out[at] = rename(3, String(m.n % 5)); break;
    case 'total': out[at] = rename(4, String(m.n % 400)); break;
    case 'hash': out[at] = rename(1, (m.n % 2 ** 31).toString(16).padStart(16, '0')); break;
    case 'stream': out[at] = rename(0, (m.n % 2 ** 31).toString(16).padStart(32, '0')); break;
    case 'col': out[at] = rename(5, m.text); break;
    case 'byte': {
      const v = (row.val as Uint8Array).slice();
      if (v.length === 0) return null;
      v[m.n % v.length] = (v[m.n % v.length]! + 1 + (m.n % 255)) & 255;
      out[at] = { ...row, val: v };
      break;
    }
    case 'type': out[at] = { ...row, val: m.text }; break;
    case 'seq': out[at] = { ...row, seq: row.seq + 1 + (m.n % 3) }; break;
    default: out[at] = { ...row, col: FRAGMENT_COL_PREFIX + m.text };
  }
  return out;
}

describe('fragmented values fuzz', () => {
  test('random cuts over random payloads in random order reassemble to exactly the original changes', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const payloads = payloadsOf(rowsOf(b), b.cuts, b.order);
        expectSameChanges(decodeBatch(payloads), b.changes.map((c) => c.change));
      }),
      { seed: fcSeed(301), numRuns: numRuns(800, 0.4) },
    );
  });

  test('one mutated part: the same changes come back, or a stable refusal', () => {
    let refused = 0;
    let mutated = 0;
    fc.assert(
      fc.property(batchArb, mutationArb, (b, m) => {
        const rows = mutate(rowsOf(b), m);
        if (rows === null) return;
        mutated++;
        let got: Change[];
        try {
          got = decodeBatch(payloadsOf(rows, b.cuts, b.order));
        } catch (e) {
          stable(e);
          refused++;
          return;
        }
        expectSameChanges(got, b.changes.map((c) => c.change));
      }),
      { seed: fcSeed(302), numRuns: numRuns(1200, 0.4) },
    );
    // Almost every mutation is caught (a few are no-ops, e.g. an index replaced by itself).
    expect(mutated).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(mutated * 0.85);
  });

  test('a refused fragmented batch leaves the database unchanged', () => {
    let refused = 0;
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.constantFrom('a', 'b', 'c'), title: fc.string({ minLength: 20, maxLength: 300 }), cut: fc.integer({ min: 8, max: 120 }) }), { minLength: 1, maxLength: 4 }),
        mutationArb,
        (writes, m) => {
          const db = openReplica();
          db.driver.exec("INSERT INTO todos (id, title) VALUES ('a', 'before')");
          const rows = writes.flatMap((w, i) => {
            const base = { tbl: 'todos', pk: encodePk([w.id]), colVersion: 5, dbVersion: 9 + i, siteId: SITES[1]!, cl: 1, seq: 0 };
            return [...fragmentChange({ ...base, col: 'title', val: w.title }, w.cut), { ...base, col: 'done', val: 1n, seq: 1 }];
          });
          const bad = mutate(rows, m);
          if (bad === null) return;
          const before = dumpDatabase(db);
          try {
            db.applyPayloads(payloadsOf(bad, [3, 7], []), { limits: LIMITS, strictSchemaHash: false });
          } catch (e) {
            stable(e);
            refused++;
            expect(dumpDatabase(db)).toEqual(before);
          }
          db.close();
        },
      ),
      { seed: fcSeed(303), numRuns: numRuns(150, 0.2) },
    );
    expect(refused).toBeGreaterThan(75);
  });
});
