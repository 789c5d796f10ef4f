/**
 * A short-lived cache of per-database lookups (promises), shared by the database resolver and
 * the RLS policy loader. Failures are never cached; the map is bounded.
 */
export interface PromiseCache<V> {
  /** The cached value for `key` when younger than the TTL, else `load(key)` (cached). */
  get(key: string, load: (key: string) => Promise<V>): Promise<V>;
  /** Forget one key, or everything. */
  invalidate(key?: string): void;
}

export function createPromiseCache<V>(opts: { ttlMs: number; now: () => number; maxEntries?: number }): PromiseCache<V> {
  const cache = new Map<string, { at: number; value: Promise<V> }>();
  const max = opts.maxEntries ?? 10_000;
  return {
    get(key, load) {
      const now = opts.now();
      const hit = cache.get(key);
      if (hit !== undefined && now - hit.at < opts.ttlMs) return hit.value;
      const value = load(key);
      if (opts.ttlMs > 0) {
        cache.set(key, { at: now, value });
        value.catch(() => cache.delete(key));
        if (cache.size > max) cache.delete(cache.keys().next().value ?? key);
      }
      return value;
    },
    invalidate(key) {
      if (key === undefined) cache.clear();
      else cache.delete(key);
    },
  };
}
