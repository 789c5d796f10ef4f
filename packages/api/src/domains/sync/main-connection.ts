/**
 * Writes on a central file's main connection (the event loop's) that must not wait for the write
 * lock synchronously. With central workers, the main connection has a short busy timeout
 * (central-databases.ts `mainBusyTimeoutMs`, 100 ms) during which better-sqlite3 blocks the whole
 * process; a small write that finds a worker's merge holding the lock runs here with no busy wait
 * at all and, refused, is retried after a timer (1 → 50 ms backoff) until its budget is spent.
 */
import { retryWhileBusy } from '../../db/prisma.ts';
import type { SyncEngine } from './sync-deps.ts';

/** SQLITE_BUSY (or one of its extended codes) from better-sqlite3. */
export function isSqliteBusyError(e: unknown): boolean {
  const code = e instanceof Error ? Reflect.get(e, 'code') : undefined;
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_'));
}

const afterWrites = new WeakMap<SyncEngine, () => void>();

/**
 * `fn` runs after each write made through {@link withoutBusyWait} on `engine`'s connection. With
 * central workers the main connection never checkpoints its WAL (central-databases.ts): this is
 * how the file's worker learns that the main connection wrote and should checkpoint.
 *
 * Such writes then commit with `synchronous = NORMAL` (no fsync on the event loop: a claim's
 * commit measured 2 ms p50, 7 ms p90 and 40–70 ms under bench/load.ts's disk traffic). They are
 * durable at the first fsync of the file's WAL after them: the checkpoint `fn` schedules (SQLite
 * syncs the WAL before it copies pages back), or any earlier commit of a worker (`FULL`: its
 * fsync covers every frame before its own). So an upload acknowledged after a claim never
 * outlives it; a crash loses at most the claims and cursors of the last second, as the cursors'
 * write-behind already allows (device-cursors.ts), and a lost claim is made again by the device's
 * next request.
 */
export function afterMainWrites(engine: SyncEngine, fn: () => void): void {
  afterWrites.set(engine, fn);
}

/** `PRAGMA synchronous` NORMAL: WAL commits without fsync (durable at the next sync of the WAL). */
const SYNC_NORMAL = 1;

/**
 * `fn` on `engine`'s connection with its busy timeout set to 0 (restored after): refused at once
 * if the lock is held. With an {@link afterMainWrites} hook, `fn` commits with `synchronous =
 * NORMAL` (restored after; see there why that is durable enough).
 */
export function withoutBusyWait<T>(engine: SyncEngine, fn: () => T): T {
  const after = afterWrites.get(engine);
  const driver = engine.driver;
  const before = Number(driver.prepare('PRAGMA busy_timeout').getRaw()?.[0] ?? 0);
  const sync = after === undefined ? SYNC_NORMAL : Number(driver.prepare('PRAGMA synchronous').getRaw()?.[0] ?? SYNC_NORMAL);
  if (before !== 0) driver.exec('PRAGMA busy_timeout = 0');
  if (sync > SYNC_NORMAL) driver.exec('PRAGMA synchronous = NORMAL');
  let out: T;
  try {
    out = fn();
  } finally {
    if (sync > SYNC_NORMAL) driver.exec(`PRAGMA synchronous = ${Math.trunc(sync)}`);
    if (before !== 0) driver.exec(`PRAGMA busy_timeout = ${Math.trunc(before)}`);
  }
  after?.();
  return out;
}

/**
 * `write` without a synchronous busy wait, retried asynchronously while the lock is held, for at
 * most `budgetMs` (db/prisma.ts `retryWhileBusy`); then the last SQLITE_BUSY is thrown (503
 * `server_busy` for a request).
 */
export function writeWhenFree<T>(engine: SyncEngine, write: () => T, budgetMs: number): Promise<T> {
  return retryWhileBusy(() => withoutBusyWait(engine, write), budgetMs, isSqliteBusyError);
}
