/**
 * The merge of incoming changes into a database (protocol reference C.4, C.5, C.7).
 *
 * A batch is applied inside one transaction by the caller: either every change is merged or,
 * when anything throws (unknown table/column, a constraint, a refused RLS check), nothing is.
 * Base-table writes happen with the tracking triggers suppressed (`offsync_clock.applying`).
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
  /** For upserts: the column being written and its new value. */
  column?: string;
  value?: SqlValue;
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

function samePk(a: Uint8Array | undefined, b: Uint8Array): boolean {
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
  // Lamport version of the current incoming group (one per incoming db_version and origin).
  let groupVersion = 0;
  let groupKey = '';
  // Cache of the causal length of the pk merged last (consecutive changes usually share a pk).
  let curCtx: TableContext | undefined;
  let curPk: Uint8Array | undefined;
  let curPkValues: SqlValue[] = [];
  let curCl = 0;
  let siteBytes: Uint8Array | undefined;
  let siteRef = 0;

  for (const ch of changes) {
    received++;
    last = { dbVersion: ch.dbVersion, seq: ch.seq };
    const ctx = host.table(ch.tbl);
    if (ctx === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_TABLE, `Table ${ch.tbl} is not enabled for sync on this database`, { details: { table: ch.tbl } });
    }
    const isSentinel = ch.col === RIP_SENTINEL;
    const colId = isSentinel ? 0 : ctx.colIds.get(ch.col);
    if (colId === undefined) {
      throw new CoreError(CoreErrorCode.UNKNOWN_COLUMN, `Column ${ch.col} does not exist in table ${ctx.name}`, {
        details: { table: ctx.name, column: ch.col },
      });
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
    const version = (): number => {
      if (groupVersion === 0) {
        groupVersion = Math.max(clock + 1, ch.dbVersion);
        clock = groupVersion;
      }
      return groupVersion;
    };
    const s = ctx.stmts;
    if (curCtx !== ctx || !samePk(curPk, ch.pk)) {
      curCtx = ctx;
      curPk = ch.pk;
      curPkValues = decodePk(ch.pk);
      if (curPkValues.length !== ctx.schema.pkColumns.length) {
        throw new CoreError(CoreErrorCode.PK_INVALID, `Primary key of table ${ctx.name} has ${ctx.schema.pkColumns.length} column(s), change carries ${curPkValues.length}`);
      }
      const sentinel = s.sentinel.getRaw(ch.pk);
      curCl = sentinel !== undefined ? Number(sentinel[0]) : s.anyMeta.getRaw(ch.pk) !== undefined ? 1 : 0;
    }
    const pk = ch.pk;
    const setSentinel = (): void => {
      s.setClock.run(pk, 0n, BigInt(ch.cl), BigInt(version()), BigInt(ch.seq), BigInt(siteRef));
      curCl = ch.cl;
    };
    const resurrect = (): void => {
      opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: curPkValues });
      s.insertPkOnly.run(...curPkValues);
      s.resetCells.run(pk);
      setSentinel();
    };

    if (ch.cl < curCl) continue; // an older life of the row
    if (ctx.algorithm === 'gos') {
      // Grow-only: values are upserted without version checks; deletes never travel.
      if (ch.cl % 2 === 0) continue;
      if (isSentinel) {
        if (curCl === 0) resurrect();
        continue;
      }
      opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: curPkValues, column: ch.col, value: ch.val });
      ctx.upsertColumn(ch.col).run(...curPkValues, ch.val);
      s.setClock.run(pk, BigInt(colId), BigInt(ch.colVersion), BigInt(version()), BigInt(ch.seq), BigInt(siteRef));
      if (curCl === 0) curCl = 1;
      applied++;
      tables.add(ctx.name);
      continue;
    }
    if (ch.cl % 2 === 0) {
      if (ch.cl === curCl) continue;
      opts.authorize?.({ table: ctx.name, kind: 'delete', pk: curPkValues });
      s.deleteRow.run(...curPkValues);
      setSentinel();
      s.dropCells.run(pk);
      applied++;
      tables.add(ctx.name);
      continue;
    }
    if (isSentinel) {
      if (ch.cl === curCl) continue;
      resurrect();
      applied++;
      tables.add(ctx.name);
      continue;
    }
    const needsResurrect = ch.cl > curCl;
    const known = curCl > 0;
    if (needsResurrect && (known || ch.cl > 1)) resurrect();
    let wins = needsResurrect || !known;
    if (!wins) {
      const local = s.cell.getRaw(pk, BigInt(colId));
      if (local === undefined) wins = true;
      else {
        const lv = Number(local[0]);
        if (ch.colVersion !== lv) wins = ch.colVersion > lv;
        else {
          const row = ctx.selectColumn(ch.col).getRaw(...curPkValues);
          wins = row === undefined || compareForMerge(ch.val, row[0] ?? null) > 0;
        }
      }
    }
    if (!wins) continue;
    opts.authorize?.({ table: ctx.name, kind: 'upsert', pk: curPkValues, column: ch.col, value: ch.val });
    ctx.upsertColumn(ch.col).run(...curPkValues, ch.val);
    s.setClock.run(pk, BigInt(colId), BigInt(ch.colVersion), BigInt(version()), BigInt(ch.seq), BigInt(siteRef));
    if (curCl === 0) curCl = 1;
    applied++;
    tables.add(ctx.name);
  }
  host.setClock(clock);
  return { received, applied, tables: [...tables], last, dbVersion: clock };
}
