/**
 * Resync after `resync_required` (docs/PROTOCOL.md "Compaction and the resync horizon"): the
 * server compacted metadata this device has not downloaded, so its synced state can no longer be
 * brought up to date incrementally. The device keeps its un-uploaded writes and starts over:
 *
 * 1. `saveAndClear` (one transaction): the own changes the server has not accepted (after
 *    `send_dbversion`) are saved in `offsync_client_resync` — per row its written columns and
 *    their current values, or that the row is deleted; every synced table is emptied with its
 *    metadata, untracked (the table is un-initialised, emptied and initialised again, its row
 *    filter kept; block cells of the table dropped); the download cursor and any resume cursor go
 *    back to 0, and so does the upload state (`send_dbversion`, `own_max`); `resync_pending` = 1;
 *    the database takes a new site id (`engine.renewSiteId()`): a download leaves out the
 *    requesting site's own changes (§P1), so under its old id the device would never get back
 *    the rows it had written. The app hears of it through `onSiteId` (the network context's
 *    site, `cloudsync_siteid()`).
 * 2. The session downloads from 0 (an interrupted download resumes as usual; the saved rows and
 *    the pending flag survive a crash).
 * 3. `restore` (one transaction, after a complete download): the saved rows are written again as
 *    local writes (tracked, so they upload next): written columns upserted, deleted rows deleted;
 *    the saved rows and the flag are dropped.
 *
 * A write of a saved row's column made by another device before the resync is overwritten by the
 * restored write (it is a newer local write of that column), as it would have been had the
 * upload gone through.
 */
import { decodePk, RIP_SENTINEL } from '@offsync/core';
import type { Change, SqlValue, SyncEngine } from '@offsync/core';
import { SyncError, SyncHttpError } from './http.ts';
import type { ClientSettings } from './settings.ts';

/** The stable wire code (core protocol/wire.ts `SyncErrorCode`). */
export const RESYNC_REQUIRED = 'resync_required';

const TABLE_SQL = 'CREATE TABLE IF NOT EXISTS offsync_client_resync (n INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT, val ANY)';

const q = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** True for a refusal that asks this device to resync: a thrown error or a G3 `failures.*` object. */
export function isResyncRequired(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  if (e instanceof SyncHttpError) return e.status === 410 && errorCodeOfBody(e.message) === RESYNC_REQUIRED;
  if (e instanceof SyncError) return e.code === RESYNC_REQUIRED;
  // A G3 failure object ({code, message, retryable}) or a GraphQL error's extensions.syncCode.
  const o = e as Record<string, unknown>;
  if (o['code'] === RESYNC_REQUIRED || o['syncCode'] === RESYNC_REQUIRED) return true;
  const errors = o['errors'];
  if (Array.isArray(errors)) {
    const ext = (errors[0] as { extensions?: Record<string, unknown> } | undefined)?.extensions;
    return ext?.['syncCode'] === RESYNC_REQUIRED;
  }
  return false;
}

/** The `errors[0].code` of a JSON:API error body, if it is one. */
function errorCodeOfBody(text: string): string | undefined {
  try {
    const v = JSON.parse(text) as { errors?: Array<{ code?: unknown }> };
    const code = v.errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

export interface ResyncSaved {
  /** Rows with un-uploaded own writes kept for after the download. */
  rows: number;
}

/** True while a resync is under way (cleared state, download from 0 not finished or not restored). */
export function resyncPending(settings: ClientSettings): boolean {
  return settings.get('resync_pending') === 1;
}

/** Step 1 (file comment), in one transaction. `own` is the session's own-change feed after `send_dbversion`. */
export function saveAndClear(engine: SyncEngine, settings: ClientSettings, own: Iterable<Change>): ResyncSaved {
  const d = engine.driver;
  return d.transaction(() => {
    d.exec(TABLE_SQL);
    // Per row: the latest own causal length and the written columns (the feed carries current values).
    const rows = new Map<string, { tbl: string; pk: Uint8Array; cl: number; cols: Map<string, SqlValue> }>();
    for (const c of own) {
      const key = `${c.tbl}\u0000${Buffer.from(c.pk).toString('latin1')}`;
      let r = rows.get(key);
      if (r === undefined) rows.set(key, (r = { tbl: c.tbl, pk: c.pk, cl: 0, cols: new Map() }));
      r.cl = Math.max(r.cl, c.cl);
      if (c.col !== RIP_SENTINEL) r.cols.set(c.col, c.val);
    }
    const put = d.prepare('INSERT INTO offsync_client_resync (tbl, pk, col, val) VALUES (?, ?, ?, ?)');
    for (const r of rows.values()) {
      const t = engine.table(r.tbl);
      const alive = r.cl % 2 === 1 || (r.cl === 0 && r.cols.size > 0);
      if (!alive) put.run(r.tbl, r.pk, null, null);
      else for (const [col, val] of r.cols) if (t?.colIds.has(col) === true) put.run(r.tbl, r.pk, col, val);
    }
    const hasBlocks = d.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'offsync_blocks'").getRaw() !== undefined;
    for (const t of engine.syncedTables()) {
      const filter = engine.rowFilter(t.name);
      engine.cleanup(t.name); // triggers and metadata gone: the DELETE below is not tracked
      d.exec(`DELETE FROM ${q(t.name)}`);
      if (hasBlocks) d.prepare('DELETE FROM offsync_blocks WHERE tbl = ?').run(t.name);
      engine.init(t.name, t.algorithm, 0b11);
      if (filter !== undefined) engine.setRowFilter(t.name, filter);
      if (!t.enabled) engine.setEnabled(t.name, false);
    }
    settings.set('check_dbversion', 0);
    settings.set('check_seq', 0);
    settings.setResumeCursor(0);
    // A new site: the server's download leaves out the requesting site's own changes, so under
    // its old id the device would never get back the rows it wrote. Nothing is uploaded under it yet.
    settings.set('send_dbversion', 0);
    settings.set('own_max', 0);
    settings.set('resync_pending', 1);
    engine.renewSiteId(); // last: nothing after it can roll the transaction back
    return { rows: rows.size };
  });
}

/** Step 3 (file comment), in one transaction: the saved rows as local writes. Returns how many rows. */
export function restore(engine: SyncEngine, settings: ClientSettings): number {
  const d = engine.driver;
  return d.transaction(() => {
    d.exec(TABLE_SQL);
    const rows = new Map<string, { tbl: string; pk: Uint8Array; cols: Array<[string, SqlValue]>; deleted: boolean }>();
    for (const r of d.prepare('SELECT tbl, pk, col, val FROM offsync_client_resync ORDER BY n').iterateRaw()) {
      const pk = r[1] as Uint8Array;
      const key = `${String(r[0])}\u0000${Buffer.from(pk).toString('latin1')}`;
      let row = rows.get(key);
      if (row === undefined) rows.set(key, (row = { tbl: String(r[0]), pk, cols: [], deleted: false }));
      if (r[2] === null) row.deleted = true;
      else row.cols.push([String(r[2]), r[3] ?? null]);
    }
    for (const row of rows.values()) {
      const t = engine.table(row.tbl);
      if (t === undefined) continue; // (a table no longer synced: nothing to send)
      const keyCols = t.schema.pkColumns.map((c) => q(c.name));
      const keyVals = decodePk(row.pk);
      const where = keyCols.map((c) => `${c} = ?`).join(' AND ');
      if (row.deleted) {
        d.prepare(`DELETE FROM ${q(t.name)} WHERE ${where}`).run(...keyVals);
        continue;
      }
      const cols = row.cols.map(([c]) => q(c));
      const all = [...keyCols, ...cols];
      const update = cols.length === 0 ? 'NOTHING' : `UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}`;
      d.prepare(`INSERT INTO ${q(t.name)} (${all.join(', ')}) VALUES (${all.map(() => '?').join(', ')}) ON CONFLICT (${keyCols.join(', ')}) DO ${update}`).run(
        ...keyVals,
        ...row.cols.map(([, v]) => v),
      );
    }
    d.exec('DELETE FROM offsync_client_resync');
    settings.set('resync_pending', 0);
    return rows.size;
  });
}
