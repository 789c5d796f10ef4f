/**
 * Live mode on top of {@link SyncTransport.subscribe}, whatever the transport:
 *
 * - Subscription batches (`notice.cursor`, graphql-ws): each payload is applied atomically and the
 *   durable cursor moves to the batch's cursor in the same transaction, so the cursor never passes
 *   an unapplied batch. Replay pages report `progress`; the first `final` batch means caught up.
 * - Pull hints (`{}`, polling): receive from the durable cursor, then push pending local writes.
 * - Local writes: a probe (`PRAGMA data_version` + `total_changes()` on the engine's connection,
 *   every `watchMs`) or {@link LiveHandle.notifyLocalWrite} schedules a push `pushDebounceMs`
 *   later; writes made meanwhile go in the same push. A failed push is retried with backoff.
 *
 * Everything runs through the database's exclusive queue, so it never interleaves with `sync()`.
 * States: connecting (socket opening) → syncing (acknowledged, replaying) → live (caught up); a
 * network error → offline until the next attempt, a non-retryable one → error (and live mode
 * stops: no resubscription, no more pushes). Polls are silent while live.
 */
import type { SqlDriver } from '@offsync/core';
import { backoffDelay } from './backoff.ts';
import type { BackoffOptions } from './backoff.ts';
import { SyncError } from './http.ts';
import { isResyncRequired } from './resync.ts';
import { runAsync } from './session.ts';
import type { SyncSession } from './session.ts';
import type { ConnectionMachine } from './state-machine.ts';
import type { ChangeNotice, Subscription, SyncTransport } from './transport.ts';
import type { Cursor } from './types.ts';

export interface LiveDeps {
  transport: SyncTransport;
  session: SyncSession;
  signal: AbortSignal;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  machine: ConnectionMachine;
  reportError(error: unknown, attempt: number): Error;
  /** Backoff of push retries. */
  backoff?: BackoffOptions;
  /** Delay between a detected local write and its push (default 10 ms). */
  pushDebounceMs?: number;
  /** Local-write probe interval (default 10 ms; 0 = only `notifyLocalWrite()`). */
  watchMs?: number;
}

export interface LiveHandle extends Subscription {
  /** Push pending local writes soon (the probe would notice them within `watchMs` anyway). */
  notifyLocalWrite(): void;
}

export function liveLoop(d: LiveDeps): LiveHandle {
  let failures = 0;
  let caughtUp = false;
  let replay = { chunks: 0, rows: 0, bytes: 0 };
  const m = d.machine;
  const toLive = (): void => {
    if (m.state === 'offline' || m.state === 'error') m.send('start');
    m.send('connected');
    m.send('caughtUp');
  };
  const pusher = localWritePusher(d, () => {
    if (caughtUp) toLive();
  });

  const applyBatch = (notice: ChangeNotice & { cursor: Cursor }): void => {
    const to = notice.cursor;
    const s = d.session;
    if (notice.payload === undefined) {
      s.engine.driver.transaction(() => s.settings.advanceCursor(to));
      return;
    }
    const r = s.applyPage(notice.payload, () => to);
    if (!caughtUp) {
      replay = { chunks: replay.chunks + 1, rows: replay.rows + r.rows, bytes: replay.bytes + notice.payload.length };
      s.opts.onProgress?.({ phase: 'download', ...replay });
    }
    if (r.rows > 0) s.opts.onChanges?.(r);
  };

  let resyncing = false;
  const sub = d.transport.subscribe({
    cursor: () => d.session.settings.cursor(),
    signal: d.signal,
    onConnecting: () => {
      caughtUp = false;
      replay = { chunks: 0, rows: 0, bytes: 0 };
      if (m.state === 'offline' || m.state === 'error') m.send('start');
    },
    onOpen: () => void m.send('connected'),
    onChanges: (notice) =>
      d.exclusive(async () => {
        if (d.signal.aborted) return;
        const cursor = notice.cursor;
        if (cursor !== undefined) {
          applyBatch({ ...notice, cursor });
          if (notice.final !== true) return;
          if (!caughtUp) pusher.poke(); // writes made while offline go out on reconnect
        } else {
          if (m.state === 'offline' || m.state === 'error') m.send('start');
          if (notice.payload !== undefined) d.session.applyNotice(notice.payload, notice.watermark);
          else {
            try {
              await runAsync(d.session.receive(), d.transport);
            } catch (e) {
              // resync_required (a poll's check below the compaction floor): start over, keep own writes.
              if (!isResyncRequired(e)) throw e;
              await runAsync(d.session.resync(), d.transport);
            }
          }
          if (d.session.hasPendingLocal()) await runAsync(d.session.send(), d.transport);
        }
        caughtUp = true;
        failures = 0;
        toLive();
      }),
    onError: (e) => {
      caughtUp = false;
      if (isResyncRequired(e)) {
        // The subscription's cursor is below the compaction floor: resync (once at a time); the
        // transport resubscribes from the new cursor (the error is retryable for that).
        if (!resyncing) {
          resyncing = true;
          void d
            .exclusive(() => runAsync(d.session.resync(), d.transport))
            .catch((err: unknown) => void d.reportError(err, failures++))
            .finally(() => (resyncing = false));
        }
        return;
      }
      // A non-retryable error (refused or revoked credential, device removed, sync disabled) ends
      // live mode: the transport stops resubscribing and local writes are no longer pushed.
      if (e instanceof SyncError && !e.retryable) pusher.stop();
      void d.reportError(e, failures++);
    },
  });
  return {
    close: () => {
      pusher.stop();
      sub.close();
    },
    notifyLocalWrite: () => pusher.poke(),
  };
}

/** A cheap key that changes whenever anything is committed to the database (by any connection). */
function writeProbe(driver: SqlDriver): () => string {
  const st = driver.prepare('SELECT total_changes(), (SELECT data_version FROM pragma_data_version())');
  return () => {
    const r = st.getRaw();
    return r === undefined ? '' : `${String(r[0])}:${String(r[1])}`;
  };
}

interface Pusher {
  poke(): void;
  stop(): void;
}

function localWritePusher(d: LiveDeps, onPushed: () => void): Pusher {
  const debounce = d.pushDebounceMs ?? 10;
  const watchMs = d.watchMs ?? 10;
  const probe = writeProbe(d.session.engine.driver);
  let last = probe();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  let again = false;
  let failures = 0;

  const schedule = (ms: number): void => {
    if (d.signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    if (timer !== undefined) return;
    timer = setTimeout(fire, ms);
    timer.unref();
  };
  const fire = (): void => {
    timer = undefined;
    if (d.signal.aborted) return;
    running = true;
    d.exclusive(async () => {
      if (d.signal.aborted || !d.session.hasPendingLocal()) return;
      await runAsync(d.session.send(), d.transport);
    }).then(
      () => {
        failures = 0;
        running = false;
        onPushed();
        if (again) {
          again = false;
          schedule(debounce);
        }
      },
      (e: unknown) => {
        running = false;
        again = false;
        if (d.signal.aborted) return;
        d.reportError(e, failures);
        if (!(e instanceof SyncError) || e.retryable) schedule(backoffDelay(failures++, d.backoff));
      },
    );
  };

  const watch =
    watchMs > 0
      ? setInterval(() => {
          const key = probe();
          if (key === last) return;
          last = key;
          schedule(debounce);
        }, watchMs)
      : undefined;
  watch?.unref();
  return {
    poke: () => schedule(debounce),
    stop: () => {
      clearInterval(watch);
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
