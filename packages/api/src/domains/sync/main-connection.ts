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
 */
export function afterMainWrites(engine: SyncEngine, fn: () => void): void {
  afterWrites.set(engine, fn);
}

/** `fn` on `engine`'s connection with its busy timeout set to 0 (restored after): refused at once if the lock is held. */
export function withoutBusyWait<T>(engine: SyncEngine, fn: () => T): T {
  const before = Number(engine.driver.prepare('PRAGMA busy_timeout').getRaw()?.[0] ?? 0);
  if (before !== 0) engine.driver.exec('PRAGMA busy_timeout = 0');
  let out: T;
  try {
    out = fn();
  } finally {
    if (before !== 0) engine.driver.exec(`PRAGMA busy_timeout = ${Math.trunc(before)}`);
  }
  afterWrites.get(engine)?.();
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
