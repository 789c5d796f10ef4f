/**
 * `offsync_tombstones`: what a central database remembers about deleted rows, so that row-level
 * security can judge a deletion like a row (docs/ARCHITECTURE.md "RLS model"):
 *
 * - `vals`: the row's last values (all columns, `[typeof, value]` pairs in table order, BLOBs in
 *   hex, INTEGERs as text so 64-bit values survive JSON) — written by the delete triggers when
 *   the database keeps tombstone values, and by the merge when a peer's delete wins;
 * - `audience`: the principal a compensating removal is meant for (a row the server never let
 *   exist: only the device that tried to create it may learn its key).
 */
import type { SqlValue } from '../types.ts';
import { fromHex, toHex } from '../clock/site-id.ts';
import type { TableContext } from './table-context.ts';

export type RowObject = Record<string, SqlValue>;

export interface Tombstone {
  /** Last values of the deleted row, when known. */
  lastValues: RowObject | undefined;
  /** Principal a compensating removal is addressed to, or null. */
  audience: string | null;
}

/** Encodes a whole row (object keyed by column name) in the `vals` format, in schema order. */
export function encodeTombstoneValues(ctx: TableContext, row: Readonly<RowObject>): string {
  const out: unknown[] = [];
  for (const c of ctx.schema.columns) {
    const v = row[c.name] ?? null;
    if (v === null) out.push('null', null);
    else if (typeof v === 'bigint') out.push('integer', v.toString());
    else if (typeof v === 'number') out.push(Number.isInteger(v) ? 'integer' : 'real', Number.isInteger(v) ? String(v) : v);
    else if (typeof v === 'string') out.push('text', v);
    else out.push('blob', toHex(v));
  }
  return JSON.stringify(out);
}

/** Decodes `vals`; undefined when absent or unreadable (treated as "last values unknown"). */
export function decodeTombstoneValues(ctx: TableContext, vals: unknown): RowObject | undefined {
  if (typeof vals !== 'string') return undefined;
  let arr: unknown;
  try {
    arr = JSON.parse(vals);
  } catch {
    return undefined;
  }
  if (!Array.isArray(arr)) return undefined;
  const row: RowObject = {};
  ctx.schema.columns.forEach((c, i) => {
    const kind = arr[2 * i];
    const raw = arr[2 * i + 1];
    let v: SqlValue = null;
    if (kind === 'integer' && (typeof raw === 'string' || typeof raw === 'number')) {
      const b = BigInt(raw);
      v = b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    } else if (kind === 'real' && typeof raw === 'number') v = raw;
    else if (kind === 'text' && typeof raw === 'string') v = raw;
    else if (kind === 'blob' && typeof raw === 'string') v = fromHex(raw);
    row[c.name] = v;
  });
  return row;
}

export function readTombstone(ctx: TableContext, pk: Uint8Array): Tombstone | undefined {
  const r = ctx.stmts.tombstoneGet.getRaw(ctx.name, pk);
  if (r === undefined) return undefined;
  return { lastValues: decodeTombstoneValues(ctx, r[0]), audience: typeof r[1] === 'string' ? r[1] : null };
}
