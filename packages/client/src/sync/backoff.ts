/** Randomised exponential backoff ("equal jitter"): half fixed, half random, capped. */
export interface BackoffOptions {
  /** First delay (default 250 ms). */
  baseMs?: number;
  /** Cap (default 30 s). */
  maxMs?: number;
  /** Uniform random in [0, 1) (default Math.random). */
  random?: () => number;
}

export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const base = opts.baseMs ?? 250;
  const max = opts.maxMs ?? 30_000;
  const exp = Math.min(max, base * 2 ** Math.min(attempt, 30));
  const r = (opts.random ?? Math.random)();
  return Math.round(exp / 2 + (exp / 2) * r);
}

/** `setTimeout` as a promise that an AbortSignal can cut short. */
export function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
