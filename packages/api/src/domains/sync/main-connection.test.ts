/**
 * Small writes on a central file's main connection never wait for the write lock synchronously
 * (main-connection.ts): refused at once while a worker's merge holds it, retried on a timer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, test, vi } from 'vitest';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { siteOwnersOf } from './site-owners.ts';
import { toSyncError } from './sync-errors.ts';
import { isSqliteBusyError, writeWhenFree } from './main-connection.ts';

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
  return { path, engine, busyTimeout };
}

const SITE = 'ab'.repeat(16);

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
