/**
 * Who decides how far a central database is compacted (docs/PROTOCOL.md "Compaction and the
 * resync horizon"; core `engine.compact`).
 *
 * Per SQLite central database, `upTo` = the smallest version acknowledged by the devices that
 * use it, leaving out devices not seen for longer than the resync horizon (default 30 days):
 *
 * - the devices: every site the file knows (`offsync_site_owners`: every site that ever made a
 *   call, `offsync_device_state`: every site that downloaded) plus the control-plane device
 *   records of the database;
 * - a device's acknowledged version: what its last download request's cursor had seen whole
 *   (`offsync_device_state`, recorded by devices/device-sync-state.ts after each download:
 *   `{v, MAX_SEQ}` = v, a row cursor `{v, seq}` = v − 1); 0 when it never downloaded;
 * - its last sight: the latest of its first claim, its last download and the control plane's
 *   `lastSyncAt`.
 *
 * A device left out (past the horizon) whose cursor falls below the floor is told to resync:
 * its downloads (`after` > 0) are refused by the engine and its uploads by {@link installCompaction}'s
 * upload guard, both with 410 `resync_required`; a download from 0 is served, after which it
 * syncs normally. POSTGRES databases: not supported (`not_supported`).
 */
import { acknowledgedBy } from '@offsync/core';
import type { CompactionResult } from '@offsync/core';
import type { SqlValue } from '@offsync/core';
import type { PrismaClient } from '../../db/prisma.ts';
import type { SyncService } from './sync.service.ts';
import type { SyncEngine } from './sync-deps.ts';
import { SyncError } from './sync-errors.ts';
import { cursorOf, pendingCursors } from './device-cursors.ts';

export interface CompactionOptions {
  /** Devices not seen for longer than this are left out of the minimum (default 30 days). */
  horizonMs?: number;
  /** Run {@link compactAll} every this many ms (unref'd timer); undefined or 0 = no timer. */
  intervalMs?: number;
  /** Clock (tests). */
  now?: () => number;
  /** Failures of timer runs. */
  onError?: (databaseId: string, error: unknown) => void;
}

export const DEFAULT_RESYNC_HORIZON_MS = 30 * 86_400_000;

export interface DeviceAck {
  siteId: string;
  /** Highest server version the device has downloaded whole (0: none). */
  acknowledged: number;
  /** Last time the server saw the device (ms since the epoch). */
  lastSeen: number;
  /** Past the horizon: left out of the minimum. */
  stale: boolean;
}

export interface CompactionPlan {
  databaseId: string;
  /** The version compaction may go up to (min acknowledged over the devices within the horizon). */
  upTo: number;
  devices: DeviceAck[];
}

export interface DatabaseCompaction extends CompactionResult {
  databaseId: string;
  upTo: number;
  /** Devices counted in the minimum / left out as past the horizon. */
  devicesCounted: number;
  devicesPastHorizon: number;
}

type Prisma = Pick<PrismaClient, 'device'>;
type ControlPlane = Pick<PrismaClient, 'device' | 'database'>;

const num = (v: SqlValue | undefined): number | null => (v === null || v === undefined ? null : Number(v));

function hasTable(engine: SyncEngine, name: string): boolean {
  return engine.driver.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").getRaw(name) !== undefined;
}

/** The devices of one central database with what they acknowledged and when they were last seen. */
export async function deviceAcks(engine: SyncEngine, databaseId: string, prisma: Prisma | undefined, now: number, horizonMs: number): Promise<DeviceAck[]> {
  const seen = new Map<string, { acknowledged: number; lastSeen: number }>();
  const touch = (site: string, lastSeen: number, acknowledged?: number): void => {
    const cur = seen.get(site) ?? { acknowledged: 0, lastSeen: 0 };
    cur.lastSeen = Math.max(cur.lastSeen, lastSeen);
    if (acknowledged !== undefined) cur.acknowledged = Math.max(cur.acknowledged, acknowledged);
    seen.set(site, cur);
  };
  if (hasTable(engine, 'offsync_site_owners')) {
    for (const r of engine.driver.prepare('SELECT hex(site_id), first_seen FROM offsync_site_owners').iterateRaw()) touch(String(r[0]).toLowerCase(), num(r[1]) ?? 0);
  }
  if (hasTable(engine, 'offsync_device_state')) {
    for (const r of engine.driver.prepare('SELECT site_id, cursor_version, cursor_seq, cursor_at FROM offsync_device_state WHERE cursor_version IS NOT NULL').iterateRaw()) {
      const seq = num(r[2]) ?? 0;
      const ack = Math.max(0, acknowledgedBy({ dbVersion: num(r[1]) ?? 0, seq }));
      touch(String(r[0]), num(r[3]) ?? 0, ack);
    }
  }
  for (const [site, c] of pendingCursors(engine)) touch(site, c.at, Math.max(0, acknowledgedBy({ dbVersion: c.dbVersion, seq: c.seq })));
  if (prisma !== undefined) {
    for (const d of await prisma.device.findMany({ where: { databaseId }, select: { siteId: true, lastSyncAt: true } })) touch(d.siteId.toLowerCase(), d.lastSyncAt.getTime());
  }
  return [...seen].map(([siteId, s]) => ({ siteId, ...s, stale: now - s.lastSeen > horizonMs }));
}

/**
 * The synchronous engine of a SQLite central database, undefined for POSTGRES ones (works with
 * both shapes of the central handle: `kind` + `engine`, or `synchronous.engine`).
 */
export function sqliteEngineOf(central: unknown): SyncEngine | undefined {
  if (typeof central !== 'object' || central === null) return undefined;
  const o = central as Record<string, unknown>;
  const sync = o['synchronous'];
  if (typeof sync === 'object' && sync !== null && 'engine' in sync) return (sync as { engine: SyncEngine }).engine;
  if (o['kind'] === 'sqlite' && 'engine' in o) return o['engine'] as SyncEngine;
  return undefined;
}

async function engineFor(sync: SyncService, databaseId: string): Promise<SyncEngine> {
  const engine = sqliteEngineOf(await sync.databases.open(databaseId));
  if (engine === undefined) throw new SyncError('not_supported', 'Compaction is not supported for POSTGRES databases yet');
  return engine;
}

/** How far `databaseId` may be compacted now. */
export async function planCompaction(sync: SyncService, databaseId: string, prisma: Prisma | undefined, opts: { now?: number; horizonMs?: number } = {}): Promise<CompactionPlan> {
  const engine = await engineFor(sync, databaseId);
  const now = opts.now ?? Date.now();
  const devices = await deviceAcks(engine, databaseId, prisma, now, opts.horizonMs ?? DEFAULT_RESYNC_HORIZON_MS);
  const counted = devices.filter((x) => !x.stale);
  const upTo = Math.min(engine.dbVersion(), ...counted.map((x) => x.acknowledged));
  return { databaseId, upTo, devices };
}

/** Plans and runs the compaction of one SQLite central database (one transaction). */
export async function compactDatabase(sync: SyncService, databaseId: string, prisma: Prisma | undefined, opts: { now?: number; horizonMs?: number } = {}): Promise<DatabaseCompaction> {
  const plan = await planCompaction(sync, databaseId, prisma, opts);
  const engine = await engineFor(sync, databaseId);
  // Synchronous: no merge interleaves between the plan's last read and the compaction.
  const r = engine.compact({ upTo: Math.min(plan.upTo, engine.dbVersion()) });
  const stale = plan.devices.filter((x) => x.stale).length;
  return { ...r, databaseId, upTo: plan.upTo, devicesCounted: plan.devices.length - stale, devicesPastHorizon: stale };
}

export interface Compaction {
  /** Compacts one database now (the GraphQL `compactDatabase` mutation). */
  compact(databaseId: string): Promise<DatabaseCompaction>;
  /** One timer run over every SQLite database with OffSync enabled; failures go to `onError`. */
  compactAll(): Promise<DatabaseCompaction[]>;
  stop(): void;
}

const installed = new WeakMap<SyncService, Compaction>();

/** The compaction of a sync service (installed by createApp), if any. */
export function compactionOf(sync: SyncService): Compaction | undefined {
  return installed.get(sync);
}

/**
 * Installs compaction on `sync`: the upload guard (a device whose recorded download cursor is
 * below the floor must resync before it uploads: its payload may carry changes of row lives the
 * server forgot) and, with `intervalMs`, an unref'd timer running {@link compactAll}.
 */
export function installCompaction(sync: SyncService, prisma: ControlPlane, opts: CompactionOptions = {}): Compaction {
  const now = opts.now ?? Date.now;
  const horizonMs = opts.horizonMs ?? DEFAULT_RESYNC_HORIZON_MS;
  const upload = sync.upload.bind(sync);
  sync.upload = async (...args: Parameters<SyncService['upload']>) => {
    const [db, siteId] = args;
    const engine = sqliteEngineOf(typeof db === 'string' ? await sync.databases.open(db) : db);
    if (engine !== undefined) refuseBelowFloor(engine, siteId.toLowerCase());
    return upload(...args);
  };
  const compact = (id: string): Promise<DatabaseCompaction> => compactDatabase(sync, id, prisma, { now: now(), horizonMs });
  const compactAll = async (): Promise<DatabaseCompaction[]> => {
    const out: DatabaseCompaction[] = [];
    const dbs = await prisma.database.findMany({ where: { kind: 'SQLITE', offSyncEnabled: true }, select: { id: true } });
    for (const { id } of dbs) {
      try {
        out.push(await compact(id));
      } catch (e) {
        if (!(e instanceof SyncError && (e.code === 'not_supported' || e.code === 'database_not_found' || e.code === 'sync_disabled'))) opts.onError?.(id, e);
      }
    }
    return out;
  };
  let timer: NodeJS.Timeout | undefined;
  if (opts.intervalMs !== undefined && opts.intervalMs > 0) {
    timer = setInterval(() => void compactAll(), opts.intervalMs);
    timer.unref();
  }
  const c: Compaction = { compact, compactAll, stop: () => clearInterval(timer) };
  installed.set(sync, c);
  return c;
}

/** The upload guard: refused when the site downloaded before (cursor > 0) from below the floor. */
function refuseBelowFloor(engine: SyncEngine, site: string): void {
  const floor = engine.compactionFloor();
  if (floor === 0 || !hasTable(engine, 'offsync_device_state')) return;
  const c = cursorOf(engine, site);
  const v = c?.dbVersion ?? 0;
  if (v === 0) return;
  if (acknowledgedBy({ dbVersion: v, seq: c?.seq ?? 0 }) >= floor) return;
  throw new SyncError('resync_required', `This device last downloaded version ${v}; metadata up to version ${floor} was compacted since. Reset the device and download from version 0 before uploading.`);
}
