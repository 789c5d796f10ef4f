/**
 * Small writes on a central file's main connection never wait for the write lock synchronously
 * (main-connection.ts): refused at once while a worker's merge holds it, retried on a timer. Device
 * download cursors (device-cursors.ts) are such writes: readable at once, stored by one flush per
 * file, kept pending while the lock is held.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, test, vi } from 'vitest';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { readDeviceStates, recordCursor } from '../devices/device-sync-state.ts';
import { CURSOR_FLUSH_MS, cursorOf, flushDeviceCursors, pendingCursors } from './device-cursors.ts';
import { siteOwnersOf } from './site-owners.ts';
import { toSyncError } from './sync-errors.ts';
import { afterMainWrites, isSqliteBusyError, withoutBusyWait, writeWhenFree } from './main-connection.ts';

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function central() {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-main-conn-'));
  dirs.push(dir);
  const path = join(dir, 'central.db');
  new Database(path).close();
  const engine = openSyncDatabase(path, { mustExist: true });
  engine.driver.exec('PRAGMA busy_timeout = 100'); // what central-databases.ts gives the main connection
  const busyTimeout = () => Number(engine.driver.prepare('PRAGMA busy_timeout').getRaw()?.[0]);
  const stored = () => engine.driver.prepare('SELECT site_id, cursor_version, cursor_seq FROM offsync_device_state ORDER BY site_id').all().map((r) => [r['site_id'], Number(r['cursor_version']), Number(r['cursor_seq'])]);
  return { path, engine, busyTimeout, stored };
}

const SITE = 'ab'.repeat(16);
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

test('a first claim while another connection holds the write lock is refused at once (no busy wait), retried on a timer, and lands', async () => {
  vi.useFakeTimers();
  const { path, engine, busyTimeout } = central();
  const owners = siteOwnersOf(engine);
  const merge = new Database(path);
  merge.exec('BEGIN IMMEDIATE'); // a central worker's merge
  const seen: number[] = [];
  const claimed = writeWhenFree(engine, () => {
    seen.push(busyTimeout()); // the attempt runs with no synchronous wait for the lock
    return owners.claim(SITE, 'user:alice');
  }, 5_000);
  let result: string | undefined;
  void claimed.then((r) => (result = r));
  await vi.advanceTimersByTimeAsync(20);
  expect(result).toBeUndefined();
  expect(seen.length).toBeGreaterThan(1); // refused and tried again, the event loop free meanwhile
  expect(seen.every((b) => b === 0)).toBe(true);
  expect(busyTimeout()).toBe(100); // restored between attempts
  merge.exec('COMMIT');
  merge.close();
  await vi.advanceTimersByTimeAsync(60);
  expect(result).toBe('user:alice');
  expect(owners.ownerOf(SITE)).toBe('user:alice');
  engine.close();
});

test('past its budget the write fails with SQLITE_BUSY, which a request answers with 503 server_busy; nothing was claimed', async () => {
  const { path, engine } = central();
  const owners = siteOwnersOf(engine);
  const merge = new Database(path);
  merge.exec('BEGIN IMMEDIATE');
  const failure = await writeWhenFree(engine, () => owners.claim(SITE, 'user:bob'), 0).catch((e: unknown) => e);
  expect(isSqliteBusyError(failure)).toBe(true);
  expect(toSyncError(failure).code).toBe('server_busy');
  merge.exec('ROLLBACK');
  merge.close();
  expect(owners.ownerOf(SITE)).toBeUndefined();
  engine.close();
});

test('a recorded cursor is read at once, written by one flush for every device of the file', () => {
  const { engine, stored } = central();
  recordCursor(engine, A, { dbVersion: 5, seq: 2 }, 1_000);
  recordCursor(engine, B, { dbVersion: 7, seq: 0 }, 1_001);
  recordCursor(engine, A, { dbVersion: 9, seq: 1 }, 1_002);
  expect(stored()).toEqual([]); // nothing written on the request path
  expect(cursorOf(engine, A)).toMatchObject({ dbVersion: 9, seq: 1 });
  expect(readDeviceStates(engine).get(B)?.cursor).toEqual({ dbVersion: 7, seq: 0, at: new Date(1_001) });
  flushDeviceCursors(engine);
  expect(stored()).toEqual([[A, 9, 1], [B, 7, 0]]);
  expect(pendingCursors(engine).size).toBe(0);
  expect(cursorOf(engine, A)).toEqual({ dbVersion: 9, seq: 1 }); // now from the table
  engine.close();
});

test('the timer flushes by itself', () => {
  vi.useFakeTimers();
  const { engine, stored } = central();
  recordCursor(engine, A, { dbVersion: 3, seq: 0 }, 1);
  vi.advanceTimersByTime(CURSOR_FLUSH_MS - 1);
  expect(stored()).toEqual([]);
  vi.advanceTimersByTime(1);
  expect(stored()).toEqual([[A, 3, 0]]);
  engine.close();
});

test('a flush refused while another connection holds the write lock keeps the cursors pending, and retries', () => {
  vi.useFakeTimers();
  const { path, engine, stored } = central();
  recordCursor(engine, A, { dbVersion: 4, seq: 0 }, 1);
  const other = new Database(path);
  other.exec('BEGIN IMMEDIATE');
  expect(() => flushDeviceCursors(engine)).toThrow(/busy|locked/i);
  expect(cursorOf(engine, A)).toMatchObject({ dbVersion: 4 });
  expect(pendingCursors(engine).size).toBe(1);
  other.exec('COMMIT');
  other.close();
  vi.advanceTimersByTime(CURSOR_FLUSH_MS);
  expect(stored()).toEqual([[A, 4, 0]]);
  expect(pendingCursors(engine).size).toBe(0);
  engine.close();
});

test("with a worker behind the file (an afterMainWrites hook), the main connection's small writes commit without fsync (synchronous NORMAL) and the setting comes back; without one they keep it", () => {
  const { engine } = central();
  engine.driver.exec('PRAGMA synchronous = FULL');
  const synchronous = () => Number(engine.driver.prepare('PRAGMA synchronous').getRaw()?.[0]);
  const during: number[] = [];
  const write = () =>
    withoutBusyWait(engine, () => {
      during.push(synchronous());
      engine.driver.exec("CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1)");
    });
  write();
  let hooked = 0;
  afterMainWrites(engine, () => hooked++);
  write();
  // A write that throws restores it too.
  expect(() => withoutBusyWait(engine, () => {
    during.push(synchronous());
    throw new Error('refused');
  })).toThrow('refused');
  expect(during).toEqual([2, 1, 1]); // FULL, then NORMAL under the hook
  expect(synchronous()).toBe(2);
  expect(hooked).toBe(1);
  expect(Number(engine.driver.prepare('SELECT count(*) FROM t').getRaw()?.[0])).toBe(2);
});
