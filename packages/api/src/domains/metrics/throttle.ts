/**
 * Turns a stream of change notifications into a stream of snapshots: one right away, then at most
 * one per `intervalMs`, coalescing notifications that arrive in between. With `keyOf`, a snapshot
 * whose key equals the last one sent is not sent (pushed on change only: a notification that
 * changed nothing the subscriber sees yields nothing).
 */
export async function* throttledSnapshots<T>(
  events: AsyncIterable<unknown>,
  snapshot: () => Promise<T>,
  intervalMs: number,
  now: () => number = Date.now,
  keyOf?: (value: T) => string,
): AsyncGenerator<T> {
  const it = events[Symbol.asyncIterator]();
  let last = now();
  const first = await snapshot();
  let lastKey = keyOf?.(first);
  yield first;
  try {
    while (true) {
      const next = await it.next();
      if (next.done === true) return;
      const wait = last + intervalMs - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      last = now();
      const value = await snapshot();
      if (keyOf !== undefined) {
        const key = keyOf(value);
        if (key === lastKey) continue;
        lastKey = key;
      }
      yield value;
    }
  } finally {
    await it.return?.();
  }
}
