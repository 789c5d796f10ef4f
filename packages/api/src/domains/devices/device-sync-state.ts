/**
 * What the server knows of each device's sync beyond the control-plane record
 * (docs/CONTROL-PLANE.md "Devices: backlog and last error"), kept IN the central database file
 * (table `offsync_device_state`), next to the upload bookkeeping (`offsync_peers`):
 *
 * - the device's last download cursor (the `after` of its last check, server version space), so
 *   `Device.backlog` can say how much it has not downloaded yet;
 * - the last refusal of one of its uploads (code, message, time) and, for `schema_hash_unknown`,
 *   the refused hash; cleared when a later upload is accepted.
 *
 * {@link trackDeviceSyncState} wraps the sync service's `upload` and `download` (like
 * observability/sync.ts), so the sync domain does not know about it. Writes happen after the
 * operation, in their own small statement, and only when something changed (a cursor that did
 * not move, an accepted upload of a device without a recorded error: no write).
 */
import type { Change } from '@offsync/core';
import { annotateRequest } from '../../observability/request-context.ts';
import type { Logger } from '../../deps.ts';
import { diagnoseSchemaHash } from '../sync/schema-diagnosis.ts';
import type { SchemaDiagnosis } from '../sync/schema-diagnosis.ts';
import type { SyncEngine } from '../sync/sync-deps.ts';
import { SyncError, toSyncError } from '../sync/sync-errors.ts';
import { noteDeviceCursor, pendingCursors } from '../sync/device-cursors.ts';
import { isSqliteBusyError } from '../sync/main-connection.ts';
import type { SyncService } from '../sync/sync.service.ts';

const DDL = `CREATE TABLE IF NOT EXISTS offsync_device_state (
  site_id TEXT PRIMARY KEY NOT NULL,
  cursor_version INTEGER,
  cursor_seq INTEGER,
  cursor_at INTEGER,
  error_code TEXT,
  error_message TEXT,
  error_at INTEGER,
  refused_schema_hash TEXT
) WITHOUT ROWID`;

export interface DeviceSyncState {
  siteId: string;
  /** Exclusive cursor of the device's last download request (server version space), null before its first. */
  cursor: { dbVersion: number; seq: number; at: Date } | null;
  /** The last refusal of one of its uploads, null when none or a later upload was accepted. */
  lastError: { code: string; message: string; at: Date } | null;
  /** Decimal u64 schema hash of the last upload refused with `schema_hash_unknown`. */
  refusedSchemaHash: string | null;
}

export interface DeviceBacklog {
  /** Server db_version now. */
  serverDbVersion: number;
  /** The device's last download cursor as the server knows it (0 when it never downloaded). */
  cursorDbVersion: number;
  /** serverDbVersion − cursorDbVersion. */
  versionsBehind: number;
  /** Changes of other sites after the cursor in the server's feed, before RLS filtering (an upper bound for users under ENFORCE). */
  changes: number;
  /** Their encoded size (uncompressed payload body bytes). */
  bytes: number;
  /**
   * False when the count stopped at the scan budget, or when the device is below the compaction
   * floor (the numbers are then lower bounds).
   */
  exact: boolean;
  /**
   * The cursor is above 0 and below the compaction floor (docs/PROTOCOL.md "Compaction and the
   * resync horizon"): the device's next download is refused with resync_required and it must
   * download everything from 0; the counts cover only what the feed still holds after its cursor.
   */
  resyncRequired: boolean;
}

const SITE = /^[0-9a-f]{32}$/;
/** Site id of shared live pages (graphql/shared-pages.ts): not a device. */
const SHARED_SITE = '0'.repeat(32);

interface Cache {
  cursors: Map<string, string>;
  withError: Set<string>;
}
const caches = new WeakMap<SyncEngine, Cache>();

function ready(engine: SyncEngine): Cache {
  let c = caches.get(engine);
  if (c === undefined) {
    engine.driver.exec(DDL);
    c = { cursors: new Map(), withError: new Set() };
    for (const r of engine.driver.prepare('SELECT site_id FROM offsync_device_state WHERE error_code IS NOT NULL').all()) c.withError.add(String(r['site_id']));
    caches.set(engine, c);
  }
  return c;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function rowToState(r: Record<string, unknown>): DeviceSyncState {
  const cv = num(r['cursor_version']);
  const at = num(r['error_at']);
  return {
    siteId: String(r['site_id']),
    cursor: cv === null ? null : { dbVersion: cv, seq: num(r['cursor_seq']) ?? 0, at: new Date(num(r['cursor_at']) ?? 0) },
    lastError: r['error_code'] === null || r['error_code'] === undefined ? null : { code: String(r['error_code']), message: String(r['error_message'] ?? ''), at: new Date(at ?? 0) },
    refusedSchemaHash: r['refused_schema_hash'] === null || r['refused_schema_hash'] === undefined ? null : String(r['refused_schema_hash']),
  };
}

/**
 * Records the cursor of `siteId`'s download request, written behind (sync/device-cursors.ts:
 * within ~1 s, one transaction per file for every device that moved); readers see it at once.
 */
export function recordCursor(engine: SyncEngine, siteId: string, cursor: { dbVersion: number; seq: number }, at: number, onFlushError?: (e: unknown) => void): void {
  const c = ready(engine);
  const key = `${cursor.dbVersion}:${cursor.seq}`;
  if (c.cursors.get(siteId) === key) return;
  noteDeviceCursor(engine, siteId, { dbVersion: cursor.dbVersion, seq: cursor.seq, at }, undefined, onFlushError);
  c.cursors.set(siteId, key);
}

export function recordRefusal(engine: SyncEngine, siteId: string, error: { code: string; message: string; refusedSchemaHash: string | null }, at: number): void {
  const c = ready(engine);
  engine.driver
    .prepare(`INSERT INTO offsync_device_state (site_id, error_code, error_message, error_at, refused_schema_hash) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(site_id) DO UPDATE SET error_code = excluded.error_code, error_message = excluded.error_message, error_at = excluded.error_at,
        refused_schema_hash = excluded.refused_schema_hash`)
    .run(siteId, error.code, error.message.slice(0, 2000), BigInt(at), error.refusedSchemaHash);
  c.withError.add(siteId);
}

/** An accepted upload: the device's last error is over. No write when none is recorded. */
export function clearRefusal(engine: SyncEngine, siteId: string): void {
  const c = ready(engine);
  if (!c.withError.has(siteId)) return;
  engine.driver.prepare('UPDATE offsync_device_state SET error_code = NULL, error_message = NULL, error_at = NULL, refused_schema_hash = NULL WHERE site_id = ?').run(siteId);
  c.withError.delete(siteId);
}

export function readDeviceStates(engine: SyncEngine, siteIds?: readonly string[]): Map<string, DeviceSyncState> {
  ready(engine);
  const rows = engine.driver.prepare('SELECT * FROM offsync_device_state').all();
  const wanted = siteIds === undefined ? undefined : new Set(siteIds);
  const out = new Map<string, DeviceSyncState>();
  for (const r of rows) {
    const s = rowToState(r);
    if (wanted === undefined || wanted.has(s.siteId)) out.set(s.siteId, s);
  }
  // Recorded and not written yet: as good as stored.
  for (const [siteId, p] of pendingCursors(engine)) {
    if (wanted !== undefined && !wanted.has(siteId)) continue;
    const cursor = { dbVersion: p.dbVersion, seq: p.seq, at: new Date(p.at) };
    const cur = out.get(siteId);
    out.set(siteId, cur === undefined ? { siteId, cursor, lastError: null, refusedSchemaHash: null } : { ...cur, cursor });
  }
  return out;
}

/** Changes scanned at most for one backlog computation (all devices of a page together). */
export const BACKLOG_SCAN_BUDGET = 200_000;

/**
 * Backlogs of several devices in ONE scan of the feed from the smallest of their cursors: a
 * change counts for a device when it is after the device's cursor and from another site.
 */
export function computeBacklogs(engine: SyncEngine, devices: readonly { siteId: string; cursorDbVersion: number }[], budget = BACKLOG_SCAN_BUDGET): Map<string, DeviceBacklog> {
  const serverDbVersion = engine.dbVersion();
  const floor = engine.compactionFloor();
  const out = new Map<string, DeviceBacklog>();
  for (const d of devices) {
    const cursorDbVersion = Math.min(d.cursorDbVersion, serverDbVersion);
    const resyncRequired = floor > 0 && cursorDbVersion > 0 && cursorDbVersion < floor;
    out.set(d.siteId, { serverDbVersion, cursorDbVersion, versionsBehind: serverDbVersion - cursorDbVersion, changes: 0, bytes: 0, exact: !resyncRequired, resyncRequired });
  }
  const behind = devices.filter((d) => d.cursorDbVersion < serverDbVersion);
  if (behind.length === 0) return out;
  const from = Math.min(...behind.map((d) => d.cursorDbVersion));
  let enc = engine.payloadEncoder(0n);
  let inEncoder = 0;
  let scanned = 0;
  // An estimate: served below the compaction floor too (such devices are marked resyncRequired).
  const feed = engine.changes({ after: { dbVersion: from, seq: Number.MAX_SAFE_INTEGER }, allowBelowFloor: true });
  for (const ch of feed as Iterable<Change>) {
    if (scanned++ >= budget) {
      for (const d of behind) (out.get(d.siteId) as DeviceBacklog).exact = false;
      break;
    }
    if (inEncoder >= 5000) {
      enc = engine.payloadEncoder(0n);
      inEncoder = 0;
    }
    const before = enc.byteLength;
    enc.add(ch);
    inEncoder++;
    const size = enc.byteLength - before;
    const origin = Buffer.from(ch.siteId).toString('hex');
    for (const d of behind) {
      if (ch.dbVersion <= d.cursorDbVersion || origin === d.siteId) continue;
      const b = out.get(d.siteId) as DeviceBacklog;
      b.changes++;
      b.bytes += size;
    }
  }
  return out;
}

/** The refusal a device receives, with the schema diagnosis for `schema_hash_unknown`. */
function explain(err: SyncError, engine: SyncEngine): { err: SyncError; diagnosis?: SchemaDiagnosis } {
  if (err.code !== 'schema_hash_unknown') return { err };
  const details: unknown = Reflect.get(err.cause ?? {}, 'details');
  const raw = typeof details === 'object' && details !== null ? (details as Record<string, unknown>)['schemaHash'] : undefined;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) return { err };
  const diagnosis = diagnoseSchemaHash(engine, BigInt(raw));
  const base = err.detail ?? err.title;
  return { err: new SyncError('schema_hash_unknown', `${base} ${diagnosis.message}`, { cause: err.cause }), diagnosis };
}

/**
 * Wraps `service.upload` and `service.download` in place: records cursors and refusals, and turns
 * a `schema_hash_unknown` refusal into one that names the tables (and columns when known).
 */
export function trackDeviceSyncState(service: SyncService, options: { now?: () => number; logger?: Logger } = {}): void {
  const now = options.now ?? Date.now;
  const upload = service.upload.bind(service);
  const download = service.download.bind(service);
  // The sync state lives in the SQLite central file; POSTGRES databases do not record it yet (undefined).
  const central = async (db: Parameters<SyncService['upload']>[0]) => {
    const d = typeof db === 'string' ? await service.open(db) : db;
    return d.synchronous;
  };
  const report = (e: unknown): void => {
    // A central worker's long merge holds the write lock: this best-effort record waits for the next request.
    if (isSqliteBusyError(e)) return;
    options.logger?.error('devices: sync state not recorded', { error: e instanceof Error ? e.message : String(e) });
  };

  service.upload = async (db, siteId, payload, window, principal) => {
    const site = siteId.toLowerCase();
    let r: Awaited<ReturnType<SyncService['upload']>>;
    try {
      r = await upload(db, siteId, payload, window, principal);
    } catch (e) {
      let err = toSyncError(e);
      let d: Awaited<ReturnType<typeof central>> | undefined;
      try {
        d = await central(db);
      } catch {
        throw e;
      }
      if (d === undefined) throw err;
      const { err: explained, diagnosis } = explain(err, d.engine);
      err = explained;
      if (diagnosis !== undefined) annotateRequest({ schemaHash: diagnosis.deviceHash, expectedSchemaHash: diagnosis.expectedHash, tables: diagnosis.tables.join(',') });
      if (SITE.test(site)) {
        try {
          recordRefusal(d.engine, site, { code: err.code, message: err.detail ?? err.title, refusedSchemaHash: diagnosis?.deviceHash ?? null }, now());
        } catch (x) {
          report(x);
        }
      }
      throw err;
    }
    try {
      const d = await central(db);
      if (d !== undefined) clearRefusal(d.engine, site);
    } catch (x) {
      report(x);
    }
    return r;
  };

  service.download = async (db, siteId, after, principal, opts) => {
    const r = await download(db, siteId, after, principal, opts);
    const site = siteId.toLowerCase();
    if (site !== SHARED_SITE && SITE.test(site)) {
      try {
        const d = await central(db);
        if (d !== undefined) recordCursor(d.engine, site, after, now(), report);
      } catch (x) {
        report(x);
      }
    }
    return r;
  };
}
