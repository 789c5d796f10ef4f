/**
 * The per-change merge decision of docs/PROTOCOL.md §P5 ("merge"), once, pure: causal length
 * first, then the cell's col_version, then the value order (`compareForMerge`). Both storage
 * engines (SQLite `engine/apply.ts`, PostgreSQL `adapters/postgres/merge.ts`) call these
 * functions and only execute the action they return with their own storage.
 *
 * The decision is staged because each later stage needs a read the earlier ones may spare:
 *   1. {@link decideRow}: the incoming change against the row's causal length.
 *   2. {@link decideCell}: on `compareCell`, its col_version against the stored cell's.
 *   3. {@link decideValue}: on a tie (or an older edit whose loss is reported), its value against
 *      the stored one.
 */
import type { CrdtAlgorithm, SqlValue } from '../types.ts';
import { compareForMerge } from './compare.ts';

/**
 * What a change does to its row, judged against the row's causal length here.
 * - `olderLife`: the change belongs to a life of the row that already ended here; nothing changes.
 * - `ignore`: nothing to do (that delete or resurrection is already known, a grow-only delete,
 *   a grow-only sentinel of a row that exists).
 * - `delete`: the row is deleted (base row, cells); the sentinel takes the change's causal length.
 * - `resurrect`: a sentinel of a newer life: the row comes back with its key alone, cells reset;
 *   an applied change.
 * - `create`: a grow-only sentinel of a row unknown here: the row is resurrected as above, but
 *   the sentinel is not counted as an applied change.
 * - `resurrectThenWin`: a value of a newer life: the row is resurrected, then the cell wins.
 * - `win`: the cell wins outright (a first life, a grow-only value).
 * - `compareCell`: same life: the cell's col_version decides ({@link decideCell}).
 */
export type RowAction = 'olderLife' | 'ignore' | 'delete' | 'resurrect' | 'create' | 'resurrectThenWin' | 'win' | 'compareCell';

/**
 * The first stage: `cl` is the incoming causal length, `isSentinel` whether the change is the
 * row's sentinel (`__[RIP]__`), `localCl` the row's causal length here (0 when unknown).
 */
export function decideRow(algorithm: CrdtAlgorithm, cl: number, isSentinel: boolean, localCl: number): RowAction {
  if (cl < localCl) return 'olderLife';
  const deletes = cl % 2 === 0;
  if (algorithm === 'gos') {
    // Grow-only: values are upserted without version checks; deletes never travel.
    if (deletes) return 'ignore';
    if (!isSentinel) return 'win';
    return localCl === 0 ? 'create' : 'ignore';
  }
  if (deletes) return cl === localCl ? 'ignore' : 'delete';
  if (isSentinel) return cl === localCl ? 'ignore' : 'resurrect';
  const newerLife = cl > localCl;
  const known = localCl > 0;
  if (newerLife && (known || cl > 1)) return 'resurrectThenWin';
  if (newerLife || !known) return 'win';
  return 'compareCell';
}

/**
 * The second stage (same life): the incoming col_version against the stored cell's, or
 * `undefined` when the cell has no clock here. `win`: higher (or no clock); `older`: lower —
 * the edit lost, nothing changes; `tie`: equal, the value order decides ({@link decideValue}).
 */
export type CellAction = 'win' | 'older' | 'tie';

export function decideCell(colVersion: number, localColVersion: number | undefined): CellAction {
  if (localColVersion === undefined || colVersion > localColVersion) return 'win';
  if (colVersion < localColVersion) return 'older';
  return 'tie';
}

/** Marks a stored value that cannot be read because the base row does not exist. */
export const NO_ROW: unique symbol = Symbol('offsync.noRow');

/**
 * The third stage: the incoming value against the stored one, after `decideCell` said `tie` (or
 * `older`, for an engine that reports the lost edit). `fill`: the base row is missing, the
 * incoming value is written and nothing was lost; `win`: the incoming value beats the stored
 * one on a tie and is written (the stored one lost: a `tiebreak` conflict); `lose`: the stored
 * value stays and the two differ (a conflict: `tiebreak` on a tie, `superseded` on an older
 * edit); `equal`: the stored value stays and nothing was lost.
 */
export type ValueAction = 'fill' | 'win' | 'lose' | 'equal';

export function decideValue(cell: 'tie' | 'older', incoming: SqlValue, current: SqlValue | typeof NO_ROW): ValueAction {
  if (current === NO_ROW) return 'fill';
  const order = compareForMerge(incoming, current);
  if (cell === 'older') return order !== 0 ? 'lose' : 'equal';
  return order > 0 ? 'win' : order < 0 ? 'lose' : 'equal';
}
