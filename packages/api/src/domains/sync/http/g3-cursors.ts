/**
 * G3 `/check` paging state (protocol reference A.4). A non-final batch hands the client a
 * `nextCursor`; the client sends it back as `cursor` with the SAME dbVersion/seq (non-final
 * pages do not move its durable cursor). The server maps each cursor number to the exact feed
 * position after that chunk. Kept in memory with a TTL: an unknown or stale cursor restarts
 * from the client's durable cursor, which only re-sends changes (merges are idempotent).
 */
import type { Cursor } from '../download-pages.ts';

interface Resume {
  db: string;
  site: string;
  base: Cursor;
  position: Cursor;
  exp: number;
}

export class G3Cursors {
  readonly #map = new Map<number, Resume>();
  readonly #ttlMs: number;
  readonly #now: () => number;
  #next = 1;

  constructor(ttlMs = 10 * 60_000, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** A new cursor number resuming after `position`. */
  issue(db: string, site: string, base: Cursor, position: Cursor): number {
    const now = this.#now();
    if (this.#map.size > 10_000) for (const [k, v] of this.#map) if (v.exp < now) this.#map.delete(k);
    const id = this.#next++;
    this.#map.set(id, { db, site, base, position, exp: now + this.#ttlMs });
    return id;
  }

  /** Where to resume for `cursor` (0 or unknown: at `base`). */
  resolve(db: string, site: string, base: Cursor, cursor: number): Cursor {
    if (cursor <= 0) return base;
    const r = this.#map.get(cursor);
    if (r === undefined || r.exp < this.#now() || r.db !== db || r.site !== site) return base;
    if (r.base.dbVersion !== base.dbVersion || r.base.seq !== base.seq) return base;
    return r.position;
  }
}
