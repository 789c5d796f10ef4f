import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CrdtAlgorithm, SqlValue } from '../types.ts';
import { compareForMerge } from './compare.ts';
import { decideCell, decideRow, decideValue, NO_ROW } from './decide.ts';
import type { RowAction } from './decide.ts';

/**
 * The row stage as both engines wrote it inline before the extraction (the branches of
 * `PgMerge.merge` / `Merge.merge`, in their order), naming what each branch did.
 */
function inlineRowStage(algorithm: CrdtAlgorithm, cl: number, isSentinel: boolean, localCl: number): RowAction {
  if (cl < localCl) return 'olderLife';
  if (algorithm === 'gos') {
    if (cl % 2 === 0) return 'ignore';
    if (!isSentinel) return 'win';
    if (localCl === 0) return 'create';
    return 'ignore';
  }
  if (cl % 2 === 0) {
    if (cl === localCl) return 'ignore';
    return 'delete';
  }
  if (isSentinel) {
    if (cl === localCl) return 'ignore';
    return 'resurrect';
  }
  const needsResurrect = cl > localCl;
  const known = localCl > 0;
  const resurrects = needsResurrect && (known || cl > 1);
  if (needsResurrect || !known) return resurrects ? 'resurrectThenWin' : 'win';
  return resurrects ? 'resurrectThenWin' : 'compareCell';
}

const algorithms: CrdtAlgorithm[] = ['cls', 'gos'];
const cls = [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8];
const localCls = [0, 1, 2, 3, 4, 5, 6, 7, 8];

describe('decideRow', () => {
  it('takes the inline decision of both engines for every (algorithm, cl, sentinel, local cl) in 0..8', () => {
    let n = 0;
    for (const a of algorithms) {
      for (const cl of cls) {
        for (const s of [false, true]) {
          for (const local of localCls) {
            expect(decideRow(a, cl, s, local), `${a} cl=${cl} sentinel=${s} local=${local}`).toBe(inlineRowStage(a, cl, s, local));
            n++;
          }
        }
      }
    }
    expect(n).toBe(2 * cls.length * 2 * localCls.length);
  });

  it('agrees with the inline decision over large causal lengths', () => {
    fc.assert(
      fc.property(fc.constantFrom<CrdtAlgorithm>('cls', 'gos'), fc.integer({ min: 0, max: 2 ** 40 }), fc.boolean(), fc.integer({ min: 0, max: 2 ** 40 }), (a, cl, s, local) => {
        expect(decideRow(a, cl, s, local)).toBe(inlineRowStage(a, cl, s, local));
      }),
      { numRuns: 2000 },
    );
  });

  it('follows §P5: causal length first', () => {
    // An older life loses, whatever it carries.
    expect(decideRow('cls', 1, false, 2)).toBe('olderLife');
    expect(decideRow('cls', 3, true, 4)).toBe('olderLife');
    expect(decideRow('gos', 1, false, 3)).toBe('olderLife');
    // A delete of a live (or unknown) row deletes it; the same delete twice does nothing.
    expect(decideRow('cls', 2, true, 1)).toBe('delete');
    expect(decideRow('cls', 2, true, 0)).toBe('delete');
    expect(decideRow('cls', 4, true, 2)).toBe('delete');
    expect(decideRow('cls', 2, true, 2)).toBe('ignore');
    // A sentinel of a newer life resurrects; the known one does nothing.
    expect(decideRow('cls', 3, true, 2)).toBe('resurrect');
    expect(decideRow('cls', 3, true, 3)).toBe('ignore');
    // A value: first life of an unknown row wins; a newer life resurrects first; same life compares.
    expect(decideRow('cls', 1, false, 0)).toBe('win');
    expect(decideRow('cls', 3, false, 0)).toBe('resurrectThenWin');
    expect(decideRow('cls', 3, false, 2)).toBe('resurrectThenWin');
    expect(decideRow('cls', 5, false, 3)).toBe('resurrectThenWin');
    expect(decideRow('cls', 3, false, 3)).toBe('compareCell');
    // Grow-only: deletes never apply, values always win, a sentinel only creates an unknown row.
    expect(decideRow('gos', 2, true, 1)).toBe('ignore');
    expect(decideRow('gos', 1, false, 1)).toBe('win');
    expect(decideRow('gos', 1, true, 0)).toBe('create');
    expect(decideRow('gos', 1, true, 1)).toBe('ignore');
  });
});

describe('decideCell', () => {
  it('wins above the stored col_version or without one, loses below, ties at equal', () => {
    for (let v = 0; v <= 6; v++) {
      expect(decideCell(v, undefined)).toBe('win');
      for (let local = 0; local <= 6; local++) {
        expect(decideCell(v, local), `${v} vs ${local}`).toBe(v > local ? 'win' : v < local ? 'older' : 'tie');
      }
    }
  });
});

const sqlValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.double(),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.uint8Array({ maxLength: 6 }),
  fc.constantFrom<SqlValue>(0n, 1n, 0, 1, '', 'a', new Uint8Array(0)),
);

describe('decideValue', () => {
  it('a missing base row is filled, tie or older', () => {
    fc.assert(
      fc.property(sqlValue, (v) => {
        expect(decideValue('tie', v, NO_ROW)).toBe('fill');
        expect(decideValue('older', v, NO_ROW)).toBe('fill');
      }),
    );
  });

  it('on a tie the value order decides; an older edit never wins', () => {
    fc.assert(
      fc.property(sqlValue, sqlValue, (a, b) => {
        const order = compareForMerge(a, b);
        expect(decideValue('tie', a, b)).toBe(order > 0 ? 'win' : order < 0 ? 'lose' : 'equal');
        expect(decideValue('older', a, b)).toBe(order !== 0 ? 'lose' : 'equal');
      }),
      { numRuns: 2000 },
    );
  });

  it('is the same winner whichever side arrives first (a tie is symmetric)', () => {
    fc.assert(
      fc.property(sqlValue, sqlValue, (a, b) => {
        const ab = decideValue('tie', a, b);
        const ba = decideValue('tie', b, a);
        if (ab === 'equal') expect(ba).toBe('equal');
        else expect([ab, ba].sort()).toEqual(['lose', 'win']);
      }),
      { numRuns: 2000 },
    );
  });

  it('uses the storage-class order of §P5 on a tie', () => {
    expect(decideValue('tie', 1n, 1.5)).toBe('win'); // INTEGER beats REAL
    expect(decideValue('tie', 'b', 'a')).toBe('win');
    expect(decideValue('tie', null, 'a')).toBe('lose'); // NULL loses to everything
    expect(decideValue('tie', 'a', 'a')).toBe('equal');
    expect(decideValue('older', 'z', 'a')).toBe('lose');
    expect(decideValue('older', 'a', 'a')).toBe('equal');
  });
});
