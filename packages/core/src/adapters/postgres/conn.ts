/**
 * Connection plumbing of the PostgreSQL engine: one connection per operation (from a pool, or a
 * single client used serially), array-mode queries, transactions, and the value conversions
 * between SqlValue and query parameters.
 */
import type { Client, Pool, PoolClient } from 'pg';
import type { SqlValue } from '../../types.ts';

export type PgRow = unknown[];

/** What the engine needs from a connection: array-mode queries. */
export interface PgConn {
  q(sql: string, params?: readonly unknown[]): Promise<PgRow[]>;
}

export type PgSource = { pool: Pool; client?: undefined } | { client: Client | PoolClient; pool?: undefined };

function wrap(c: Client | PoolClient): PgConn {
  return {
    async q(sql, params = []) {
      const values = params.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
      const r = await c.query({ text: sql, values, rowMode: 'array' });
      return r.rows as PgRow[];
    },
  };
}

/** Serialises operations on a single client; hands out pooled connections otherwise. */
export class ConnSource {
  readonly #src: PgSource;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(src: PgSource) {
    this.#src = src;
  }

  /** An open pinned transaction (see {@link pin}): every operation runs on it, one at a time. */
  #pinned: { conn: PgConn; tail: Promise<unknown>; end: (commit: boolean) => Promise<void> } | undefined;
  /** The operation holding the pinned connection (resolves once committed or rolled back). */
  #held: Promise<void> = Promise.resolve();

  /**
   * Opens ONE transaction on one connection and runs every later operation in it, serialised,
   * each inside its own savepoint (a failing operation is undone alone), until {@link unpin}
   * commits or rolls it back (the engine's alter flow, docs/PROTOCOL.md §P6 "Alteration").
   */
  async pin(): Promise<void> {
    if (this.#pinned !== undefined) throw new Error('a pinned transaction is already open');
    let end!: (commit: boolean) => void;
    const ended = new Promise<boolean>((resolve) => (end = resolve));
    const conn = await new Promise<PgConn>((resolve, reject) => {
      const held = this.use(async (c) => {
        await c.q('BEGIN');
        resolve(c);
        await c.q((await ended) ? 'COMMIT' : 'ROLLBACK');
      });
      held.catch(reject);
      this.#held = held;
    });
    this.#pinned = {
      conn,
      tail: Promise.resolve(),
      end: async (commit) => {
        end(commit);
        await this.#held;
      },
    };
  }

  /** Whether a pinned transaction is open. */
  get pinned(): boolean {
    return this.#pinned !== undefined;
  }

  /** Commits (true) or rolls back (false) the pinned transaction and returns to normal operation. */
  async unpin(commit: boolean): Promise<void> {
    const p = this.#pinned;
    if (p === undefined) return;
    // Later operations take the normal path; those queued on the pinned connection finish first.
    this.#pinned = undefined;
    await p.tail;
    await p.end(commit);
  }

  /** Runs `fn` on the pinned connection, in a savepoint, after the operations queued before it. */
  pinnedUse<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    const p = this.#pinned;
    if (p === undefined) throw new Error('no pinned transaction is open');
    const run = p.tail.then(async () => {
      await p.conn.q('SAVEPOINT offsync_op');
      try {
        const out = await fn(p.conn);
        await p.conn.q('RELEASE offsync_op');
        return out;
      } catch (e) {
        await p.conn.q('ROLLBACK TO offsync_op; RELEASE offsync_op');
        throw e;
      }
    });
    p.tail = run.catch(() => undefined);
    return run;
  }

  async use<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    if (this.#pinned !== undefined) return this.pinnedUse(fn);
    const src = this.#src;
    if (src.pool !== undefined) {
      const c = await src.pool.connect();
      // pg-pool listens for errors of idle clients only: a connection lost while checked out would
      // otherwise be an uncaught 'error' event (a crashed process). The query in flight fails on
      // its own; the broken client is destroyed on release instead of going back to the pool.
      let broken: Error | undefined;
      const onError = (e: Error): void => {
        broken = e;
      };
      c.on('error', onError);
      try {
        return await fn(wrap(c));
      } finally {
        c.off('error', onError);
        c.release(broken);
      }
    }
    const run = this.#tail.then(() => fn(wrap(src.client)));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  tx<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
    // Pinned: `use` already runs `fn` in a savepoint of the pinned transaction.
    if (this.#pinned !== undefined) return this.pinnedUse(fn);
    return this.use(async (c) => {
      await c.q('BEGIN');
      try {
        const out = await fn(c);
        await c.q('COMMIT');
        return out;
      } catch (e) {
        await c.q('ROLLBACK');
        throw e;
      }
    });
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** A SqlValue as a query parameter: integers and reals as text (cast by the SQL), blobs as Buffers. */
export function toParam(v: SqlValue): string | Buffer | null {
  if (v === null) return null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : String(v);
  if (typeof v === 'string') return v;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function toBytes(v: unknown): Uint8Array {
  const b = v as Uint8Array;
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function hexKey(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
