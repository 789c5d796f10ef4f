/**
 * Download cursors of devices, written behind (docs/ARCHITECTURE.md "Devices and traffic"): the
 * last `after` of each device's download request goes to the central file's
 * `offsync_device_state` (created by devices/device-sync-state.ts) at most `CURSOR_FLUSH_MS`
 * later, all pending sites of a file in ONE transaction, instead of one synchronous write per
 * download on the event loop (a commit each, and up to the main connection's busy timeout when a
 * central worker's merge holds the write lock: bench/load.ts measured ~6 s of blocked main thread
 * in 24 s of mixed load).
 *
 * Readers that decide something from a cursor (the compaction floor and its upload guard, the
 * devices' backlog) read {@link cursorOf} / {@link pendingCursors} first, so a pending cursor counts
 * as recorded. A flush never waits for the write lock (main-connection.ts): refused with
 * SQLITE_BUSY, the cursors stay pending for the next one; pending cursors
 * are flushed before the registry closes a file (`flushDeviceCursors`). A crash loses at most the
 * last window: the stored cursor is then older, which only makes compaction more conservative.
 */
import { withoutBusyWait } from './main-connection.ts';
import type { SyncEngine } from './sync-deps.ts';

export const CURSOR_FLUSH_MS = 1000;

export interface DeviceCursor {
  dbVersion: number;
  seq: number;
  /** When it was recorded (ms). */
  at: number;
}

interface Pending {
  cursors: Map<string, DeviceCursor>;
  timer: ReturnType<typeof setTimeout> | undefined;
  flushMs: number;
  /** Told what a timer's flush threw (SQLITE_BUSY included: the cursors stay pending). */
  onError: ((e: unknown) => void) | undefined;
}

const pendingOf = new WeakMap<SyncEngine, Pending>();

const UPSERT = `INSERT INTO offsync_device_state (site_id, cursor_version, cursor_seq, cursor_at) VALUES (?, ?, ?, ?)
  ON CONFLICT(site_id) DO UPDATE SET cursor_version = excluded.cursor_version, cursor_seq = excluded.cursor_seq, cursor_at = excluded.cursor_at`;

/** A flush of `engine`'s cursors `p.flushMs` from now, unless one is already due. */
function schedule(engine: SyncEngine, p: Pending): void {
  if (p.timer !== undefined) return;
  p.timer = setTimeout(() => {
    p.timer = undefined;
    try {
      flushDeviceCursors(engine);
    } catch (e) {
      p.onError?.(e);
    }
  }, p.flushMs);
  p.timer.unref?.();
}

/** Remembers `site`'s cursor, written by the next flush of `engine` (≤ `flushMs` from now). */
export function noteDeviceCursor(engine: SyncEngine, site: string, cursor: DeviceCursor, flushMs = CURSOR_FLUSH_MS, onError?: (e: unknown) => void): void {
  let p = pendingOf.get(engine);
  if (p === undefined) pendingOf.set(engine, (p = { cursors: new Map(), timer: undefined, flushMs, onError }));
  p.cursors.set(site, cursor);
  schedule(engine, p);
}

/** `site`'s cursor: the pending one, else the stored one; undefined when it never downloaded. */
export function cursorOf(engine: SyncEngine, site: string): { dbVersion: number; seq: number } | undefined {
  const p = pendingOf.get(engine)?.cursors.get(site);
  if (p !== undefined) return p;
  const r = engine.driver.prepare('SELECT cursor_version, cursor_seq FROM offsync_device_state WHERE site_id = ?').getRaw(site);
  if (r === undefined || r[0] === null || r[0] === undefined) return undefined;
  return { dbVersion: Number(r[0]), seq: Number(r[1] ?? 0) };
}

/** Cursors recorded and not written yet. */
export function pendingCursors(engine: SyncEngine): ReadonlyMap<string, DeviceCursor> {
  return pendingOf.get(engine)?.cursors ?? new Map();
}

/**
 * Writes `engine`'s pending cursors in one transaction. Throws what the write threw (SQLITE_BUSY:
 * a merge holds the lock), keeping them pending and the next flush scheduled.
 */
export function flushDeviceCursors(engine: SyncEngine): void {
  const p = pendingOf.get(engine);
  if (p === undefined || p.cursors.size === 0) return;
  try {
    // No synchronous wait for the lock on the event loop: refused, it is tried again later.
    withoutBusyWait(engine, () =>
      engine.driver.transaction(() => {
        const st = engine.driver.prepare(UPSERT);
        for (const [site, c] of p.cursors) st.run(site, BigInt(c.dbVersion), BigInt(Math.min(c.seq, Number.MAX_SAFE_INTEGER)), BigInt(c.at));
      }),
    );
  } catch (e) {
    schedule(engine, p);
    throw e;
  }
  // The write is synchronous: nothing was noted meanwhile, everything pending was written.
  p.cursors.clear();
  if (p.timer !== undefined) {
    clearTimeout(p.timer);
    p.timer = undefined;
  }
}
