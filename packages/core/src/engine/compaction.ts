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
 * The floor (`offsync_settings.compacted_upto`) only grows. Feeds whose cursor has not seen
 * everything ≤ the floor are refused with RESYNC_REQUIRED, except a cursor at 0 (a fresh device:
 * the full state is exact without the forgotten tombstones) and the database's own changes
 * (`localOnly`, what a device uploads).
 */
import { CoreError, CoreErrorCode } from '../errors.ts';
import type { SqlDriver } from '../storage/driver.ts';
import type { Cursor } from './extract.ts';
import { cellsTableName, quoteIdent, rowsTableName } from './sql-gen.ts';
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
  const out: CompactionResult = { floor: Math.max(before, upTo), rows: 0, cells: 0, tombstones: 0, evictions: 0, priors: 0 };
  if (upTo === 0) return out;
  const v = BigInt(upTo);
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
         SELECT r.pk FROM ${rows} r WHERE r.cl % 2 = 0 AND r.db_version <= ?
           AND NOT EXISTS (SELECT 1 FROM ${cells} c WHERE c.pk = r.pk AND c.db_version > ?)`,
      )
      .run(v, v);
    if (n === 0) continue;
    out.cells += driver.prepare(`DELETE FROM ${cells} WHERE pk IN (SELECT pk FROM temp.offsync_compact)`).run();
    if (blocks) out.cells += driver.prepare('DELETE FROM offsync_blocks WHERE tbl = ? AND pk IN (SELECT pk FROM temp.offsync_compact)').run(ctx.name);
    out.tombstones += driver.prepare('DELETE FROM offsync_tombstones WHERE tbl = ? AND pk IN (SELECT pk FROM temp.offsync_compact)').run(ctx.name);
    if (priors) out.priors += driver.prepare('DELETE FROM offsync_prior WHERE tbl = ? AND pk IN (SELECT pk FROM temp.offsync_compact)').run(ctx.name);
    out.rows += driver.prepare(`DELETE FROM ${rows} WHERE pk IN (SELECT pk FROM temp.offsync_compact)`).run();
  }
  driver.exec('DELETE FROM temp.offsync_compact');
  out.evictions = driver.prepare('DELETE FROM offsync_evictions WHERE db_version <= ?').run(v);
  if (out.floor > before) driver.prepare('INSERT OR REPLACE INTO offsync_settings (key, value) VALUES (?, ?)').run(COMPACTED_UPTO_SETTING, BigInt(out.floor));
  return out;
}
