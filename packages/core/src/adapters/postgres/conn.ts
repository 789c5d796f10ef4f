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

  async use<T>(fn: (c: PgConn) => Promise<T>): Promise<T> {
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
