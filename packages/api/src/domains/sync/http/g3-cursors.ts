/**
 * G3 `/check` paging state (docs/PROTOCOL.md §P1 and "Continuation cursors"). A
 * non-final batch hands the client a `cursor` per chunk and a `nextCursor`; the client sends one
 * back as `cursor` with the SAME dbVersion/seq (non-final pages do not move its durable cursor),
 * and the server resumes at the exact feed position after that chunk.
 *
 * Cursors are STORED in the shared store (shared-store.ts; Redis with `REDIS_URL`), not signed:
 * on the wire a cursor is a JSON integer (clients keep it as an integer, JavaScript ones as a
 * double), and 53 bits cannot carry a feed position (two versions) plus a MAC. One record per
 * `/check` reply holds the positions after each of its chunks, keyed by (database, site, id) with
 * a random 39-bit id; a chunk's cursor is `id · 2^14 + index`. So any node continues any device's
 * download, and a cursor can only resume where this server said it may:
 * - a cursor of another database or site, a forged one, or one whose record expired finds no
 *   record; one sent with another dbVersion/seq than it was issued for does not match its base;
 *   in every such case the download restarts from the client's durable cursor (it re-sends
 *   changes, merges are idempotent), never from another position, so no page is skipped.
 *
 * Slow start (docs/PROTOCOL.md "Packages"): a record also holds, per chunk, the byte budget of
 * the page that follows it, so the pages of one drain keep growing across `/check` calls; a
 * download that (re)starts at the durable cursor starts again with a small page. A record
 * written without budgets (an older node) resumes at full pages.
 */
import { randomInt } from 'node:crypto';
import type { Cursor } from '../download-pages.ts';
import { MemorySharedStore } from '../shared-store.ts';
import type { SharedStore } from '../shared-store.ts';

/** Chunks per reply are capped at 10,000 (handler), below 2^14. */
const INDEX_BITS = 2 ** 14;
/** Ids below 2^39: `id · 2^14 + index` stays a safe integer. */
const MAX_ID = 2 ** 39;

interface CursorRecord {
  /** The durable cursor the reply was computed from. */
  b: [number, number];
  /** Feed position after each chunk of the reply, and the budget of the page after it (absent: full pages). */
  p: Array<[number, number] | [number, number, number]>;
}

/** Where a `/check` resumes. */
export interface Resume {
  after: Cursor;
  /** Byte budget of the next page (slow start); undefined at the start of a drain. */
  pageBytes?: number | undefined;
  /** False when the download (re)starts at the durable cursor. */
  continued: boolean;
}

const key = (db: string, site: string, id: number): string => `c:${db}:${site}:${id}`;

export class G3Cursors {
  readonly #store: SharedStore;
  readonly ttlMs: number;

  constructor(opts: { store?: SharedStore; ttlMs?: number; now?: () => number } = {}) {
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.#store = opts.store ?? new MemorySharedStore(opts.now === undefined ? {} : { now: opts.now });
  }

  /**
   * Cursor numbers resuming after each of `positions` (one reply's chunks, in order), one store
   * write; `nextPageBytes[i]`: the budget of the page after chunk i.
   */
  async issue(db: string, site: string, base: Cursor, positions: readonly Cursor[], nextPageBytes?: readonly number[]): Promise<number[]> {
    if (positions.length === 0) return [];
    if (positions.length > INDEX_BITS) throw new Error(`at most ${INDEX_BITS} cursors per reply`);
    const id = randomInt(1, MAX_ID);
    const rec: CursorRecord = {
      b: [base.dbVersion, base.seq],
      p: positions.map((p, i) => {
        const n = nextPageBytes?.[i];
        return n === undefined ? [p.dbVersion, p.seq] : [p.dbVersion, p.seq, n];
      }),
    };
    await this.#store.set(key(db, site, id), JSON.stringify(rec), this.ttlMs);
    return positions.map((_, i) => id * INDEX_BITS + i);
  }

  /** Where to resume for `cursor` (0, unknown, or issued for another base: at `base`, not continued). */
  async resolve(db: string, site: string, base: Cursor, cursor: number): Promise<Resume> {
    const restart: Resume = { after: base, continued: false };
    if (!Number.isSafeInteger(cursor) || cursor < INDEX_BITS) return restart;
    const id = Math.floor(cursor / INDEX_BITS);
    const index = cursor % INDEX_BITS;
    const raw = await this.#store.get(key(db, site, id));
    if (raw === undefined) return restart;
    let rec: CursorRecord;
    try {
      rec = JSON.parse(raw.toString('utf8')) as CursorRecord;
    } catch {
      return restart;
    }
    if (rec.b[0] !== base.dbVersion || rec.b[1] !== base.seq) return restart;
    const p = rec.p[index];
    if (p === undefined) return restart;
    const budget = p[2];
    return { after: { dbVersion: p[0], seq: p[1] }, pageBytes: typeof budget === 'number' && Number.isSafeInteger(budget) && budget > 0 ? budget : undefined, continued: true };
  }
}
