/**
 * Tombstone compaction and the resync horizon (docs/PROTOCOL.md "Compaction and the resync
 * horizon").
 *
 * `compactMetadata(upTo)` forgets, in one transaction, what no device can need any more once
 * every device has acknowledged (downloaded) every version ≤ upTo:
 *
 * - deleted rows whose deletion (the even sentinel's db_version) is ≤ upTo: their row record,
 *   any cell clock still kept for them, their block cells, their last values and compensation
 *   marks (`offsync_tombstones`) and their prior values (`offsync_prior`);
 * - removals addressed to one principal (`offsync_evictions`) at versions ≤ upTo.
 *
 * Why a late change still merges exactly as with the metadata present (§P5 causal lengths): a
 * device that acknowledged version v ≥ the deletion's merged that deletion (causal length c,
 * even) into its own clocks — the sentinel holds c and the key's cell clocks were dropped — so
 * every change it builds afterwards for that key carries a causal length > c (a re-insert: c + 1)
 * or is that same deletion (c, sent by nobody but its origin, which had already uploaded it).
 * Against an unknown row a change with cl > c does exactly what it does against the tombstone c:
 * a resurrection (`decideRow` resurrect / resurrectThenWin), the same cells winning. What can no
 * longer be answered is a change of an OLDER life (cl < c) from a device that had not seen the
 * deletion: that is a device below the floor, which the server tells to resync instead
 * ({@link assertFeedAbove}, and the server refuses its uploads the same way). Compaction is a
 * central (server) operation: a device never compacts, since it cannot know what every other
 * device acknowledged.
 *
 * **Re-inserted forgotten keys.** A device that downloaded from 0 after a compaction does not
 * know a forgotten tombstone: if it inserts that key again it writes causal length 1 (or any
 * cl ≤ the tombstone's), which devices still holding the tombstone c ignore (cl ≤ c). So every
 * compaction records, per table, the highest causal length it forgot — of deleted rows and of
 * removals addressed to one principal — as M (`offsync_settings` `compacted_cl:<lower(table)>`,
 * only grows), and the central merge ({@link liftCompactedKeys}, called by the engine's
 * `applyChanges` inside the merge's transaction, before the merge) **lifts** an incoming row when
 * its key has NO metadata and the highest causal length of its changes in the batch is ≤ M: every
 * change of the row moves up by S = the smallest even number ≥ M (parity and order kept, so an
 * insert at 1 lands on the smallest odd causal length above M), and is recorded as this
 * database's own write (its site id, a version of its own), as compensations are. Every device —
 * the one that re-inserted the key included, whose feed leaves out only its own site — then
 * receives the row at a causal length above any tombstone it may hold, and converges.
 *
 * The lifted key is remembered with its M (`offsync_lifted (tbl, pk, base)`): later rows of that
 * key whose highest causal length is ≤ base — a concurrent insert of the key by another device,
 * or the origin's own edits before it has downloaded the lifted row — are shifted the same way
 * (and stamped as this database's), so they meet the lifted life as the same life instead of
 * being ignored as an older one. Changes above base are merged as they are. A compaction drops
 * the entries of keys whose row record is ≤ its `upTo` (every device then holds the lifted life,
 * and a download from 0 sends it) or gone. Devices never hold an M (they never compact), so their
 * merges are unchanged.
 *
 * **Only forgotten keys are lifted.** Each compaction run also adds every key it forgets (deleted
 * rows and removals addressed to one principal) to a Bloom filter of its own, sized for its keys
 * at 10 bits per key, k = 7 (`offsync_compacted_keys (tbl, gen, bits, k, n)`, {@link BloomFilter}),
 * and an unknown key is lifted only when some filter of its table may contain it. A filter has no
 * false negatives, so every forgotten key is still lifted; a brand-new key is merged as it is
 * (the origin's causal length and site, nothing sent back to it) except for the ~1% false
 * positives, which are lifted harmlessly as before. A table compacted before its keys were
 * recorded, or whose filters went with its cleanup, holds (or is read as) a match-all row
 * (k = 0): every unknown key ≤ its M is lifted, as before filters existed.
 *
 * The floor (`offsync_settings.compacted_upto`) only grows. Feeds whose cursor has not seen
 * everything ≤ the floor are refused with RESYNC_REQUIRED, except a cursor at 0 (a fresh device:
 * the full state is exact without the forgotten tombstones) and the database's own changes
 * (`localOnly`, what a device uploads).
 */
import { bytesKey } from '../codec/bytes.ts';
import { BloomFilter } from './bloom.ts';
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { SqlDriver, SqlStatement } from '../storage/driver.ts';
import type { Change } from '../types.ts';
import type { Cursor } from './extract.ts';
import { BARE_CL, cellsTableName, quoteIdent, rowsTableName } from './sql-gen.ts';
import type { TableContext } from './table-context.ts';

/** `offsync_settings` key of the compaction floor. */
export const COMPACTED_UPTO_SETTING = 'compacted_upto';

export interface CompactionResult {
  /** The floor after this compaction (≥ the one before; unchanged when `upTo` was below it). */
  floor: number;
  /** Deleted rows whose records were removed. */
  rows: number;
  /** Cell clocks removed (explicit cells and block cells of those rows). */
  cells: number;
  /** `offsync_tombstones` entries (last values, compensation marks) removed. */
  tombstones: number;
  /** `offsync_evictions` entries (removals addressed to one principal) removed. */
  evictions: number;
  /** `offsync_prior` entries (values before a visibility change) of removed rows. */
  priors: number;
  /** `offsync_lifted` entries (keys lifted above compacted tombstones) every device has now seen. */
  lifted: number;
}

/** `offsync_settings` key prefix of a table's highest compacted causal length (`compacted_cl:<lower(table)>`). */
export const COMPACTED_CL_PREFIX = 'compacted_cl:';

/** Per table (lower-case name), the highest causal length compaction forgot; empty when never compacted. */
export function compactedCausalLengths(driver: SqlDriver): Map<string, number> {
  const out = new Map<string, number>();
  // A range over the prefix (':' + 1 = ';'), so the key index answers it.
  for (const r of driver.prepare('SELECT key, value FROM offsync_settings WHERE key >= ? AND key < ?').iterateRaw(COMPACTED_CL_PREFIX, 'compacted_cl;')) {
    out.set(String(r[0]).slice(COMPACTED_CL_PREFIX.length), Number(r[1]));
  }
  return out;
}

/** The shift of a lifted row: the smallest even number ≥ `max` (so 1 + shift is the smallest odd above it). */
export function liftShift(max: number): number {
  return max + (max % 2);
}

const LIFTED_SQL = 'CREATE TABLE IF NOT EXISTS offsync_lifted (tbl TEXT NOT NULL, pk BLOB NOT NULL, base INTEGER NOT NULL, PRIMARY KEY (tbl, pk)) WITHOUT ROWID';

/**
 * The keys compaction forgot, per table (lower-case name): one Bloom filter per compaction run
 * (`gen` 1, 2, …), sized for that run's n keys. A row with k = 0 matches every key: the table was
 * compacted before its keys were recorded (or its filters were dropped by cleanup), so every
 * unknown key ≤ M is lifted, as before filters existed.
 */
const COMPACTED_KEYS_SQL =
  'CREATE TABLE IF NOT EXISTS offsync_compacted_keys (tbl TEXT NOT NULL, gen INTEGER NOT NULL, bits BLOB NOT NULL, k INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tbl, gen)) WITHOUT ROWID';

/** The filters of one table; `'all'` when every key may have been compacted (no filter recorded, or a k = 0 row). */
function compactedKeyFilters(driver: SqlDriver, tbl: string): BloomFilter[] | 'all' {
  if (!tableExists(driver, 'offsync_compacted_keys')) return 'all';
  const out: BloomFilter[] = [];
  for (const r of driver.prepare('SELECT bits, k FROM offsync_compacted_keys WHERE tbl = ?').iterateRaw(tbl)) {
    const k = Number(r[1]);
    if (k === 0) return 'all';
    out.push(BloomFilter.from(r[0] as Uint8Array, k));
  }
  return out.length === 0 ? 'all' : out;
}

/** Forgets the compacted-key filters of `table` (its cleanup): later unknown keys ≤ its M are all lifted again. */
export function dropCompactedKeys(driver: SqlDriver, table: string): void {
  if (tableExists(driver, 'offsync_compacted_keys')) driver.prepare('DELETE FROM offsync_compacted_keys WHERE tbl = ?').run(table.toLowerCase());
}

/**
 * The central rule for re-inserted forgotten keys (file comment): returns `lists` with the
 * changes of every row to lift rewritten (causal length + shift, origin = `ownSiteId`), or the
 * same arrays when nothing is lifted. A row is one (table, pk) across all the lists (a block
 * column's cells travel in a list of their own). Must run inside the merge's transaction, before
 * the merge: "no metadata" is read from the table's row record and cells.
 */
export function liftCompactedKeys<L extends readonly Change[][]>(driver: SqlDriver, tableOf: (name: string) => TableContext | undefined, ownSiteId: Uint8Array, ...lists: L): L {
  let any = false;
  for (const l of lists) if (l.length > 0) any = true;
  if (!any) return lists;
  const maxima = compactedCausalLengths(driver);
  if (maxima.size === 0) return lists;
  // (table, pk) → highest causal length in the batch, then → shift (0 = not lifted).
  const rows = new Map<string, { tbl: string; pk: Uint8Array; top: number; shift: number }>();
  for (const l of lists) {
    for (const ch of l) {
      if (!maxima.has(ch.tbl.toLowerCase())) continue;
      const key = `${ch.tbl.toLowerCase()}\u0000${bytesKey(ch.pk)}`;
      const r = rows.get(key);
      if (r === undefined) rows.set(key, { tbl: ch.tbl, pk: ch.pk, top: ch.cl, shift: 0 });
      else if (ch.cl > r.top) r.top = ch.cl;
    }
  }
  let lifted = false;
  const filters = new Map<string, BloomFilter[] | 'all'>();
  let getLifted: SqlStatement | undefined;
  let putLifted: SqlStatement | undefined;
  for (const r of rows.values()) {
    const tbl = r.tbl.toLowerCase();
    const max = maxima.get(tbl) ?? 0;
    if (r.top > max) continue;
    const t = tableOf(r.tbl);
    if (t === undefined || t.algorithm !== 'cls') continue; // (unknown tables fail in the merge)
    if (t.stmts.rowRecord.getRaw(r.pk) !== undefined || t.stmts.anyCell.getRaw(r.pk) !== undefined) {
      // A key lifted before: a row of the same (unlifted) life meets the lifted one.
      getLifted ??= driver.prepare('SELECT base FROM offsync_lifted WHERE tbl = ? AND pk = ?');
      const base = getLifted.getRaw(tbl, r.pk)?.[0];
      if (base === undefined || r.top > Number(base)) continue;
      r.shift = liftShift(Number(base));
    } else {
      // Unknown here: lifted only if a compaction may have forgotten it (a new key is merged as it is).
      let f = filters.get(tbl);
      if (f === undefined) filters.set(tbl, (f = compactedKeyFilters(driver, tbl)));
      if (f !== 'all' && !f.some((b) => b.mayContain(r.pk))) continue;
      putLifted ??= driver.prepare('INSERT OR REPLACE INTO offsync_lifted (tbl, pk, base) VALUES (?, ?, ?)');
      putLifted.run(tbl, r.pk, BigInt(max));
      r.shift = liftShift(max);
    }
    lifted = true;
  }
  if (!lifted) return lists;
  return lists.map((l) =>
    l.map((ch) => {
      const r = rows.get(`${ch.tbl.toLowerCase()}\u0000${bytesKey(ch.pk)}`);
      return r === undefined || r.shift === 0 ? ch : { ...ch, cl: ch.cl + r.shift, siteId: ownSiteId };
    }),
  ) as unknown as L;
}

/** The compaction floor: every version ≤ it may have lost deletions. 0 = never compacted. */
export function compactionFloor(driver: SqlDriver): number {
  const r = driver.prepare('SELECT value FROM offsync_settings WHERE key = ?').getRaw(COMPACTED_UPTO_SETTING);
  return r === undefined || r[0] === null ? 0 : Number(r[0]);
}

/**
 * The highest version a feed cursor has seen whole: `{v, MAX_SAFE_INTEGER}` (the watermark form)
 * has seen v; a row cursor `{v, seq}` may have seen part of v only, so v − 1.
 */
export function acknowledgedBy(after: Cursor): number {
  return after.seq >= Number.MAX_SAFE_INTEGER ? after.dbVersion : after.dbVersion - 1;
}

/**
 * Refuses a feed that cannot be answered exactly any more: its cursor is above 0 and below the
 * floor (deletions it has not seen were forgotten). RESYNC_REQUIRED: the device must drop its
 * synced state and download from 0.
 */
export function assertFeedAbove(driver: SqlDriver, after: Cursor | undefined): void {
  if (after === undefined || after.dbVersion <= 0) return;
  const floor = compactionFloor(driver);
  if (floor === 0 || acknowledgedBy(after) >= floor) return;
  throw new CoreError(
    CoreErrorCode.RESYNC_REQUIRED,
    `The changes after version ${after.dbVersion} can no longer be sent exactly: metadata up to version ${floor} was compacted. Download from version 0 again.`,
    { details: { after: after.dbVersion, floor } },
  );
}

function tableExists(driver: SqlDriver, name: string): boolean {
  return driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").getRaw(name) !== undefined;
}

/**
 * Removes the metadata described in the file comment for every version ≤ `upTo`; the caller runs
 * it inside one transaction after folding the write log. `upTo` must be an integer between 0 and
 * the current db_version (INVALID_ARGUMENT otherwise, nothing changed).
 */
export function compactMetadata(driver: SqlDriver, tables: readonly TableContext[], upTo: number, dbVersion: number): CompactionResult {
  if (!Number.isSafeInteger(upTo) || upTo < 0 || upTo > dbVersion) {
    throw new CoreError(CoreErrorCode.INVALID_ARGUMENT, `compact: upTo must be an integer between 0 and the current db_version ${dbVersion} (got ${String(upTo)})`, {
      details: { upTo: String(upTo), dbVersion },
    });
  }
  const before = compactionFloor(driver);
  const out: CompactionResult = { floor: Math.max(before, upTo), rows: 0, cells: 0, tombstones: 0, evictions: 0, priors: 0, lifted: 0 };
  if (upTo === 0) return out;
  const v = BigInt(upTo);
  driver.exec(COMPACTED_KEYS_SQL);
  // A table compacted before its keys were recorded keeps lifting every unknown key ≤ its M.
  for (const tbl of compactedCausalLengths(driver).keys()) {
    if (driver.prepare('SELECT 1 FROM offsync_compacted_keys WHERE tbl = ?').getRaw(tbl) === undefined) {
      driver.prepare("INSERT INTO offsync_compacted_keys (tbl, gen, bits, k, n) VALUES (?, 0, x'', 0, 0)").run(tbl);
    }
  }
  // (lower-case table) → the keys this run forgets, for its filter.
  const forgotten = new Map<string, Uint8Array[]>();
  const forget = (tbl: string, pk: Uint8Array): void => {
    const l = forgotten.get(tbl);
    if (l === undefined) forgotten.set(tbl, [pk]);
    else l.push(pk);
  };
  const blocks = tableExists(driver, 'offsync_blocks');
  const priors = tableExists(driver, 'offsync_prior');
  driver.exec('CREATE TEMP TABLE IF NOT EXISTS offsync_compact (pk BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID');
  for (const ctx of tables) {
    const rows = quoteIdent(rowsTableName(ctx.name));
    const cells = quoteIdent(cellsTableName(ctx.name));
    driver.exec('DELETE FROM temp.offsync_compact');
    // Deleted at or before upTo, and nothing of the row written after it.
    const n = driver
      .prepare(
        `INSERT INTO temp.offsync_compact (pk)
         SELECT r.pk FROM ${rows} r WHERE r.cl % 2 = 0 AND r.cl <> ${BARE_CL} AND r.db_version <= ?
           AND NOT EXISTS (SELECT 1 FROM ${cells} c WHERE c.rid = r.rid AND c.db_version > ?)`,
      )
      .run(v, v);
    if (n === 0) continue;
    const top = driver.prepare(`SELECT max(cl) FROM ${rows} WHERE pk IN (SELECT pk FROM temp.offsync_compact)`).getRaw()?.[0];
    raiseCompactedCl(driver, ctx.name, Number(top ?? 0));
    for (const r of driver.prepare('SELECT pk FROM temp.offsync_compact').iterateRaw()) forget(ctx.name.toLowerCase(), r[0] as Uint8Array);
    out.cells += driver.prepare(`DELETE FROM ${cells} WHERE rid IN (SELECT rid FROM ${rows} WHERE pk IN (SELECT pk FROM temp.offsync_compact))`).run();
    if (blocks) out.cells += driver.prepare('DELETE FROM offsync_blocks WHERE tbl = ? AND pk IN (SELECT pk FROM temp.offsync_compact)').run(ctx.name);
    out.tombstones += driver.prepare('DELETE FROM offsync_tombstones WHERE tbl = ? AND pk IN (SELECT pk FROM temp.offsync_compact)').run(ctx.name);
    if (priors) out.priors += driver.prepare('DELETE FROM offsync_prior WHERE tbl = ? AND pk IN (SELECT pk FROM temp.offsync_compact)').run(ctx.name);
    out.rows += driver.prepare(`DELETE FROM ${rows} WHERE pk IN (SELECT pk FROM temp.offsync_compact)`).run();
  }
  driver.exec('DELETE FROM temp.offsync_compact');
  if (tableExists(driver, 'offsync_lifted')) {
    for (const ctx of tables) {
      out.lifted += driver
        .prepare(`DELETE FROM offsync_lifted WHERE tbl = ? AND pk NOT IN (SELECT pk FROM ${quoteIdent(rowsTableName(ctx.name))} WHERE db_version > ?)`)
        .run(ctx.name.toLowerCase(), v);
    }
  }
  for (const r of [...driver.prepare('SELECT tbl, max(cl) FROM offsync_evictions WHERE db_version <= ? GROUP BY tbl').iterateRaw(v)]) raiseCompactedCl(driver, String(r[0]), Number(r[1]));
  for (const r of [...driver.prepare('SELECT DISTINCT lower(tbl), pk FROM offsync_evictions WHERE db_version <= ? AND cl > 0').iterateRaw(v)]) forget(String(r[0]), r[1] as Uint8Array);
  for (const [tbl, pks] of forgotten) {
    const f = BloomFilter.forKeys(pks.length);
    for (const pk of pks) f.add(pk);
    const gen = Number(driver.prepare('SELECT coalesce(max(gen), 0) + 1 FROM offsync_compacted_keys WHERE tbl = ?').getRaw(tbl)?.[0] ?? 1);
    driver.prepare('INSERT INTO offsync_compacted_keys (tbl, gen, bits, k, n) VALUES (?, ?, ?, ?, ?)').run(tbl, BigInt(gen), f.bits, BigInt(f.k), BigInt(pks.length));
  }
  out.evictions = driver.prepare('DELETE FROM offsync_evictions WHERE db_version <= ?').run(v);
  if (out.floor > before) driver.prepare('INSERT OR REPLACE INTO offsync_settings (key, value) VALUES (?, ?)').run(COMPACTED_UPTO_SETTING, BigInt(out.floor));
  return out;
}

/** Records that compaction forgot a causal length `cl` in `table` (the maximum only grows). */
function raiseCompactedCl(driver: SqlDriver, table: string, cl: number): void {
  if (!(cl > 0)) return;
  // (Created with the first maximum: liftCompactedKeys reads it whenever a maximum exists.)
  driver.exec(LIFTED_SQL);
  driver
    .prepare('INSERT INTO offsync_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)')
    .run(COMPACTED_CL_PREFIX + table.toLowerCase(), BigInt(cl));
}
