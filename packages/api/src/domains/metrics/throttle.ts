/**
 * Turns a stream of change notifications into a stream of snapshots: one right away, then at most
 * one per `intervalMs`, coalescing notifications that arrive in between.
 */
export async function* throttledSnapshots<T>(
  events: AsyncIterable<unknown>,
  snapshot: () => Promise<T>,
  intervalMs: number,
  now: () => number = Date.now,
): AsyncGenerator<T> {
  const it = events[Symbol.asyncIterator]();
  let last = now();
  yield await snapshot();
  try {
    while (true) {
      const next = await it.next();
      if (next.done === true) return;
      const wait = last + intervalMs - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      last = now();
      yield await snapshot();
    }
  } finally {
    await it.return?.();
  }
}
