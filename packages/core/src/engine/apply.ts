/**
 * The merge of incoming changes into a database (protocol reference C.4, C.5, C.7).
 *
 * A batch is applied inside one transaction by the caller: either every change is merged or,
 * when anything throws (unknown table/column, a constraint, a refused RLS check), nothing is.
 * Base-table writes happen with the tracking triggers suppressed (`offsync_clock.applying`).
 * Winning values of consecutive changes to one row are buffered and written as one upsert
 * (C.4 step 5), so a row-level policy sees the whole new row.
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import { compareForMerge } from '../merge/compare.ts';
import type { Change, SqlValue } from '../types.ts';
import { RIP_SENTINEL } from '../types.ts';
import { decodePk } from '../codec/pk.ts';
import type { TableContext } from './table-context.ts';

/** A base-table write the merge is about to make; `authorize` may veto it by throwing. */
export interface RowWrite {
  table: string;
  kind: 'upsert' | 'delete';
  /** Primary-key values in declaration order. */
  pk: readonly SqlValue[];
  /** For upserts: the value columns being written (a pk-only resurrection writes none). */
  values: Readonly<Record<string, SqlValue>>;
}

export interface ApplyOptions {
  /** Called before every base-table write; throw (e.g. CoreError RLS_DENIED) to refuse the whole batch. */
  authorize?: (write: RowWrite) => void;
}

export interface ApplyResult {
  /** Changes received. */
  received: number;
  /** Changes that won and were written. */
  applied: number;
  /** Tables that received at least one winning change. */
  tables: string[];
  /** Last change of the batch in the producer's version space, or undefined for an empty batch. */
  last: { dbVersion: number; seq: number } | undefined;
  /** The local db_version after the batch. */
  dbVersion: number;
}

export interface MergeHost {
  table(name: string): TableContext | undefined;
  siteRef(siteId: Uint8Array): number;
  clock(): number;
  setClock(v: number): void;
}

type RowRecord = [cl: number, icv: number | null, ver: bigint, seq: bigint, site: bigint];

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Merges `changes` in order. Must run inside a transaction with triggers suppressed. */
export function mergeChanges(host: MergeHost, changes: Iterable<Change>, opts: ApplyOptions): ApplyResult {
  const tables = new Set<string>();
  let received = 0;
  let applied = 0;
  let last: { dbVersion: number; seq: number } | undefined;
  let clock = host.clock();
  let groupVersion = 0;
  let groupKey = '';
  let siteBytes: Uint8Array | undefined;
  let siteRef = 0;

  // State of the row being merged (consecutive changes usually share it).
  let ctx: TableContext | undefined;
  let pk: Uint8Array | undefined;
  let pkValues: SqlValue[] = [];
  let rec: RowRecord | undefined;
  let cl = 0;
  const pending = new Map<string, SqlValue>();

  const flush = (): void => {
    if (ctx === undefined || pending.size === 0) return;
    const cols = [...pending.keys()];
    const vals = [...pending.values()];
    opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: pkValues, values: Object.fromEntries(pending) });
    ctx.upsertColumns(cols).run(...pkValues, ...vals);
    pending.clear();
  };

  for (const ch of changes) {
    received++;
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
    const t = host.table(ch.tbl);
    if (t === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${ch.tbl} is not enabled for sync on this database`, { details: { table: ch.tbl } });
    }
    const isSentinel = ch.col === RIP_SENTINEL;
    const colId = isSentinel ? 0 : t.colIds.get(ch.col);
    if (colId === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${ch.col} does not exist in table ${t.name}`, { details: { table: t.name, column: ch.col } });
    }
    if (siteBytes !== ch.siteId) {
      siteBytes = ch.siteId;
      siteRef = host.siteRef(ch.siteId);
    }
    const key = `${siteRef}:${ch.dbVersion}`;
    if (key !== groupKey) {
      groupKey = key;
      groupVersion = 0;
    }
    if (t !== ctx || !sameBytes(pk, ch.pk)) {
      flush();
      ctx = t;
      pk = ch.pk;
      pkValues = decodePk(ch.pk);
      if (pkValues.length !== t.schema.pkColumns.length) {
        throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${t.name} has ${t.schema.pkColumns.length} column(s), change carries ${pkValues.length}`);
      }
      const r = t.stmts.rowRecord.getRaw(ch.pk);
      rec = r === undefined ? undefined : [Number(r[0]), r[2] === null ? null : Number(r[2]), r[3] as bigint, r[4] as bigint, r[5] as bigint];
      cl = rec !== undefined ? rec[0] : t.stmts.anyCell.getRaw(ch.pk) !== undefined ? 1 : 0;
    }
    const c = ctx as TableContext;
    const s = c.stmts;
    const rowPk = pk as Uint8Array;
    const version = (): bigint => {
      if (groupVersion === 0) {
        groupVersion = Math.max(clock + 1, ch.dbVersion);
        clock = groupVersion;
      }
      return BigInt(groupVersion);
    };
    const materialize = (): void => {
      if (rec === undefined || rec[1] === null) return;
      s.materialize.run(rowPk, BigInt(rec[1]), rec[2], rec[3], rec[4]);
      s.clearImplicit.run(rowPk);
      rec[1] = null;
    };
    const setSentinel = (): void => {
      materialize();
      const v = version();
      s.setSentinel.run(rowPk, BigInt(ch.cl), v, BigInt(ch.seq), BigInt(siteRef));
      rec = [ch.cl, null, v, BigInt(ch.seq), BigInt(siteRef)];
      cl = ch.cl;
    };
    const resurrect = (): void => {
      flush();
      opts.authorize?.({ table: c.name, kind: 'upsert', pk: pkValues, values: {} });
      s.insertPkOnly.run(...pkValues);
      materialize();
      s.resetCells.run(rowPk);
      setSentinel();
    };
    const win = (): void => {
      pending.set(ch.col, ch.val);
      s.setCell.run(rowPk, BigInt(colId), BigInt(ch.colVersion), version(), BigInt(ch.seq), BigInt(siteRef));
      if (cl === 0) cl = 1;
      applied++;
      tables.add(c.name);
    };

    if (ch.cl < cl) continue; // an older life of the row
    if (c.algorithm === 'gos') {
      // Grow-only: values are upserted without version checks; deletes never travel.
      if (ch.cl % 2 === 0) continue;
      if (isSentinel) {
        if (cl === 0) resurrect();
      } else win();
      continue;
    }
    if (ch.cl % 2 === 0) {
      if (ch.cl === cl) continue;
      flush();
      opts.authorize?.({ table: c.name, kind: 'delete', pk: pkValues, values: {} });
      s.deleteRow.run(...pkValues);
      if (rec !== undefined) rec[1] = null; // cells are dropped below, no need to materialize
      setSentinel();
      s.dropCells.run(rowPk);
      applied++;
      tables.add(c.name);
      continue;
    }
    if (isSentinel) {
      if (ch.cl === cl) continue;
      resurrect();
      applied++;
      tables.add(c.name);
      continue;
    }
    const needsResurrect = ch.cl > cl;
    const known = cl > 0;
    if (needsResurrect && (known || ch.cl > 1)) resurrect();
    if (needsResurrect || !known) {
      win();
      continue;
    }
    const explicit = s.cell.getRaw(rowPk, BigInt(colId));
    const local = explicit !== undefined ? Number(explicit[0]) : rec !== undefined && rec[1] !== null && cl % 2 === 1 ? rec[1] : undefined;
    if (local === undefined || ch.colVersion > local) {
      win();
      continue;
    }
    if (ch.colVersion < local) continue;
    let current: SqlValue;
    if (pending.has(ch.col)) current = pending.get(ch.col) ?? null;
    else {
      const row = c.selectColumn(ch.col).getRaw(...pkValues);
      if (row === undefined) {
        win();
        continue;
      }
      current = row[0] ?? null;
    }
    if (compareForMerge(ch.val, current) > 0) win();
  }
  flush();
  host.setClock(clock);
  return { received, applied, tables: [...tables], last, dbVersion: clock };
}
