/**
 * Block-level LWW text columns (docs/PROTOCOL.md "Block columns"), as SQLite Sync 1.1.x does
 * them after `cloudsync_set_column(t, c, 'algo', 'block')`: the text of column `c` is a sequence
 * of line blocks; each block travels as its own cell named `c` + U+001F + a position id, LWW per
 * block (the row's causal length, then col_version, then the value order). A NULL block value is a removed line, `''` an empty
 * line. The text is the live blocks' values, ordered by position id byte-wise, joined by `\n`.
 *
 * Server side (minimum): the columns an operator marked block (`offsync_block_columns`) take
 * block cells; each block's clock and value live in `offsync_blocks`; the merged text is written
 * into the central table (so any SQL reader sees the whole value) without a clock of its own; the
 * feed sends the block cells, never the column as a whole (a device would take the text but not
 * its blocks). This database's own writes of the text (an UPDATE by another program, site 0) are
 * folded into block cells before a feed is read ({@link BlockColumns.foldLocalWrites}: a line diff
 * against the live blocks). Not done yet: RLS compensation of a refused block edit (a refused row
 * is rejected, the device keeps its lines).
 */
import { decodePk } from '../codec/pk.ts';
import { compareForMerge } from '../merge/compare.ts';
import type { SqlDriver } from '../storage/driver.ts';
import type { Change, SqlValue } from '../types.ts';
import { toHex } from '../clock/site-id.ts';
import type { ApplyOptions, ApplyResult, RejectedRow } from './apply.ts';
import type { RowObject } from './tombstones.ts';
import type { TableContext } from './table-context.ts';
import { positionBetween } from './block-keys.ts';

export const BLOCK_SEPARATOR = '\u001f';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS offsync_block_columns (tbl TEXT NOT NULL COLLATE NOCASE, col TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (tbl, col));
CREATE TABLE IF NOT EXISTS offsync_blocks (
  tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT NOT NULL, pos TEXT NOT NULL, val ANY,
  col_version INTEGER NOT NULL, db_version INTEGER NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL, cl INTEGER NOT NULL,
  PRIMARY KEY (tbl, pk, col, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS offsync_blocks_feed ON offsync_blocks (tbl, db_version, seq);
`;

export interface BlockHost {
  table(name: string): TableContext | undefined;
  siteRef(siteId: Uint8Array): number;
  /** The current local clock. */
  clock(): number;
  setClock(v: number): void;
  savepoint<T>(fn: () => T): T;
}

/** One block cell of the feed: pk, cell name, value, col_version, db_version, seq, site ref, cl. */
export type BlockItem = [pk: Uint8Array, name: string, val: SqlValue, cv: number, dbv: number, seq: number, site: number, cl: number];

export class BlockColumns {
  readonly #driver: SqlDriver;
  /** lower(table) → lower(column) → the column's declared name. */
  #cols = new Map<string, Map<string, string>>();

  constructor(driver: SqlDriver) {
    this.#driver = driver;
    this.reload();
  }

  /** Re-reads the marked columns (none when the table does not exist yet). */
  reload(): void {
    const next = new Map<string, Map<string, string>>();
    const exists = this.#driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offsync_block_columns'").getRaw() !== undefined;
    if (exists) {
      for (const r of this.#driver.prepare('SELECT tbl, col FROM offsync_block_columns').all()) {
        const t = String(r['tbl']).toLowerCase();
        let m = next.get(t);
        if (m === undefined) next.set(t, (m = new Map()));
        m.set(String(r['col']).toLowerCase(), String(r['col']));
      }
    }
    this.#cols = next;
  }

  get any(): boolean {
    return this.#cols.size > 0;
  }

  /** Marks `column` of `table` block-LWW (idempotent). */
  mark(table: string, column: string): void {
    this.#driver.exec(SCHEMA);
    this.#driver.prepare('INSERT OR IGNORE INTO offsync_block_columns (tbl, col) VALUES (?, ?)').run(table, column);
    this.reload();
  }

  /** The marked columns of `table` (declared names). */
  columnsOf(table: string): string[] {
    return [...(this.#cols.get(table.toLowerCase())?.values() ?? [])];
  }

  isBlockColumn(table: string, column: string): boolean {
    return this.#cols.get(table.toLowerCase())?.has(column.toLowerCase()) === true;
  }

  /** The column and position id of a block cell name of `table`, or undefined. */
  parse(table: string, cell: string): { column: string; pos: string } | undefined {
    const at = cell.indexOf(BLOCK_SEPARATOR);
    if (at <= 0 || at === cell.length - 1) return undefined;
    const column = this.#cols.get(table.toLowerCase())?.get(cell.slice(0, at).toLowerCase());
    return column === undefined ? undefined : { column, pos: cell.slice(at + 1) };
  }

  /** Splits a batch into ordinary changes and block cells (of marked columns). */
  split(changes: readonly Change[]): { rest: Change[]; blocks: Change[] } {
    if (!this.any) return { rest: changes as Change[], blocks: [] };
    const rest: Change[] = [];
    const blocks: Change[] = [];
    for (const ch of changes) (ch.col.includes(BLOCK_SEPARATOR) && this.parse(ch.tbl, ch.col) !== undefined ? blocks : rest).push(ch);
    return { rest, blocks };
  }

  /**
   * Merges block cells after the ordinary merge of the same batch (same transaction, triggers
   * off): LWW per block, then the text of every touched (row, column) is rewritten. Under a row
   * judge (RLS), each row's block edit is judged as an UPDATE on whole rows and rolled back alone
   * when refused. Adds its counts to `result`.
   */
  merge(host: BlockHost, blocks: readonly Change[], opts: ApplyOptions, result: ApplyResult): ApplyResult {
    if (blocks.length === 0) return result;
    const d = this.#driver;
    const get = d.prepare('SELECT col_version, val FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ? AND pos = ?');
    const life = d.prepare('SELECT max(cl) FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ?');
    const dropOlder = d.prepare('DELETE FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ? AND cl < ?');
    const put = d.prepare(
      'INSERT OR REPLACE INTO offsync_blocks (tbl, pk, col, pos, val, col_version, db_version, seq, site, cl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const live = d.prepare('SELECT val FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ? AND val IS NOT NULL ORDER BY pos');
    const version = host.clock() + 1;
    let seq = 0;
    let applied = 0;
    const tables = new Set(result.tables);
    const rejected: RejectedRow[] = [...result.rejected];
    // Rows in order of first appearance; a row's blocks stay together.
    const rows = new Map<string, { t: TableContext; pk: Uint8Array; changes: Change[] }>();
    for (const ch of blocks) {
      const t = host.table(ch.tbl);
      if (t === undefined) continue; // parse() only admits marked tables, which are synced
      const key = `${t.name.toLowerCase()}\u0000${toHex(ch.pk)}`;
      const row = rows.get(key);
      if (row === undefined) rows.set(key, { t, pk: ch.pk, changes: [ch] });
      else row.changes.push(ch);
    }
    for (const { t, pk, changes } of rows.values()) {
      const pkValues = decodePk(pk);
      const readRow = (): RowObject | undefined => {
        const r = t.stmts.selectRow.getRaw(...pkValues);
        if (r === undefined) return undefined;
        const o: RowObject = {};
        t.schema.pkColumns.forEach((k, i) => (o[k.name] = pkValues[i] ?? null));
        t.columns.forEach((c, i) => (o[c.name] = r[i] ?? null));
        return o;
      };
      const before = readRow();
      const mark = { applied, seq };
      try {
        host.savepoint(() => {
          const touched = new Set<string>();
          for (const ch of changes) {
            const cell = this.parse(t.name, ch.col);
            if (cell === undefined) continue;
            // A block of an older life of the row loses; the first block of a newer life drops the
            // older life's blocks (a re-inserted row starts again at a0 with col_version 1).
            const cl = Number(life.getRaw(t.name, pk, cell.column)?.[0] ?? 0);
            if (ch.cl < cl) continue;
            if (ch.cl > cl && cl > 0) dropOlder.run(t.name, pk, cell.column, BigInt(ch.cl));
            const stored = get.getRaw(t.name, pk, cell.column, cell.pos);
            const wins = stored === undefined || ch.colVersion > Number(stored[0]) || (ch.colVersion === Number(stored[0]) && compareForMerge(ch.val, (stored[1] ?? null) as SqlValue) > 0);
            if (!wins) continue;
            put.run(t.name, pk, cell.column, cell.pos, ch.val, BigInt(ch.colVersion), BigInt(version), BigInt(seq++), BigInt(host.siteRef(ch.siteId)), BigInt(ch.cl));
            touched.add(cell.column);
            applied++;
          }
          if (touched.size === 0 || before === undefined) return; // no row (yet): the blocks wait in offsync_blocks
          const values: Record<string, SqlValue> = {};
          for (const col of touched) values[col] = [...live.iterateRaw(t.name, pk, col)].map((r) => String(r[0])).join('\n');
          const after = { ...before, ...values };
          const verdict = opts.judge?.({ table: t.name, pk, pkValues, operation: 'UPDATE', old: before, new: after });
          if (verdict !== undefined) throw new BlockRowRejected(verdict.code, verdict.reason, verdict.policy ?? null, values);
          opts.authorize?.({ table: t.name, kind: 'upsert', pk: pkValues, values });
          const cols = Object.keys(values);
          t.upsertColumns(cols).run(...pkValues, ...cols.map((c) => values[c] ?? null));
          tables.add(t.name);
        });
      } catch (e) {
        if (!(e instanceof BlockRowRejected)) throw e;
        applied = mark.applied;
        seq = mark.seq;
        rejected.push({ table: t.name, pk, pkValues, operation: 'UPDATE', code: e.code, reason: e.reason, policy: e.policy, values: e.values });
      }
    }
    if (seq > 0) host.setClock(version);
    return {
      ...result,
      received: result.received + blocks.length,
      applied: result.applied + applied,
      tables: [...tables],
      last: result.last ?? (() => { const l = blocks[blocks.length - 1] as Change; return { dbVersion: l.dbVersion, seq: l.seq }; })(),
      dbVersion: seq > 0 ? Math.max(result.dbVersion, version) : result.dbVersion,
      rejected,
    };
  }

  /**
   * Folds this database's own writes of block columns (`local`: site-0 changes after the last
   * fold, as the feed gives them, whole values) into block cells: the new text is diffed line by
   * line against the row's live blocks (longest common subsequence); kept lines keep their
   * blocks, removed ones become NULL (col_version + 1), new ones get position ids between their
   * neighbours, all at one new local version. Returns the version used, or undefined.
   */
  foldLocalWrites(host: BlockHost, local: Iterable<Change>): number | undefined {
    const latest = new Map<string, Change>();
    for (const ch of local) {
      if (!this.isBlockColumn(ch.tbl, ch.col)) continue;
      latest.set(`${ch.tbl.toLowerCase()}\u0000${toHex(ch.pk)}\u0000${ch.col.toLowerCase()}`, ch);
    }
    if (latest.size === 0) return undefined;
    const d = this.#driver;
    const rows = d.prepare('SELECT pos, val, col_version, cl FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ? ORDER BY pos');
    const put = d.prepare(
      'INSERT OR REPLACE INTO offsync_blocks (tbl, pk, col, pos, val, col_version, db_version, seq, site, cl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)',
    );
    const dropOlder = d.prepare('DELETE FROM offsync_blocks WHERE tbl = ? AND pk = ? AND col = ? AND cl < ?');
    const version = host.clock() + 1;
    let seq = 0;
    for (const ch of latest.values()) {
      const t = host.table(ch.tbl);
      const column = this.#cols.get(ch.tbl.toLowerCase())?.get(ch.col.toLowerCase());
      if (t === undefined || column === undefined) continue;
      dropOlder.run(t.name, ch.pk, column, BigInt(ch.cl));
      const all = [...rows.iterateRaw(t.name, ch.pk, column)].map((r) => ({ pos: String(r[0]), val: r[1] as SqlValue, cv: Number(r[2]) }));
      const live = all.filter((b) => b.val !== null);
      const text = ch.val === null ? '' : typeof ch.val === 'string' ? ch.val : String(ch.val);
      const lines = text === '' && live.length === 0 ? [] : text.split('\n');
      const keep = commonLines(live.map((b) => String(b.val)), lines);
      const taken = new Set(all.map((b) => b.pos));
      // Removed lines.
      live.forEach((b, i) => {
        if (keep.old[i] === undefined) put.run(t.name, ch.pk, column, b.pos, null, BigInt(b.cv + 1), BigInt(version), BigInt(seq++), BigInt(ch.cl));
      });
      // New lines, placed between the kept blocks around them.
      let prev: string | null = null;
      for (let j = 0; j < lines.length; j++) {
        const i = keep.new[j];
        if (i !== undefined) {
          prev = (live[i] as { pos: string }).pos;
          continue;
        }
        let k = j + 1;
        while (k < lines.length && keep.new[k] === undefined) k++;
        const nextIdx = k < lines.length ? keep.new[k] : undefined;
        const next = nextIdx === undefined ? null : (live[nextIdx] as { pos: string }).pos;
        let pos = positionBetween(prev, next);
        while (taken.has(pos)) pos = positionBetween(pos, next); // never reuse an id, even a removed one's
        taken.add(pos);
        put.run(t.name, ch.pk, column, pos, lines[j] ?? '', 1n, BigInt(version), BigInt(seq++), BigInt(ch.cl));
        prev = pos;
      }
    }
    if (seq === 0) return undefined;
    host.setClock(version);
    return version;
  }

  /** Block cells of `table` after a cursor, in (db_version, seq) order. */
  *feed(table: string, after: { dbVersion: number; seq: number }, excludeSiteRef?: number): Generator<BlockItem> {
    if (this.columnsOf(table).length === 0) return;
    const sql =
      'SELECT pk, col, pos, val, col_version, db_version, seq, site, cl FROM offsync_blocks WHERE tbl = ? AND (db_version > ? OR (db_version = ? AND seq > ?))' +
      (excludeSiteRef === undefined ? '' : ' AND site <> ?') +
      ' ORDER BY db_version, seq';
    const args: SqlValue[] = [table, BigInt(after.dbVersion), BigInt(after.dbVersion), BigInt(after.seq)];
    if (excludeSiteRef !== undefined) args.push(BigInt(excludeSiteRef));
    for (const r of this.#driver.prepare(sql).iterateRaw(...args)) {
      yield [r[0] as Uint8Array, `${String(r[1])}${BLOCK_SEPARATOR}${String(r[2])}`, (r[3] ?? null) as SqlValue, Number(r[4]), Number(r[5]), Number(r[6]), Number(r[7]), Number(r[8])];
    }
  }
}

class BlockRowRejected extends Error {
  constructor(
    readonly code: RejectedRow['code'],
    readonly reason: string,
    readonly policy: string | null,
    readonly values: Record<string, SqlValue>,
  ) {
    super(reason);
  }
}

/**
 * A longest common subsequence of two line lists: `old[i]` = the new index kept for old line i,
 * `new[j]` = the old index for new line j. Beyond 4M cells of work, only a common prefix and
 * suffix are kept (everything between is replaced).
 */
function commonLines(a: readonly string[], b: readonly string[]): { old: (number | undefined)[]; new: (number | undefined)[] } {
  const oldMap: (number | undefined)[] = new Array(a.length);
  const newMap: (number | undefined)[] = new Array(b.length);
  let lo = 0;
  while (lo < a.length && lo < b.length && a[lo] === b[lo]) {
    oldMap[lo] = lo;
    newMap[lo] = lo;
    lo++;
  }
  let ha = a.length;
  let hb = b.length;
  while (ha > lo && hb > lo && a[ha - 1] === b[hb - 1]) {
    ha--;
    hb--;
    oldMap[ha] = hb;
    newMap[hb] = ha;
  }
  const n = ha - lo;
  const m = hb - lo;
  if (n === 0 || m === 0 || n * m > 4_000_000) return { old: oldMap, new: newMap };
  // dp[i][j] = LCS length of a[lo+i..ha) and b[lo+j..hb).
  const w = m + 1;
  const dp = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i * w + j] = a[lo + i] === b[lo + j] ? (dp[(i + 1) * w + j + 1] as number) + 1 : Math.max(dp[(i + 1) * w + j] as number, dp[i * w + j + 1] as number);
    }
  }
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[lo + i] === b[lo + j]) {
      oldMap[lo + i] = lo + j;
      newMap[lo + j] = lo + i;
      i++;
      j++;
    } else if ((dp[(i + 1) * w + j] as number) >= (dp[i * w + j + 1] as number)) i++;
    else j++;
  }
  return { old: oldMap, new: newMap };
}
