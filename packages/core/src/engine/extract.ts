/**
 * The change feed: every clock entry after a cursor, in (db_version, seq) order, each with the
 * cell's current value and the row's current causal length (docs/PROTOCOL.md §P5).
 *
 * Per table two ordered streams are merged: row records (sentinel + implicit cells, expanded
 * here) and explicit cells. Values are read from the base table, once per row.
 */
import { bytesKey, sameBytes } from '../codec/bytes.ts';
import { decodePk } from '../codec/pk.ts';
import type { Change, SqlValue } from '../types.ts';
import { RIP_SENTINEL } from '../types.ts';
import type { TableContext } from './table-context.ts';
import { pkTypeProblem } from './apply.ts';
import { decodeTombstoneValues, readTombstone } from './tombstones.ts';
import type { Tombstone } from './tombstones.ts';
import type { BlockColumns } from './blocks.ts';

export interface Cursor {
  dbVersion: number;
  seq: number;
}

/** Row visibility (RLS SELECT) of a feed; see {@link FeedOptions.rowFilter}. */
export interface RowFilter {
  (table: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>> | undefined, tombstone?: Tombstone): boolean;
  /**
   * Optional verdict by key alone for LIVE rows (e.g. a key set computed in bulk): false skips
   * reading the row, true sends it without calling the filter, undefined falls back to it.
   */
  byKey?: (table: string, pk: readonly SqlValue[]) => boolean | undefined;
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
  /** The caller's principal: removals addressed to it (`offsync_evictions`) join the feed, unfiltered. */
  audience?: string;
  /**
   * Could the caller see a row with these values as of `version` (the policy then in force)?
   * With a row filter, a row it may not see now but could see at the cursor is answered with a
   * removal (it left its sight: a value or policy change, which starts a new life of the row).
   * Default: the row filter on the row's values before its first visibility change after the cursor.
   */
  priorFilter?: (table: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>>, version: number) => boolean;
  /**
   * Row visibility (RLS SELECT): return false to drop every change of that row.
   * `row` is undefined when the row does not exist (deleted); `tombstone` then says what the
   * database remembers of it (last values, the audience of a compensating removal), if anything.
   */
  rowFilter?: RowFilter;
}

export interface FeedHost {
  tableContexts(): TableContext[];
  siteIdOf(ref: number): Uint8Array;
  /** Block-LWW columns (blocks.ts): their block cells join the feed, their whole values never do. */
  blocks?: BlockColumns;
}

/** One clock entry before its value is attached: pk, col id, col_version, db_version, seq, site ref, cl. */
type Item = [pk: Uint8Array, col: number, cv: number, dbv: number, seq: number, site: number, cl: number, block?: string, blockVal?: SqlValue];

/** Col id of a block cell item (blocks.ts): the cell name and value travel in the item. */
const BLOCK_ITEM = -1;

function* blockItems(blocks: BlockColumns, table: string, after: Cursor, excludeSiteRef: number | undefined): Generator<Item> {
  for (const [pk, name, val, cv, dbv, seq, site, cl] of blocks.feed(table, after, excludeSiteRef)) yield [pk, BLOCK_ITEM, cv, dbv, seq, site, cl, name, val];
}

function* rowItems(ctx: TableContext, it: Iterable<unknown[]>, after: Cursor): Generator<Item> {
  // Column ids are small (≥ 1, assigned in order), so explicit cells of a row arrive as a bitmask.
  const wideIds = ctx.columns.some((c) => c.id > 62);
  for (const r of it) {
    const pk = r[0] as Uint8Array;
    const cl = Number(r[1]);
    const dbv = Number(r[4]);
    const seq = Number(r[5]);
    const site = Number(r[6]);
    const newer = dbv > after.dbVersion;
    if (Number(r[2]) === 1 && (newer || seq > after.seq)) yield [pk, 0, cl, dbv, seq, site, cl];
    if (r[3] === null || cl % 2 === 0 || ctx.columns.length === 0) continue;
    const icv = Number(r[3]);
    const mask = r[7] == null ? 0n : BigInt(r[7] as bigint);
    const explicit = wideIds && mask !== 0n ? explicitColumns(ctx, pk) : undefined;
    for (const col of ctx.columns) {
      const s = seq + 1 + col.ord;
      if (!newer && s <= after.seq) continue;
      if (explicit !== undefined ? explicit.has(col.id) : mask !== 0n && ((mask >> BigInt(col.id)) & 1n) === 1n) continue;
      yield [pk, col.id, icv, dbv, s, site, cl];
    }
  }
}

/** Explicit cells of one row, for tables whose column ids outgrew the bitmask. */
function explicitColumns(ctx: TableContext, pk: Uint8Array): Set<number> {
  const out = new Set<number>();
  for (const row of ctx.stmts.cellCols.iterateRaw(pk)) out.add(Number(row[0]));
  return out;
}

function* cellItems(it: Iterable<unknown[]>): Generator<Item> {
  for (const r of it) yield [r[0] as Uint8Array, Number(r[1]), Number(r[2]), Number(r[3]), Number(r[4]), Number(r[5]), Number(r[6])];
}

interface Stream {
  ctx: TableContext;
  it: Iterator<Item>;
  head: Item;
  /** Items addressed to the caller (evictions): no row filter, no value lookup. */
  direct: boolean;
}

/** Removals addressed to one principal, as sentinel items of site 0 at seq 0. */
function* evictionItems(it: Iterable<unknown[]>): Generator<Item> {
  for (const r of it) yield [r[0] as Uint8Array, 0, Number(r[1]), Number(r[2]), 0, 0, Number(r[1])];
}

interface RowCache {
  pk: Uint8Array | undefined;
  values: SqlValue[];
  row: SqlValue[] | undefined;
  visible: boolean;
  /** A removal is due for this row before anything else of it (it left the caller's sight). */
  removal: boolean;
}


/** Lazily yields changes; the caller must not write to the database while iterating. */
export function* changeFeed(host: FeedHost, opts: FeedOptions = {}): Generator<Change> {
  const after = opts.after ?? { dbVersion: 0, seq: -1 };
  const wanted = opts.tables === undefined ? undefined : new Set(opts.tables.map((t) => t.toLowerCase()));
  const streams: Stream[] = [];
  const caches = new Map<TableContext, RowCache>();
  for (const ctx of host.tableContexts()) {
    if (wanted !== undefined && !wanted.has(ctx.name.toLowerCase())) continue;
    const s = ctx.stmts;
    const v = BigInt(after.dbVersion);
    const q = BigInt(after.seq);
    const ex = opts.excludeSiteRef === undefined ? undefined : BigInt(opts.excludeSiteRef);
    const rows = opts.localOnly ? s.rowsFeedLocal.iterateRaw(v) : ex !== undefined ? s.rowsFeedExcluding.iterateRaw(v, ex) : s.rowsFeed.iterateRaw(v);
    const cells = opts.localOnly ? s.cellsFeedLocal.iterateRaw(v, q) : ex !== undefined ? s.cellsFeedExcluding.iterateRaw(v, q, ex) : s.cellsFeed.iterateRaw(v, q);
    const blocks = host.blocks !== undefined && !opts.localOnly && host.blocks.columnsOf(ctx.name).length > 0 ? [blockItems(host.blocks, ctx.name, after, opts.excludeSiteRef)] : [];
    for (const it of [rowItems(ctx, rows, after), cellItems(cells), ...blocks]) {
      const first = it.next();
      if (!first.done) streams.push({ ctx, it, head: first.value, direct: false });
    }
    if (opts.audience !== undefined) {
      const it = evictionItems(s.evictionsFeed.iterateRaw(opts.audience, ctx.name, v));
      const first = it.next();
      if (!first.done) streams.push({ ctx, it, head: first.value, direct: true });
    }
    caches.set(ctx, { pk: undefined, values: [], row: undefined, visible: true, removal: false });
  }
  const siteCache = new Map<number, Uint8Array>();
  try {
    yield* mergeStreams(host, opts, after, streams, caches, siteCache);
  } finally {
    // A consumer that stops early must not leave statements running: the connection would stay
    // busy and refuse every later write.
    for (const st of streams) st.it.return?.(undefined);
  }
}

function* mergeStreams(
  host: FeedHost,
  opts: FeedOptions,
  after: Cursor,
  streams: Stream[],
  caches: Map<TableContext, RowCache>,
  siteCache: Map<number, Uint8Array>,
): Generator<Change> {
  const removed = new PkSet();
  // Whether a table has any prior values after the cursor at all (one query per table and scan).
  const priors = new Map<TableContext, boolean>();
  const priorSince = (ctx: TableContext): boolean => {
    let any = priors.get(ctx);
    if (any === undefined) {
      any = ctx.stmts.priorAny.getRaw(ctx.name, BigInt(after.dbVersion)) !== undefined;
      priors.set(ctx, any);
    }
    return any;
  };
  while (streams.length > 0) {
    let best = 0;
    for (let i = 1; i < streams.length; i++) {
      const h = (streams[i] as Stream).head;
      const b = (streams[best] as Stream).head;
      if (h[3] < b[3] || (h[3] === b[3] && h[4] < b[4])) best = i;
    }
    const st = streams[best] as Stream;
    const [pk, colId, cv, dbv, seq, siteRef, cl, blockName, blockVal] = st.head;
    const next = st.it.next();
    if (next.done) streams.splice(best, 1);
    else st.head = next.value;

    const ctx = st.ctx;
    if (st.direct) {
      yield { tbl: ctx.name, pk, col: RIP_SENTINEL, val: null, colVersion: cv, dbVersion: dbv, siteId: siteOf(host, siteCache, siteRef), cl, seq };
      continue;
    }
    const cache = caches.get(ctx) as RowCache;
    if (!sameBytes(cache.pk, pk)) {
      cache.pk = pk;
      cache.values = decodePk(pk);
      cache.removal = false;
      // Left the caller's sight after its cursor? The row's values before the first
      // visibility-relevant change since then (apply.ts startNewLife), under the policy in force
      // at the cursor, say what the device may hold. Only rows that lived at a renewal or a
      // visibility change after the cursor have such values (also at cursor 0: a device holds
      // the rows it wrote itself before it ever downloaded).
      const couldSee = (): boolean => {
        const filter = opts.rowFilter;
        if (filter === undefined || !priorSince(ctx)) return false;
        const prior = ctx.stmts.priorAfter.getRaw(ctx.name, pk, BigInt(after.dbVersion));
        const priorVals = prior === undefined ? undefined : decodeTombstoneValues(ctx, prior[0]);
        if (priorVals === undefined) return false;
        return opts.priorFilter !== undefined ? opts.priorFilter(ctx.name, cache.values, priorVals, after.dbVersion) : filter(ctx.name, cache.values, priorVals);
      };
      const byKey = opts.rowFilter?.byKey;
      const known = byKey !== undefined && cl % 2 === 1 ? byKey(ctx.name, cache.values) : undefined;
      if (known === false) {
        // A live row the caller may not see, decided by key: no row read.
        cache.row = undefined;
        cache.visible = false;
        cache.removal = couldSee() && !removed.has(pk);
      } else {
        cache.row = ctx.stmts.selectRow.getRaw(...cache.values);
        if (opts.rowFilter !== undefined && known !== true) {
          let obj: Record<string, SqlValue> | undefined;
          // A key of the wrong type (only compensations of rejected changes carry one) is never read
          // as the row SQLite's comparison matches (TEXT '5' = INTEGER 5): it is judged as absent, so
          // only its tombstone's audience receives it.
          if (cache.row !== undefined && pkTypeProblem(ctx, cache.values) === undefined) {
            const o: Record<string, SqlValue> = {};
            ctx.schema.pkColumns.forEach((k, i) => (o[k.name] = cache.values[i] ?? null));
            ctx.columns.forEach((c, i) => (o[c.name] = cache.row?.[i] ?? null));
            obj = o;
          }
          const tomb = obj === undefined ? readTombstone(ctx, pk) : undefined;
          cache.visible = obj !== undefined ? opts.rowFilter(ctx.name, cache.values, obj) : opts.rowFilter(ctx.name, cache.values, undefined, tomb);
          if (!cache.visible && couldSee()) {
            if (obj === undefined) cache.visible = true; // deleted since: the device gets the tombstone
            else cache.removal = !removed.has(pk);
          }
        } else cache.visible = true;
      }
    }
    if (cache.removal) {
      // A removal below the row's current (new) life: the device drops it, and takes it back whole if it returns.
      cache.removal = false;
      removed.add(pk);
      yield { tbl: ctx.name, pk, col: RIP_SENTINEL, val: null, colVersion: cl - 1, dbVersion: dbv, siteId: siteOf(host, siteCache, 0), cl: cl - 1, seq };
      continue;
    }
    if (!cache.visible) continue;
    if (colId === BLOCK_ITEM) {
      // A block cell of a live row (blocks.ts); a deleted row's blocks stay behind its tombstone.
      if (cache.row !== undefined && blockName !== undefined) yield { tbl: ctx.name, pk, col: blockName, val: blockVal ?? null, colVersion: cv, dbVersion: dbv, siteId: siteOf(host, siteCache, siteRef), cl, seq };
      continue;
    }
    let col = RIP_SENTINEL;
    let val: SqlValue = null;
    if (colId !== 0) {
      const c = ctx.byId.get(colId);
      if (c === undefined) continue; // clock of a column dropped by ALTER
      if (host.blocks?.isBlockColumn(ctx.name, c.name) === true) continue; // travels as block cells
      col = c.name;
      val = cache.row === undefined ? null : (cache.row[c.ord] ?? null);
    }
    yield { tbl: ctx.name, pk, col, val, colVersion: cv, dbVersion: dbv, siteId: siteOf(host, siteCache, siteRef), cl, seq };
  }
}

function siteOf(host: FeedHost, cache: Map<number, Uint8Array>, ref: number): Uint8Array {
  let id = cache.get(ref);
  if (id === undefined) {
    id = host.siteIdOf(ref);
    cache.set(ref, id);
  }
  return id;
}

/** Primary-key blobs already answered with a removal in one scan. */
class PkSet {
  readonly #keys = new Set<string>();
  has(pk: Uint8Array): boolean {
    return this.#keys.has(bytesKey(pk));
  }
  add(pk: Uint8Array): void {
    this.#keys.add(bytesKey(pk));
  }
}
