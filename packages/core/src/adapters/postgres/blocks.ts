/**
 * Block-LWW text columns on a PostgreSQL central database (docs/PROTOCOL.md "Block columns"), the
 * same wire behaviour as the SQLite engine's `engine/blocks.ts`: a marked column's text travels as
 * line blocks (`<column>` U+001F position id), LWW per block, NULL = a removed line; each block's
 * clock and value live in `<meta>.blocks`; the text of the live blocks (position ids byte-wise,
 * `COLLATE "C"`, joined by `\n`) is written into the base column so any SQL reader sees the whole
 * value. Writes of the text by other programs (psql, an ORM: site-0 changes of the column's cell
 * clock) are folded into block cells by a line diff in TypeScript, under the clock row lock, before
 * the feed is read and inside every merge of block cells (see `PgSyncEngine` for why not PL/pgSQL).
 *
 * Reused from the SQLite engine: `BLOCK_SEPARATOR` and `positionBetween` (the devices' id scheme).
 */
import { sameBytes } from '../../codec/bytes.ts';
import { decodePk } from '../../codec/pk.ts';
import type { ApplyResult, RejectedRow } from '../../engine/apply.ts';
import { positionBetween } from '../../engine/block-keys.ts';
import { BLOCK_SEPARATOR } from '../../engine/blocks.ts';
import { compareForMerge } from '../../merge/compare.ts';
import type { Change, SqlValue } from '../../types.ts';
import { quoteIdent } from './conn.ts';
import type { PgConn } from './conn.ts';
import type { PgTableContext } from './context.ts';
import { writeExpr } from './introspect.ts';
import type { PgApplyOptions } from './merge.ts';

/** Metadata of block columns (idempotent; part of the engine's base metadata). */
export function blockMetadataSql(meta: string): string {
  const s = quoteIdent(meta);
  return `
CREATE TABLE IF NOT EXISTS ${s}.block_columns (tbl text NOT NULL, col text NOT NULL, PRIMARY KEY (tbl, col));
CREATE TABLE IF NOT EXISTS ${s}.blocks (
  tbl text NOT NULL, pk bytea NOT NULL, col text NOT NULL, pos text COLLATE "C" NOT NULL, val text,
  col_version bigint NOT NULL, db_version bigint NOT NULL, seq bigint NOT NULL, site bigint NOT NULL, cl bigint NOT NULL,
  PRIMARY KEY (tbl, pk, col, pos));
CREATE INDEX IF NOT EXISTS blocks_feed ON ${s}.blocks (tbl, db_version, seq);
-- The local version through which writes of other programs have been folded into blocks.
CREATE TABLE IF NOT EXISTS ${s}.block_state (id int PRIMARY KEY CHECK (id = 1), folded bigint NOT NULL);
INSERT INTO ${s}.block_state (id, folded) VALUES (1, 0) ON CONFLICT DO NOTHING;`;
}

/** lower(table) → lower(column) → declared column name. */
export type BlockMarks = ReadonlyMap<string, ReadonlyMap<string, string>>;

export function blockColumnsOf(marks: BlockMarks, table: string): string[] {
  return [...(marks.get(table.toLowerCase())?.values() ?? [])];
}

export function isBlockColumn(marks: BlockMarks, table: string, column: string): boolean {
  return marks.get(table.toLowerCase())?.has(column.toLowerCase()) === true;
}

/** The column and position id of a block cell name of a marked column, or undefined. */
export function parseBlockCell(marks: BlockMarks, table: string, cell: string): { column: string; pos: string } | undefined {
  const at = cell.indexOf(BLOCK_SEPARATOR);
  if (at <= 0 || at === cell.length - 1) return undefined;
  const column = marks.get(table.toLowerCase())?.get(cell.slice(0, at).toLowerCase());
  return column === undefined ? undefined : { column, pos: cell.slice(at + 1) };
}

/** Byte-wise order of position ids (as `COLLATE "C"` orders them). */
const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

interface StoredBlock {
  val: string | null;
  cv: number;
  cl: number;
}

const blockText = (v: SqlValue): string | null => (v === null ? null : typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v));

/** Text of the live blocks in position order. */
function materialise(blocks: ReadonlyMap<string, StoredBlock>): string {
  return [...blocks.entries()].filter(([, b]) => b.val !== null).sort(([a], [b]) => byBytes(a, b)).map(([, b]) => b.val).join('\n');
}

/** Block writes of one (table, pk, column), batched into one statement. */
class BlockWriter {
  readonly pos: string[] = [];
  readonly val: (string | null)[] = [];
  readonly cv: string[] = [];
  readonly seq: string[] = [];
  readonly site: string[] = [];
  readonly cl: string[] = [];

  add(pos: string, val: string | null, cv: number, seq: number, site: number, cl: number): void {
    this.pos.push(pos);
    this.val.push(val);
    this.cv.push(String(cv));
    this.seq.push(String(seq));
    this.site.push(String(site));
    this.cl.push(String(cl));
  }

  async flush(c: PgConn, meta: string, tbl: string, pk: Uint8Array, col: string, version: number): Promise<void> {
    if (this.pos.length === 0) return;
    await c.q(
      `INSERT INTO ${quoteIdent(meta)}.blocks (tbl, pk, col, pos, val, col_version, db_version, seq, site, cl)
       SELECT $1, $2, $3, u.pos, u.val, u.cv, $4::int8, u.seq, u.site, u.cl
         FROM unnest($5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[]) AS u(pos, val, cv, seq, site, cl)
       ON CONFLICT (tbl, pk, col, pos) DO UPDATE SET val = EXCLUDED.val, col_version = EXCLUDED.col_version,
         db_version = EXCLUDED.db_version, seq = EXCLUDED.seq, site = EXCLUDED.site, cl = EXCLUDED.cl`,
      [tbl, Buffer.from(pk), col, String(version), this.pos, this.val, this.cv, this.seq, this.site, this.cl],
    );
  }
}

async function readBlocks(c: PgConn, meta: string, tbl: string, pk: Uint8Array, col: string): Promise<Map<string, StoredBlock>> {
  const rows = await c.q(`SELECT pos, val, col_version::text, cl::text FROM ${quoteIdent(meta)}.blocks WHERE tbl = $1 AND pk = $2 AND col = $3`, [tbl, Buffer.from(pk), col]);
  return new Map(rows.map((r) => [String(r[0]), { val: r[1] === null ? null : String(r[1]), cv: Number(r[2]), cl: Number(r[3]) }]));
}

const dropOlderSql = (meta: string): string => `DELETE FROM ${quoteIdent(meta)}.blocks WHERE tbl = $1 AND pk = $2 AND col = $3 AND cl < $4::int8`;

/** `UPDATE <table> SET <cols> WHERE <pk> RETURNING 1` for the materialised texts. */
function updateTextSql(nsp: string, t: PgTableContext, cols: readonly string[]): string {
  const np = t.schema.pkColumns.length;
  const where = t.schema.pkColumns.map((k, i) => `${quoteIdent(k.name)} = ${writeExpr(k, `$${i + 1}`)}`).join(' AND ');
  const set = cols.map((c, i) => `${quoteIdent(c)} = ${writeExpr(t.pgColumn.get(c) as NonNullable<ReturnType<typeof t.pgColumn.get>>, `$${np + i + 1}`)}`).join(', ');
  return `UPDATE ${quoteIdent(nsp)}.${quoteIdent(t.name)} SET ${set} WHERE ${where} RETURNING 1`;
}

export interface PgBlockHost {
  meta: string;
  nsp: string;
  marks: BlockMarks;
  table(name: string): PgTableContext | undefined;
  siteRef(c: PgConn, siteId: Uint8Array): Promise<number>;
}

/** SQLSTATEs that refuse one row (RLS, integrity, data), as in merge.ts. */
function rejectsRow(e: unknown): e is Error & { code: string } {
  const code = e instanceof Error ? Reflect.get(e, 'code') : undefined;
  return typeof code === 'string' && (code === '42501' || /^2[23][0-9A-Z]{3}$/.test(code));
}

const SAVEPOINT = 'offsync_blocks_row';

/**
 * Merges block cells after the batch's other changes (same transaction, triggers silenced), at
 * one new local version `clock + 1`: LWW per block (a block of an older life of the row loses, the
 * first block of a newer life drops the older life's blocks), then the text of every touched
 * (row, column) is written into the base table (a row that does not exist yet keeps its blocks
 * for a later edit). Under `rejectRows` each row's text write is isolated: refused (RLS, a
 * constraint) it is rolled back alone and listed, without compensation (as on SQLite).
 */
export async function pgMergeBlocks(c: PgConn, host: PgBlockHost, clock: number, blocks: readonly Change[], opts: PgApplyOptions, result: ApplyResult): Promise<ApplyResult> {
  if (blocks.length === 0) return result;
  const version = clock + 1;
  let seq = 0;
  let applied = 0;
  const tables = new Set(result.tables);
  const rejected: RejectedRow[] = [...result.rejected];
  const rows: { t: PgTableContext; pk: Uint8Array; changes: Change[] }[] = [];
  for (const ch of blocks) {
    const t = host.table(ch.tbl);
    if (t === undefined) continue; // only marked columns of synced tables are split off
    const row = rows.find((r) => r.t === t && sameBytes(r.pk, ch.pk));
    if (row === undefined) rows.push({ t, pk: ch.pk, changes: [ch] });
    else row.changes.push(ch);
  }
  const isolate = opts.rejectRows === true;
  const rs = opts.rowSecurity;
  for (const { t, pk, changes } of rows) {
    const pkValues = decodePk(pk);
    const mark = { applied, seq };
    if (isolate) await c.q(`SAVEPOINT ${SAVEPOINT}`);
    const values: Record<string, SqlValue> = {};
    try {
      const byColumn = new Map<string, Change[]>();
      for (const ch of changes) {
        const cell = parseBlockCell(host.marks, t.name, ch.col);
        if (cell === undefined) continue;
        const list = byColumn.get(cell.column) ?? [];
        list.push(ch);
        byColumn.set(cell.column, list);
      }
      for (const [column, list] of byColumn) {
        const stored = await readBlocks(c, host.meta, t.name, pk, column);
        let life = 0;
        for (const b of stored.values()) life = Math.max(life, b.cl);
        let dropBelow = 0;
        const writer = new BlockWriter();
        const written = new Map<string, number>();
        for (const ch of list) {
          const pos = (parseBlockCell(host.marks, t.name, ch.col) as { pos: string }).pos;
          if (ch.cl < life) continue;
          if (ch.cl > life) {
            if (life > 0) {
              dropBelow = ch.cl;
              for (const [p, b] of stored) if (b.cl < ch.cl) stored.delete(p);
            }
            life = ch.cl;
          }
          const cur = stored.get(pos);
          const val = blockText(ch.val);
          const wins = cur === undefined || ch.colVersion > cur.cv || (ch.colVersion === cur.cv && compareForMerge(val, cur.val) > 0);
          if (!wins) continue;
          stored.set(pos, { val, cv: ch.colVersion, cl: ch.cl });
          const site = await host.siteRef(c, ch.siteId);
          const at = written.get(pos);
          if (at !== undefined) {
            // The same block twice in one batch: the later winner replaces the earlier write.
            writer.val[at] = val;
            writer.cv[at] = String(ch.colVersion);
            writer.site[at] = String(site);
            writer.cl[at] = String(ch.cl);
          } else {
            written.set(pos, writer.pos.length);
            writer.add(pos, val, ch.colVersion, seq++, site, ch.cl);
          }
          applied++;
        }
        if (dropBelow > 0) await c.q(dropOlderSql(host.meta), [t.name, Buffer.from(pk), column, String(dropBelow)]);
        await writer.flush(c, host.meta, t.name, pk, column, version);
        if (writer.pos.length > 0) values[column] = materialise(stored);
      }
      const cols = Object.keys(values);
      if (cols.length > 0) {
        // As the owner: the merge's own read of whether the row exists (no row yet: blocks wait).
        const [exists] = await c.q(t.sql.selectRow, t.pkParams(pkValues));
        if (exists !== undefined) {
          opts.authorize?.({ table: t.name, kind: 'upsert', pk: pkValues, values });
          const params = [...t.pkParams(pkValues), ...cols.map((col) => values[col] ?? null)];
          const sql = updateTextSql(host.nsp, t, cols);
          let done: unknown[][];
          if (rs === undefined) done = await c.q(sql, params);
          else {
            await c.q(`SET LOCAL ROLE ${quoteIdent(rs.role)}`);
            done = await c.q(sql, params);
            await c.q('RESET ROLE');
          }
          // Under RLS an UPDATE skips rows its USING clause hides: a live row left as it was is a refusal.
          if (done.length === 0) throw Object.assign(new Error(`row-level security refused the update of a row of ${t.name}`), { code: '42501' });
          tables.add(t.name);
        }
      }
      if (isolate) await c.q(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    } catch (e) {
      if (!isolate || !rejectsRow(e)) throw e;
      await c.q(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      await c.q(`RELEASE SAVEPOINT ${SAVEPOINT}`);
      if (rs !== undefined) await c.q('RESET ROLE');
      applied = mark.applied;
      seq = mark.seq;
      rejected.push({ table: t.name, pk, pkValues, operation: 'UPDATE', code: e.code === '42501' ? 'rls_denied' : 'constraint_violation', reason: e.message, policy: null, values });
    }
  }
  return {
    ...result,
    received: result.received + blocks.length,
    applied: result.applied + applied,
    tables: [...tables],
    dbVersion: seq > 0 ? Math.max(result.dbVersion, version) : result.dbVersion,
    rejected,
  };
}

/** One row whose text a fold looks at: the row's causal length and its current text. */
export interface FoldTarget {
  t: PgTableContext;
  pk: Uint8Array;
  column: string;
  text: string | null;
  cl: number;
}

/**
 * Folds texts written outside block merges into block cells at local version `version` (site 0):
 * the text is diffed line by line against the row's live blocks; kept lines keep their blocks,
 * removed ones become NULL (col_version + 1), new ones get ids between their kept neighbours,
 * never reusing an id (not even a removed block's). Returns the number of block cells written.
 */
export async function pgFoldTexts(c: PgConn, meta: string, targets: readonly FoldTarget[], version: number, firstSeq = 0): Promise<number> {
  let seq = firstSeq;
  for (const { t, pk, column, text, cl } of targets) {
    await c.q(dropOlderSql(meta), [t.name, Buffer.from(pk), column, String(cl)]);
    const stored = await readBlocks(c, meta, t.name, pk, column);
    const live = [...stored.entries()].filter(([, b]) => b.val !== null).sort(([a], [b]) => byBytes(a, b));
    const body = text ?? '';
    const lines = body === '' && live.length === 0 ? [] : body.split('\n');
    const keep = keptLines(live.map(([, b]) => b.val as string), lines);
    const writer = new BlockWriter();
    live.forEach(([pos, b], i) => {
      if (keep.old[i] === undefined) writer.add(pos, null, b.cv + 1, seq++, 0, cl);
    });
    let prev: string | null = null;
    for (let j = 0; j < lines.length; j++) {
      const i = keep.new[j];
      if (i !== undefined) {
        prev = (live[i] as [string, StoredBlock])[0];
        continue;
      }
      let k = j + 1;
      while (k < lines.length && keep.new[k] === undefined) k++;
      const nextIdx = k < lines.length ? keep.new[k] : undefined;
      const next = nextIdx === undefined ? null : (live[nextIdx] as [string, StoredBlock])[0];
      let pos = positionBetween(prev, next);
      while (stored.has(pos)) pos = positionBetween(pos, next);
      stored.set(pos, { val: lines[j] ?? '', cv: 1, cl });
      writer.add(pos, lines[j] ?? '', 1, seq++, 0, cl);
      prev = pos;
    }
    await writer.flush(c, meta, t.name, pk, column, version);
  }
  return seq - firstSeq;
}

/**
 * A longest common subsequence of two line lists after their common prefix and suffix:
 * `old[i]` = the new index kept for old line i, `new[j]` = the old index for new line j. Beyond
 * 4M cells of work only the prefix and suffix are kept (the middle is replaced).
 *
 * The SQLite engine has the same contract in `engine/blocks.ts` (`commonLines`, not exported):
 * this is a stand-in until it is, with the same tie-breaking so both engines fold a text into the
 * same blocks (core/test/postgres-blocks.test.ts compares them).
 */
function keptLines(a: readonly string[], b: readonly string[]): { old: (number | undefined)[]; new: (number | undefined)[] } {
  const oldMap: (number | undefined)[] = new Array(a.length);
  const newMap: (number | undefined)[] = new Array(b.length);
  const pair = (i: number, j: number): void => {
    oldMap[i] = j;
    newMap[j] = i;
  };
  let lo = 0;
  while (lo < a.length && lo < b.length && a[lo] === b[lo]) pair(lo, lo++);
  let ha = a.length;
  let hb = b.length;
  while (ha > lo && hb > lo && a[ha - 1] === b[hb - 1]) pair(--ha, --hb);
  const n = ha - lo;
  const m = hb - lo;
  if (n === 0 || m === 0 || n * m > 4_000_000) return { old: oldMap, new: newMap };
  const w = m + 1;
  const len = new Uint32Array((n + 1) * w); // len[i*w+j]: LCS of a[lo+i..ha) and b[lo+j..hb)
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      len[i * w + j] = a[lo + i] === b[lo + j] ? (len[(i + 1) * w + j + 1] as number) + 1 : Math.max(len[(i + 1) * w + j] as number, len[i * w + j + 1] as number);
    }
  }
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[lo + i] === b[lo + j]) pair(lo + i++, lo + j++);
    else if ((len[(i + 1) * w + j] as number) >= (len[i * w + j + 1] as number)) i++;
    else j++;
  }
  return { old: oldMap, new: newMap };
}
