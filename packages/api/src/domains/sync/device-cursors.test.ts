/**
 * Device download cursors written behind (device-cursors.ts): readable at once, stored by one
 * flush per file, kept pending while a merge holds the write lock, never moved back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, test, vi } from 'vitest';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { readDeviceStates, recordCursor } from '../devices/device-sync-state.ts';
import { CURSOR_FLUSH_MS, cursorOf, flushDeviceCursors, pendingCursors } from './device-cursors.ts';

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function central() {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-cursors-'));
  dirs.push(dir);
  const path = join(dir, 'central.db');
  new Database(path).close();
  const engine = openSyncDatabase(path, { mustExist: true });
  engine.driver.exec('PRAGMA busy_timeout = 0');
  const stored = () => engine.driver.prepare('SELECT site_id, cursor_version, cursor_seq FROM offsync_device_state ORDER BY site_id').all().map((r) => [r['site_id'], Number(r['cursor_version']), Number(r['cursor_seq'])]);
  return { path, engine, stored };
}

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

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
