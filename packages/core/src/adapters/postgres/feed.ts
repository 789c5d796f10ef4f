/**
 * The change feed over the PostgreSQL clock tables (docs/PROTOCOL.md §P5): every clock entry
 * after a cursor in (db_version, seq) order, with the cell's current value and the row's current
 * causal length. Read in keyset pages; each page borrows a connection only while it is read.
 */
import { decodePk } from '../../codec/pk.ts';
import type { Cursor } from '../../engine/extract.ts';
import type { Change, SqlValue } from '../../types.ts';
import { RIP_SENTINEL } from '../../types.ts';
import type { ConnSource, PgConn } from './conn.ts';
import { hexKey, toBytes } from './conn.ts';
import { batchSql, fitsArray, keyColumns } from './batch-sql.ts';
import type { PgTableContext } from './context.ts';
import { metaTable } from './ddl.ts';
import { isBlockColumn } from './blocks.ts';
import type { BlockMarks } from './blocks.ts';
import { fromPg } from './introspect.ts';
import type { PgColumn } from './introspect.ts';
import { quoteIdent, quoteLiteral } from './conn.ts';
import type { PgRowSecurity } from './merge.ts';

export interface PgFeedOptions {
  /** Exclusive lower bound; default: everything. */
  after?: Cursor;
  /** Leave out changes that originated at this site. */
  excludeSiteRef?: number;
  /** Only this database's own changes (site 0). */
  localOnly?: boolean;
  /** Only these tables (default: all synced tables). */
  tables?: readonly string[];
  /**
   * Row visibility (RLS SELECT): return false to drop every change of that row.
   * `row` is undefined when the row does not exist (deleted).
   */
  rowFilter?: (table: string, pk: readonly SqlValue[], row: Readonly<Record<string, SqlValue>> | undefined) => boolean;
  /** Clock rows per page (default 1000). */
  pageSize?: number;
  /**
   * Read the rows under this role and claims (PostgreSQL RLS): a live row the role cannot SELECT
   * is left out with every change of it. Deletions (no row to judge) are delivered.
   */
  rowSecurity?: PgRowSecurity;
}

export interface PgFeedHost {
  meta: string;
  /** Schema of the synced tables. */
  nsp: string;
  tables(): PgTableContext[];
  siteIdOf(c: PgConn, ref: number): Promise<Uint8Array>;
  /** Block-LWW columns (blocks.ts): their block cells join the feed, their whole values never do. */
  marks?(): BlockMarks;
}

/** Col id of a block cell row (its name and value come with the row). */
const BLOCK_COL = -1;

type Key = [dbv: string, seq: string, ti: number, pk: Uint8Array, col: number, name: string];

function pageSql(meta: string, tables: readonly PgTableContext[], filter: (alias: string) => string, blockTables: ReadonlySet<number>, first: boolean, limit: number): string {
  const arms = tables.map((t, i) => {
    const m = metaTable(meta, t.name);
    return `SELECT ${i} AS ti, x.pk, x.col, ''::text COLLATE "C" AS name, NULL::text AS bval, x.col_version, x.db_version, x.seq, x.site, COALESCE(s.col_version, 1) AS cl
      FROM ${m} x LEFT JOIN ${m} s ON s.pk = x.pk AND s.col = 0 WHERE (x.db_version, x.seq) >= ($1::int8, $2::int8)${filter('x')}`;
  });
  // Block cells carry the causal length they were written in (as on SQLite).
  for (const i of blockTables) {
    const t = tables[i] as PgTableContext;
    arms.push(`SELECT ${i} AS ti, b.pk, ${BLOCK_COL} AS col, (b.col || E'\\x1f' || b.pos) COLLATE "C" AS name, b.val AS bval, b.col_version, b.db_version, b.seq, b.site, b.cl
      FROM ${quoteIdent(meta)}.blocks b WHERE b.tbl = ${quoteLiteral(t.name)} AND (b.db_version, b.seq) >= ($1::int8, $2::int8)${filter('b')}`);
  }
  const after = first ? '(db_version, seq) > ($1::int8, $2::int8)' : '(db_version, seq, ti, pk, col, name) > ($1::int8, $2::int8, $3::int, $4::bytea, $5::int, $6::text COLLATE "C")';
  return `SELECT ti, pk, col, col_version::text, db_version::text, seq::text, site::text, cl::text, name, bval FROM (${arms.join(' UNION ALL ')}) u
    WHERE ${after} ORDER BY u.db_version, u.seq, u.ti, u.pk, u.col, u.name LIMIT ${limit}`;
}

function rowObject(t: PgTableContext, pk: readonly SqlValue[], row: readonly unknown[]): Record<string, SqlValue> {
  const o: Record<string, SqlValue> = {};
  t.schema.pkColumns.forEach((k, i) => (o[k.name] = pk[i] ?? null));
  for (const c of t.columns) o[c.name] = fromPg(t.pgColumn.get(c.name) as PgColumn, row[c.ord]);
  return o;
}

/**
 * The base rows a page's clock rows name, in the page's snapshot (and role): one query per table
 * (batch-sql.ts `selectRows`), per row only for a key whose values the set-based query cannot
 * carry. Table index → key hex → row (value columns in `columns` order); absent rows are missing.
 */
async function readRows(c: PgConn, host: PgFeedHost, tables: readonly PgTableContext[], rows: readonly unknown[][]): Promise<Map<number, Map<string, unknown[]>>> {
  const keys = new Map<number, Map<string, unknown[]>>();
  for (const r of rows) {
    const ti = Number(r[0]);
    let m = keys.get(ti);
    if (m === undefined) keys.set(ti, (m = new Map()));
    const pk = r[1] as Uint8Array;
    const k = hexKey(pk);
    if (!m.has(k)) m.set(k, (tables[ti] as PgTableContext).pkParams(decodePk(pk)));
  }
  const out = new Map<number, Map<string, unknown[]>>();
  for (const [ti, m] of keys) {
    const t = tables[ti] as PgTableContext;
    const got = new Map<string, unknown[]>();
    out.set(ti, got);
    const set: [string, unknown[]][] = [];
    for (const [k, params] of m) {
      if (t.schema.pkColumns.every((col, i) => fitsArray(col, params[i]))) set.push([k, params]);
      else {
        const [row] = await c.q(t.sql.selectRow, params);
        if (row !== undefined) got.set(k, row);
      }
    }
    if (set.length === 0) continue;
    const s = batchSql(host.meta, host.nsp, t);
    for (const r of await c.q(s.selectRows, [set.map((_, i) => i), ...keyColumns(t, set.map(([, p]) => p))])) {
      got.set((set[Number(r[0])] as [string, unknown[]])[0], r.slice(1));
    }
  }
  return out;
}

/** Lazily yields changes in (db_version, seq) order. */
export async function* pgChangeFeed(src: ConnSource, host: PgFeedHost, opts: PgFeedOptions = {}): AsyncGenerator<Change> {
  const wanted = opts.tables === undefined ? undefined : new Set(opts.tables.map((t) => t.toLowerCase()));
  const tables = host.tables().filter((t) => wanted === undefined || wanted.has(t.name.toLowerCase()));
  if (tables.length === 0) return;
  const limit = opts.pageSize ?? 1000;
  const filter = (a: string): string => (opts.localOnly ? ` AND ${a}.site = 0` : opts.excludeSiteRef !== undefined ? ` AND ${a}.site <> ${Math.trunc(opts.excludeSiteRef)}` : '');
  const marks = host.marks?.() ?? new Map();
  // Block cells are not part of a local-only feed (the fold reads the whole values of site 0).
  const blockTables = new Set(opts.localOnly ? [] : tables.flatMap((t, i) => ((marks.get(t.name.toLowerCase())?.size ?? 0) > 0 ? [i] : [])));
  const firstSql = pageSql(host.meta, tables, filter, blockTables, true, limit);
  const nextSql = pageSql(host.meta, tables, filter, blockTables, false, limit);
  const after = opts.after ?? { dbVersion: 0, seq: -1 };
  let key: Key | undefined;
  for (;;) {
    const page = await src.use(async (c) => {
      // One snapshot per page: the clock rows and the values read for them agree, whatever merges
      // or other programs commit meanwhile (a later change of a row comes later in the feed).
      await c.q('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      let rows: unknown[][];
      const sites = new Map<number, Uint8Array>();
      try {
        rows = key === undefined ? await c.q(firstSql, [after.dbVersion, after.seq]) : await c.q(nextSql, key);
        // Site ids first, as the connection's user: the rows below may be read under another role.
        for (const r of rows) {
          const ref = Number(r[6]);
          if (!sites.has(ref)) sites.set(ref, await host.siteIdOf(c, ref));
        }
      } catch (e) {
        await c.q('ROLLBACK').catch(() => undefined);
        throw e;
      }
      const rs = opts.rowSecurity;
      if (rs !== undefined) {
        await c.q(`SELECT set_config('request.jwt.claims', $1, true), set_config('request.jwt.claim.sub', $2, true), set_config('request.jwt.claim.role', $3, true)`, [rs.claims, rs.sub, rs.role]);
        await c.q(`SET LOCAL ROLE ${quoteIdent(rs.role)}`);
      }
      const out: Change[] = [];
      try {
        const found = await readRows(c, host, tables, rows);
        let prev: { ti: number; pk: Uint8Array; row: unknown[] | undefined; visible: boolean } | undefined;
        for (const r of rows) {
          const ti = Number(r[0]);
          const t = tables[ti] as PgTableContext;
          const pk = toBytes(r[1]);
          const colId = Number(r[2]);
          const cl = Number(r[7]);
          key = [String(r[4]), String(r[5]), ti, pk, colId, String(r[8])];
          if (prev === undefined || prev.ti !== ti || Buffer.compare(prev.pk, pk) !== 0) {
            const values = decodePk(pk);
            const row = found.get(ti)?.get(hexKey(pk));
            // Under RLS a live row that is not returned is hidden from this role, not deleted.
            const hidden = rs !== undefined && row === undefined && cl % 2 === 1;
            prev = { ti, pk, row, visible: !hidden && (opts.rowFilter === undefined || opts.rowFilter(t.name, values, row === undefined ? undefined : rowObject(t, values, row))) };
          }
          if (!prev.visible) continue;
          let col = RIP_SENTINEL;
          let val: SqlValue = null;
          if (colId === BLOCK_COL) {
            // A block cell of a live row; a deleted (or not yet inserted) row's blocks stay behind.
            if (prev.row === undefined) continue;
            col = String(r[8]);
            val = r[9] === null ? null : String(r[9]);
          } else if (colId !== 0) {
            const vc = t.byId.get(colId);
            if (vc === undefined) continue;
            if (blockTables.has(ti) && isBlockColumn(marks, t.name, vc.name)) continue; // travels as block cells
            col = vc.name;
            val = prev.row === undefined ? null : fromPg(t.pgColumn.get(vc.name) as PgColumn, prev.row[vc.ord]);
          }
          const siteId = sites.get(Number(r[6])) as Uint8Array;
          out.push({ tbl: t.name, pk, col, val, colVersion: Number(r[3]), dbVersion: Number(r[4]), siteId, cl, seq: Number(r[5]) });
        }
        await c.q('COMMIT');
      } catch (e) {
        await c.q('ROLLBACK').catch(() => undefined);
        throw e;
      }
      return { out, full: rows.length === limit };
    });
    yield* page.out;
    if (!page.full) return;
  }
}
