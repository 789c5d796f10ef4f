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
import type { TableContext, ValueColumn } from './table-context.ts';
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
  /**
   * Optional, with `byKey`: the live rows of `table` the caller may see, as SQL — exactly the rows
   * of `table` for which `where` (an expression over its columns, with named `params`) holds. The
   * feed then leaves the other live rows out inside SQLite instead of reading and judging them
   * one by one (an initial sync under RLS reads only what it sends). Undefined: no such SQL.
   * Must agree with `byKey`.
   */
  sqlVisible?: (table: string) => SqlVisibility | undefined;
}

/** See {@link RowFilter.sqlVisible}. */
export interface SqlVisibility {
  where: string;
  params: Readonly<Record<string, SqlValue>>;
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
  /**
   * The caller holds nothing of this database yet (a device that never downloaded and never
   * uploaded: cursor 0, no upload of its site): no row can have left its sight, so prior values
   * are not consulted — and the RLS SELECT can run inside SQL (`RowFilter.sqlVisible`) even when
   * policies were renewed since.
   */
  holdsNothing?: boolean;
}

export interface FeedHost {
  tableContexts(): TableContext[];
  siteIdOf(ref: number): Uint8Array;
  /** Block-LWW columns (blocks.ts): their block cells join the feed, their whole values never do. */
  blocks?: BlockColumns;
}

/**
 * One clock entry before its value is attached. `state` is the row it belongs to when the stream
 * read the row itself (the one-pass rows stream and the cells it deferred); other streams leave
 * it undefined and share a per-table cache of the last row seen. A source's head is one Item it
 * overwrites on every step; only deferred cells get Items of their own.
 */
class Item {
  /** Col id; 0 = sentinel, {@link BLOCK_ITEM} = a block cell. */
  col = 0;
  cv = 0;
  dbv = 0;
  seq = 0;
  site = 0;
  cl = 0;
  state: RowState | undefined = undefined;
  /** A deferred cell of a feed without row filter: its value, read with its row (no state kept). */
  valued = false;
  val: SqlValue = null;
  block: string | undefined = undefined;
  blockVal: SqlValue | undefined = undefined;
  constructor(public pk: Uint8Array) {}
}

function cellItem(pk: Uint8Array, col: number, cv: number, dbv: number, seq: number, site: number, cl: number, state: RowState | undefined): Item {
  const it = new Item(pk);
  it.col = col;
  it.cv = cv;
  it.dbv = dbv;
  it.seq = seq;
  it.site = site;
  it.cl = cl;
  it.state = state;
  return it;
}

/** Col id of a block cell item (blocks.ts): the cell name and value travel in the item. */
const BLOCK_ITEM = -1;

/** What the feed knows of one row: its values (read once) and whether the caller may see it. */
interface RowState {
  pk: Uint8Array;
  /** Causal length the row's visibility is judged at (byKey only asks about live rows). */
  cl: number;
  /** Primary-key values, decoded on first need. */
  values: SqlValue[] | undefined;
  /** The value columns (at `off + ord`), undefined when the row does not exist; valid once `rowKnown`. */
  row: SqlValue[] | undefined;
  off: number;
  rowKnown: boolean;
  resolved: boolean;
  visible: boolean;
  /** A removal is due for this row before anything else of it (it left the caller's sight). */
  removal: boolean;
}

function newState(pk: Uint8Array, cl: number): RowState {
  return { pk, cl, values: undefined, row: undefined, off: 0, rowKnown: false, resolved: false, visible: true, removal: false };
}

function pkValuesOf(st: RowState): SqlValue[] {
  return (st.values ??= decodePk(st.pk));
}

function rowOf(ctx: TableContext, st: RowState): SqlValue[] | undefined {
  if (!st.rowKnown) {
    st.row = ctx.stmts.selectRow.getRaw(...pkValuesOf(st));
    st.off = 0;
    st.rowKnown = true;
  }
  return st.row;
}

/** Deferred explicit cells, ordered by (db_version, seq): a binary min-heap. */
class ItemHeap {
  readonly #a: Item[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): Item | undefined {
    return this.#a[0];
  }
  push(x: Item): void {
    const a = this.#a;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const y = a[p] as Item;
      if (y.dbv < x.dbv || (y.dbv === x.dbv && y.seq <= x.seq)) break;
      a[i] = y;
      i = p;
    }
    a[i] = x;
  }
  pop(): Item | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    const n = a.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let m = l;
      const L = a[l] as Item;
      if (r < n) {
        const R = a[r] as Item;
        if (R.dbv < L.dbv || (R.dbv === L.dbv && R.seq < L.seq)) m = r;
      }
      const M = a[m] as Item;
      if (last.dbv < M.dbv || (last.dbv === M.dbv && last.seq <= M.seq)) break;
      a[i] = M;
      i = m;
    }
    a[i] = last;
    return top;
  }
}

/** Which sites' clocks a feed takes: all, all but one, or only this database's own (site 0). */
interface SiteRule {
  exclude: number | undefined;
  localOnly: boolean;
}

const siteOk = (rule: SiteRule, site: number): boolean => (rule.localOnly ? site === 0 : site !== rule.exclude);

/** Beyond this many deferred cells, deferred cells stop holding their row's values (memory bound). */
const MAX_DEFERRED_WITH_VALUES = 200_000;

/** One table of a feed: its deferred cells, the last row seen by streams without row state, col ids → columns. */
interface TableFeed {
  ctx: TableContext;
  heap: ItemHeap;
  cached: RowState | undefined;
  /** `ctx.byId` as an array (col id → column), for the per-change lookup. */
  byId: (ValueColumn | undefined)[];
}

/**
 * An ordered stream of items of one table. `head` is valid while `advance()` last returned true
 * (it is overwritten by the next `advance()`); `close()` ends the statement behind it.
 */
interface Source {
  readonly tf: TableFeed;
  /** Items addressed to the caller (evictions): no row filter, no value lookup. */
  readonly direct: boolean;
  readonly head: Item;
  advance(): boolean;
  close(): void;
}

const EMPTY_PK = new Uint8Array(0);

/**
 * The one-pass rows stream (table-context.ts `rowsJoined`): each row record with all its
 * explicit cells and (when joinable) its values, in one result row per cell. Yields the sentinel
 * and the implicit cells at the record's position; explicit cells at or after it go to the
 * table's heap with the same row state, so the row is read and judged once. Cells before the
 * record are the residual stream's.
 */
class JoinedSource implements Source {
  readonly direct = false;
  readonly head = new Item(EMPTY_PK);
  readonly #it: Iterator<unknown[]>;
  readonly #after: Cursor;
  readonly #rule: SiteRule;
  /** No row filter: deferred cells carry their value instead of their row's state. */
  readonly #plain: boolean;
  readonly #cols: readonly ValueColumn[];
  readonly #explicit: number[] = [];
  /** The first result row of the next record (read ahead), undefined at the end. */
  #next: unknown[] | undefined;
  /** Next implicit column of the current record to consider; ≥ cols.length: none left. */
  #k = 0;
  #icv = 0;
  #newer = false;
  /** The current record's seq (its implicit cells follow at seq + 1 + ord). */
  #recSeq = 0;

  constructor(
    readonly tf: TableFeed,
    it: Iterator<unknown[]>,
    after: Cursor,
    rule: SiteRule,
    plain: boolean,
  ) {
    this.#it = it;
    this.#after = after;
    this.#rule = rule;
    this.#plain = plain;
    this.#cols = tf.ctx.columns;
    this.#k = this.#cols.length;
    const n = it.next();
    this.#next = n.done === true ? undefined : n.value;
  }

  close(): void {
    this.#it.return?.(undefined);
  }

  advance(): boolean {
    const h = this.head;
    const cols = this.#cols;
    const ncols = cols.length;
    const after = this.#after;
    for (;;) {
      // The current record's remaining implicit cells.
      while (this.#k < ncols) {
        const c = cols[this.#k++] as ValueColumn;
        const seq = this.#recSeq + 1 + c.ord;
        if (!this.#newer && seq <= after.seq) continue;
        const explicit = this.#explicit;
        if (explicit.length > 0 && explicit.includes(c.id)) continue;
        h.col = c.id;
        h.cv = this.#icv;
        h.seq = seq;
        return true;
      }
      const first = this.#next;
      if (first === undefined) return false;
      if (this.#record(first)) return true;
    }
  }

  /** Reads one record (all its result rows); true when its sentinel is the head. */
  #record(first: unknown[]): boolean {
    const h = this.head;
    const after = this.#after;
    const rule = this.#rule;
    const heap = this.tf.heap;
    const byId = this.tf.byId;
    const explicit = this.#explicit;
    const pk = first[0] as Uint8Array;
    explicit.length = 0;
    const cl = Number(first[1]);
    const dbv = Number(first[4]);
    const seq = Number(first[5]);
    const site = Number(first[6]);
    const st = newState(pk, cl);
    const found = first[12];
    if (found != null) {
      st.rowKnown = true;
      if (Number(found) === 1) {
        st.row = first as SqlValue[];
        st.off = 13;
      }
    }
    let x: unknown[] = first;
    for (;;) {
      if (x[7] !== null) {
        const col = Number(x[7]);
        explicit.push(col);
        const xdbv = Number(x[9]);
        const xseq = Number(x[10]);
        const xsite = Number(x[11]);
        if ((xdbv > after.dbVersion || (xdbv === after.dbVersion && xseq > after.seq)) && (xdbv > dbv || (xdbv === dbv && xseq >= seq)) && siteOk(rule, xsite)) {
          const keep = heap.size < MAX_DEFERRED_WITH_VALUES;
          const valued = keep && this.#plain && st.rowKnown;
          const it = cellItem(pk, col, Number(x[8]), xdbv, xseq, xsite, cl, keep && !valued ? st : undefined);
          if (valued) {
            // Only the value outlives the record (the row's values and state die young).
            const c = byId[col];
            it.valued = true;
            it.val = c === undefined || st.row === undefined ? null : (st.row[st.off + c.ord] ?? null);
          }
          heap.push(it);
        }
      }
      const next = this.#it.next();
      if (next.done === true) {
        this.#next = undefined;
        break;
      }
      x = next.value;
      if (!sameBytes(pk, x[0] as Uint8Array)) {
        this.#next = x;
        break;
      }
    }
    this.#k = this.#cols.length;
    if (!siteOk(rule, site)) return false;
    const newer = dbv > after.dbVersion;
    h.pk = pk;
    h.dbv = dbv;
    h.site = site;
    h.cl = cl;
    h.state = st;
    this.#recSeq = seq;
    this.#newer = newer;
    if (!(first[3] === null || cl % 2 === 0 || this.#cols.length === 0)) {
      this.#icv = Number(first[3]);
      this.#k = 0;
    }
    if (Number(first[2]) === 1 && (newer || seq > after.seq)) {
      h.col = 0;
      h.cv = cl;
      h.seq = seq;
      return true;
    }
    return false;
  }
}

/** The residual explicit cells (table-context.ts `cellsResidual`). */
class CellSource implements Source {
  readonly direct = false;
  readonly head = new Item(EMPTY_PK);
  readonly #it: Iterator<unknown[]>;
  constructor(
    readonly tf: TableFeed,
    it: Iterator<unknown[]>,
  ) {
    this.#it = it;
  }
  advance(): boolean {
    const n = this.#it.next();
    if (n.done === true) return false;
    const r = n.value;
    const h = this.head;
    h.pk = r[0] as Uint8Array;
    h.col = Number(r[1]);
    h.cv = Number(r[2]);
    h.dbv = Number(r[3]);
    h.seq = Number(r[4]);
    h.site = Number(r[5]);
    h.cl = Number(r[6]);
    return true;
  }
  close(): void {
    this.#it.return?.(undefined);
  }
}

/** Block cells (blocks.ts) or removals addressed to one principal (as sentinel items of site 0 at seq 0). */
class GeneratorSource implements Source {
  head = new Item(EMPTY_PK);
  readonly #it: Iterator<Item>;
  constructor(
    readonly tf: TableFeed,
    it: Iterator<Item>,
    readonly direct: boolean,
  ) {
    this.#it = it;
  }
  advance(): boolean {
    const n = this.#it.next();
    if (n.done === true) return false;
    this.head = n.value;
    return true;
  }
  close(): void {
    this.#it.return?.(undefined);
  }
}

function* blockItems(blocks: BlockColumns, table: string, after: Cursor, excludeSiteRef: number | undefined): Generator<Item> {
  for (const [pk, name, val, cv, dbv, seq, site, cl] of blocks.feed(table, after, excludeSiteRef)) {
    const it = cellItem(pk, BLOCK_ITEM, cv, dbv, seq, site, cl, undefined);
    it.block = name;
    it.blockVal = val;
    yield it;
  }
}

function* evictionItems(it: Iterable<unknown[]>): Generator<Item> {
  for (const r of it) yield cellItem(r[0] as Uint8Array, 0, Number(r[1]), Number(r[2]), 0, 0, Number(r[1]), undefined);
}

/**
 * The change feed as a cursor: `next()` moves to the next change and overwrites this object's
 * {@link Change} fields with it (one object for the whole scan, no allocation per change);
 * `close()` ends the statements behind it (also when the caller stops early: the connection
 * would otherwise stay busy and refuse every later write). The caller must not write to the
 * database while it is open. {@link changeFeed} is the same as a generator of fresh objects.
 */
export class FeedCursor implements Change {
  tbl = '';
  pk: Uint8Array = EMPTY_PK;
  col = '';
  val: SqlValue = null;
  colVersion = 0;
  dbVersion = 0;
  siteId: Uint8Array = EMPTY_PK;
  cl = 0;
  seq = 0;
  readonly #opts: FeedOptions;
  readonly #after: Cursor;
  readonly #sources: Source[] = [];
  readonly #feeds: TableFeed[] = [];
  /** The sources not exhausted yet. */
  #live: Source[] = [];
  readonly #removed = new PkSet();
  /** Whether a table has any prior values after the cursor at all (one query per table and scan). */
  readonly #priors = new Map<TableContext, boolean>();
  readonly #sites: SiteIds;
  readonly #blocks: BlockColumns | undefined;
  readonly #hasBlocks: boolean;
  readonly #filtered: boolean;
  #closed = false;

  constructor(host: FeedHost, opts: FeedOptions = {}) {
    this.#opts = opts;
    const after = (this.#after = opts.after ?? { dbVersion: 0, seq: -1 });
    this.#sites = new SiteIds(host);
    const blocks = (this.#blocks = host.blocks);
    this.#filtered = opts.rowFilter !== undefined;
    const wanted = opts.tables === undefined ? undefined : new Set(opts.tables.map((t) => t.toLowerCase()));
    const sources = this.#sources;
    const rule: SiteRule = { exclude: opts.localOnly ? undefined : opts.excludeSiteRef, localOnly: opts.localOnly === true };
    const contexts = host.tableContexts();
    this.#hasBlocks = blocks !== undefined && contexts.some((c) => blocks.columnsOf(c.name).length > 0);
    try {
      for (const ctx of contexts) {
        if (wanted !== undefined && !wanted.has(ctx.name.toLowerCase())) continue;
        const s = ctx.stmts;
        const v = BigInt(after.dbVersion);
        const q = BigInt(after.seq);
        const ex = rule.exclude === undefined ? undefined : BigInt(rule.exclude);
        const byId: (ValueColumn | undefined)[] = [];
        for (const c of ctx.columns) byId[c.id] = c;
        const tf: TableFeed = { ctx, heap: new ItemHeap(), cached: undefined, byId };
        this.#feeds.push(tf);
        // RLS pushed into SQL: only live rows the caller may see (and every dead row, judged by its
        // tombstone below). Not when a row could have left the caller's sight since the cursor: those
        // need reading to be answered with a removal.
        const vis = opts.rowFilter?.byKey === undefined ? undefined : opts.rowFilter.sqlVisible?.(ctx.name);
        const pushed = vis !== undefined && (opts.holdsNothing === true || s.priorAny.getRaw(ctx.name, v) === undefined) ? ctx.rowsJoinedVisible(vis.where) : undefined;
        const rows = pushed !== undefined && vis !== undefined ? pushed.iterateRaw(v, vis.params as unknown as SqlValue) : s.rowsJoined.iterateRaw(v);
        const mine: Source[] = [new JoinedSource(tf, rows, after, rule, opts.rowFilter === undefined)];
        const cells = rule.localOnly ? s.cellsResidualLocal.iterateRaw(v, q, v) : ex !== undefined ? s.cellsResidualExcluding.iterateRaw(v, q, v, ex) : s.cellsResidual.iterateRaw(v, q, v);
        mine.push(new CellSource(tf, cells));
        if (blocks !== undefined && !opts.localOnly && blocks.columnsOf(ctx.name).length > 0) mine.push(new GeneratorSource(tf, blockItems(blocks, ctx.name, after, opts.excludeSiteRef), false));
        if (opts.audience !== undefined) mine.push(new GeneratorSource(tf, evictionItems(s.evictionsFeed.iterateRaw(opts.audience, ctx.name, v)), true));
        for (const src of mine) {
          if (src.advance()) sources.push(src);
          else src.close();
        }
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.#live = sources.slice();
  }

  /** Ends the statements behind the feed; `next()` then returns false. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#live = [];
    for (const src of this.#sources) src.close();
  }

  #priorSince = (ctx: TableContext): boolean => {
    if (this.#opts.holdsNothing === true) return false;
    let any = this.#priors.get(ctx);
    if (any === undefined) {
      any = ctx.stmts.priorAny.getRaw(ctx.name, BigInt(this.#after.dbVersion)) !== undefined;
      this.#priors.set(ctx, any);
    }
    return any;
  };

  #set(tbl: string, pk: Uint8Array, col: string, val: SqlValue, colVersion: number, dbVersion: number, siteId: Uint8Array, cl: number, seq: number): true {
    this.tbl = tbl;
    this.pk = pk;
    this.col = col;
    this.val = val;
    this.colVersion = colVersion;
    this.dbVersion = dbVersion;
    this.siteId = siteId;
    this.cl = cl;
    this.seq = seq;
    return true;
  }

  /** Moves to the next change (this object's fields); false at the end (the statements are then closed). */
  next(): boolean {
    if (this.#closed) return false;
    const live = this.#live;
    const feeds = this.#feeds;
    const sites = this.#sites;
    for (;;) {
      // The earliest head among the streams and the deferred cells (ties: the first stream, streams before heaps).
      let best = -1;
      let item: Item | undefined;
      for (let i = 0; i < live.length; i++) {
        const h = (live[i] as Source).head;
        if (item === undefined || h.dbv < item.dbv || (h.dbv === item.dbv && h.seq < item.seq)) {
          item = h;
          best = i;
        }
      }
      let heapFeed: TableFeed | undefined;
      for (let i = 0; i < feeds.length; i++) {
        const tf = feeds[i] as TableFeed;
        const h = tf.heap.peek();
        if (h !== undefined && (item === undefined || h.dbv < item.dbv || (h.dbv === item.dbv && h.seq < item.seq))) {
          item = h;
          heapFeed = tf;
        }
      }
      if (item === undefined) {
        this.close();
        return false;
      }
      // Read the item before its source moves on (a source's head is overwritten by advance()).
      const { pk, col: colId, cv, dbv, seq, site: siteRef, cl, valued, val } = item;
      let state = item.state;
      const block = item.block;
      const blockVal = item.blockVal;
      let tf: TableFeed;
      let direct = false;
      if (heapFeed !== undefined) {
        heapFeed.heap.pop();
        tf = heapFeed;
      } else {
        const src = live[best] as Source;
        tf = src.tf;
        direct = src.direct;
        if (!src.advance()) live.splice(best, 1);
      }
      const ctx = tf.ctx;
      if (valued) {
        // A deferred cell of a feed without row filter (JoinedSource): visible, its value at hand.
        const c = tf.byId[colId];
        if (c === undefined) continue; // clock of a column dropped by ALTER
        if (this.#hasBlocks && this.#blocks?.isBlockColumn(ctx.name, c.name) === true) continue; // travels as block cells
        return this.#set(ctx.name, pk, c.name, val, cv, dbv, sites.of(siteRef), cl, seq);
      }
      if (direct) return this.#set(ctx.name, pk, RIP_SENTINEL, null, cv, dbv, sites.of(siteRef), cl, seq);
      if (state === undefined) {
        const cached = tf.cached;
        if (cached !== undefined && sameBytes(cached.pk, pk)) state = cached;
        else {
          state = newState(pk, cl);
          tf.cached = state;
        }
      }
      if (!state.resolved) {
        if (this.#filtered) resolveRow(ctx, state, this.#opts, this.#after, this.#removed, this.#priorSince);
        else state.resolved = true;
      }
      if (state.removal) {
        // A removal below the row's current (new) life: the device drops it, and takes it back whole if it returns.
        state.removal = false;
        this.#removed.add(pk);
        return this.#set(ctx.name, pk, RIP_SENTINEL, null, cl - 1, dbv, sites.of(0), cl - 1, seq);
      }
      if (!state.visible) continue;
      if (colId === BLOCK_ITEM) {
        // A block cell of a live row (blocks.ts); a deleted row's blocks stay behind its tombstone.
        if (rowOf(ctx, state) !== undefined && block !== undefined) return this.#set(ctx.name, pk, block, blockVal ?? null, cv, dbv, sites.of(siteRef), cl, seq);
        continue;
      }
      if (colId === 0) return this.#set(ctx.name, pk, RIP_SENTINEL, null, cv, dbv, sites.of(siteRef), cl, seq);
      const c = tf.byId[colId];
      if (c === undefined) continue; // clock of a column dropped by ALTER
      if (this.#hasBlocks && this.#blocks?.isBlockColumn(ctx.name, c.name) === true) continue; // travels as block cells
      const row = rowOf(ctx, state);
      return this.#set(ctx.name, pk, c.name, row === undefined ? null : (row[state.off + c.ord] ?? null), cv, dbv, sites.of(siteRef), cl, seq);
    }
  }
}

/** Lazily yields changes (fresh objects, see {@link FeedCursor}); the caller must not write to the database while iterating. */
export function* changeFeed(host: FeedHost, opts: FeedOptions = {}): Generator<Change> {
  const cur = new FeedCursor(host, opts);
  try {
    while (cur.next()) yield { tbl: cur.tbl, pk: cur.pk, col: cur.col, val: cur.val, colVersion: cur.colVersion, dbVersion: cur.dbVersion, siteId: cur.siteId, cl: cur.cl, seq: cur.seq };
  } finally {
    cur.close();
  }
}

/** Judges a row once: its visibility to the caller, and whether it left the caller's sight. */
function resolveRow(ctx: TableContext, st: RowState, opts: FeedOptions, after: Cursor, removed: PkSet, priorSince: (ctx: TableContext) => boolean): void {
  st.resolved = true;
  st.removal = false;
  const filter = opts.rowFilter;
  if (filter === undefined) {
    st.visible = true;
    return;
  }
  const pk = st.pk;
  const values = pkValuesOf(st);
  // Left the caller's sight after its cursor? The row's values before the first
  // visibility-relevant change since then (apply.ts startNewLife), under the policy in force
  // at the cursor, say what the device may hold. Only rows that lived at a renewal or a
  // visibility change after the cursor have such values (also at cursor 0: a device holds
  // the rows it wrote itself before it ever downloaded).
  const couldSee = (): boolean => {
    if (!priorSince(ctx)) return false;
    const prior = ctx.stmts.priorAfter.getRaw(ctx.name, pk, BigInt(after.dbVersion));
    const priorVals = prior === undefined ? undefined : decodeTombstoneValues(ctx, prior[0]);
    if (priorVals === undefined) return false;
    return opts.priorFilter !== undefined ? opts.priorFilter(ctx.name, values, priorVals, after.dbVersion) : filter(ctx.name, values, priorVals);
  };
  const byKey = filter.byKey;
  const known = byKey !== undefined && st.cl % 2 === 1 ? byKey(ctx.name, values) : undefined;
  if (known === false) {
    // A live row the caller may not see, decided by key: no row read.
    st.row = undefined;
    st.rowKnown = true;
    st.visible = false;
    st.removal = couldSee() && !removed.has(pk);
    return;
  }
  const row = rowOf(ctx, st);
  if (known === true) {
    st.visible = true;
    return;
  }
  let obj: Record<string, SqlValue> | undefined;
  // A key of the wrong type (only compensations of rejected changes carry one) is never read
  // as the row SQLite's comparison matches (TEXT '5' = INTEGER 5): it is judged as absent, so
  // only its tombstone's audience receives it.
  if (row !== undefined && pkTypeProblem(ctx, values) === undefined) {
    const o: Record<string, SqlValue> = {};
    ctx.schema.pkColumns.forEach((k, i) => (o[k.name] = values[i] ?? null));
    ctx.columns.forEach((c, i) => (o[c.name] = row[st.off + i] ?? null));
    obj = o;
  }
  const tomb = obj === undefined ? readTombstone(ctx, pk) : undefined;
  st.visible = obj !== undefined ? filter(ctx.name, values, obj) : filter(ctx.name, values, undefined, tomb);
  if (!st.visible && couldSee()) {
    if (obj === undefined) st.visible = true; // deleted since: the device gets the tombstone
    else st.removal = !removed.has(pk);
  }
}

/** Site ids by site ref, each looked up once per scan (refs are small integers: an array). */
class SiteIds {
  readonly #host: FeedHost;
  readonly #small: (Uint8Array | undefined)[] = [];
  readonly #other = new Map<number, Uint8Array>();
  constructor(host: FeedHost) {
    this.#host = host;
  }
  of(ref: number): Uint8Array {
    if (ref >= 0 && ref < 65536 && Number.isInteger(ref)) return (this.#small[ref] ??= this.#host.siteIdOf(ref));
    let id = this.#other.get(ref);
    if (id === undefined) {
      id = this.#host.siteIdOf(ref);
      this.#other.set(ref, id);
    }
    return id;
  }
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
