/**
 * The change feed: every clock entry after a cursor, in (db_version, seq) order, each with the
 * cell's current value and the row's current causal length (protocol reference C.7).
 */
import { decodePk } from '../codec/pk.ts';
import type { Change, SqlValue } from '../types.ts';
import { RIP_SENTINEL } from '../types.ts';
import type { TableContext } from './table-context.ts';
import { rowValueIndex } from './table-context.ts';

export interface Cursor {
  dbVersion: number;
  seq: number;
}

export interface FeedOptions {
  /** Exclusive lower bound; default: everything. */
  after?: Cursor;
  /** Leave out changes that originated at this site (a peer never receives its own changes). */
  excludeSiteRef?: number;
  /** Only this database's own changes (site 0): what a device uploads. */
  localOnly?: boolean;
  /** Only these tables (default: all synced tables). */
  tables?: readonly string[];
  /**
   * Row visibility (RLS SELECT): return false to drop every change of that row.
   * `row` is undefined when the row does not exist (deleted).
   */
  rowFilter?: (table: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>> | undefined) => boolean;
}

export interface FeedHost {
  tableContexts(): TableContext[];
  siteIdOf(ref: number): Uint8Array;
}

interface Stream {
  ctx: TableContext;
  it: Iterator<SqlValue[]>;
  head: SqlValue[] | undefined;
  valueIndex: Map<number, number>;
  lastPk: Uint8Array | undefined;
  lastRow: SqlValue[] | undefined;
  lastPkValues: SqlValue[];
  lastVisible: boolean;
}

function bytesEqual(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function before(a: SqlValue[], b: SqlValue[]): boolean {
  const va = a[3] as bigint;
  const vb = b[3] as bigint;
  return va < vb || (va === vb && (a[4] as bigint) < (b[4] as bigint));
}

/** Lazily yields changes; the caller must not write to the database while iterating. */
export function* changeFeed(host: FeedHost, opts: FeedOptions = {}): Generator<Change> {
  const after = opts.after ?? { dbVersion: 0, seq: -1 };
  const wanted = opts.tables === undefined ? undefined : new Set(opts.tables.map((t) => t.toLowerCase()));
  const streams: Stream[] = [];
  for (const ctx of host.tableContexts()) {
    if (wanted !== undefined && !wanted.has(ctx.name.toLowerCase())) continue;
    const args: SqlValue[] = [BigInt(after.dbVersion), BigInt(after.seq)];
    const stmt = opts.localOnly
      ? ctx.stmts.feedLocal
      : opts.excludeSiteRef !== undefined
        ? (args.push(BigInt(opts.excludeSiteRef)), ctx.stmts.feedExcludingSite)
        : ctx.stmts.feed;
    const it = stmt.iterateRaw(...args);
    const first = it.next();
    if (first.done) continue;
    streams.push({ ctx, it, head: first.value, valueIndex: rowValueIndex(ctx), lastPk: undefined, lastRow: undefined, lastPkValues: [], lastVisible: true });
  }
  const siteCache = new Map<number, Uint8Array>();
  while (streams.length > 0) {
    let best = 0;
    for (let i = 1; i < streams.length; i++) {
      const h = streams[i]?.head;
      const b = streams[best]?.head;
      if (h !== undefined && b !== undefined && before(h, b)) best = i;
    }
    const st = streams[best] as Stream;
    const r = st.head as SqlValue[];
    const next = st.it.next();
    if (next.done) streams.splice(best, 1);
    else st.head = next.value;

    const pk = r[0] as Uint8Array;
    const colId = Number(r[1]);
    if (!bytesEqual(st.lastPk, pk)) {
      st.lastPk = pk;
      st.lastPkValues = decodePk(pk);
      st.lastRow = st.ctx.stmts.selectRow.getRaw(...st.lastPkValues);
      if (opts.rowFilter !== undefined) {
        let rowObj: Record<string, SqlValue> | undefined;
        if (st.lastRow !== undefined) {
          rowObj = {};
          st.ctx.schema.pkColumns.forEach((c, i) => ((rowObj as Record<string, SqlValue>)[c.name] = st.lastPkValues[i] ?? null));
          st.ctx.rowColumns.forEach((c, i) => ((rowObj as Record<string, SqlValue>)[c] = st.lastRow?.[i] ?? null));
        }
        st.lastVisible = opts.rowFilter(st.ctx.name, st.lastPkValues, rowObj);
      }
    }
    if (!st.lastVisible) continue;
    let col = RIP_SENTINEL;
    let val: SqlValue = null;
    if (colId !== 0) {
      const name = st.ctx.colNames.get(colId);
      if (name === undefined) continue; // a column dropped by ALTER whose clocks were not yet cleaned
      col = name;
      const idx = st.valueIndex.get(colId);
      val = idx === undefined || st.lastRow === undefined ? null : (st.lastRow[idx] ?? null);
    }
    const ref = Number(r[5]);
    let siteId = siteCache.get(ref);
    if (siteId === undefined) {
      siteId = host.siteIdOf(ref);
      siteCache.set(ref, siteId);
    }
    yield {
      tbl: st.ctx.name,
      pk,
      col,
      val,
      colVersion: Number(r[2]),
      dbVersion: Number(r[3]),
      siteId,
      cl: Number(r[6]),
      seq: Number(r[4]),
    };
  }
}
