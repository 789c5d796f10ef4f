/**
 * Test helpers for the PostgreSQL engine (not exported from the package entry): a context with
 * its own random table schema and `offsync_<rand>` metadata schema (dropped by `drop()`), feed
 * collection, clock lists comparable with `testing/replica.ts` `clockRows`, and payload exchange
 * with SQLite replicas.
 */
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import type { Pool } from 'pg';
import { encodePayload } from '../../codec/payload.ts';
import type { SyncEngine } from '../../engine/engine.ts';
import type { Change, SqlValue } from '../../types.ts';
import { createPgSyncEngine } from './index.ts';
import type { PgSyncEngine } from './engine.ts';

export interface PgCtx {
  engine: PgSyncEngine;
  pool: Pool;
  nsp: string;
  /** Runs SQL in the test table schema (params as $1…). */
  sql(text: string, params?: unknown[]): Promise<unknown[][]>;
  drop(): Promise<void>;
}

export async function openPgContext(p: Pool, ddl: string, tables: readonly string[], flags = 0): Promise<PgCtx> {
  const tag = randomBytes(5).toString('hex');
  const nsp = `t_${tag}`;
  const meta = `offsync_${tag}`;
  await p.query(`CREATE SCHEMA ${nsp}`);
  const sql = async (text: string, params: unknown[] = []): Promise<unknown[][]> => {
    const c = await p.connect();
    try {
      await c.query(`SET search_path TO ${nsp}`);
      const r = await c.query({ text, values: params, rowMode: 'array' });
      return r.rows as unknown[][];
    } finally {
      await c.query('RESET search_path');
      c.release();
    }
  };
  await sql(ddl);
  const engine = await createPgSyncEngine({ pool: p, schema: meta, tablesSchema: nsp });
  for (const t of tables) await engine.init(t, undefined, flags);
  return { engine, pool: p, nsp, sql, drop: async () => void (await p.query(`DROP SCHEMA ${nsp} CASCADE; DROP SCHEMA ${meta} CASCADE`)) };
}

export async function collect(it: AsyncIterable<Change>): Promise<Change[]> {
  const out: Change[] = [];
  for await (const c of it) out.push(c);
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();

export const clockLine = (c: Change): string => `${hex(c.pk)}/${c.col}=${c.colVersion}@${c.cl}`;

export async function pgClockRows(e: PgSyncEngine, table: string): Promise<string[]> {
  return (await collect(e.changes({ tables: [table] }))).map(clockLine).sort();
}

export async function pgToLite(from: PgSyncEngine, to: SyncEngine): Promise<number> {
  const changes = await collect(from.changes({ excludeSiteId: to.siteId }));
  const payload = encodePayload(changes, { schemaHash: await from.schemaHash() });
  return payload === null ? 0 : to.applyPayload(payload).applied;
}

export async function liteToPg(from: SyncEngine, to: PgSyncEngine): Promise<number> {
  const payload = from.encodeChanges([...from.changes({ excludeSiteId: to.siteId })]);
  return payload === null ? 0 : (await to.applyPayload(payload)).applied;
}

/** Type-normalised, order-independent row list. */
export function normRows(rows: readonly (readonly SqlValue[])[]): string[] {
  return rows.map((r) => JSON.stringify(r.map((v) => (v instanceof Uint8Array ? `x${hex(v)}` : typeof v === 'bigint' ? `i${v}` : v)))).sort();
}

/**
 * A pool on `TEST_DATABASE_URL` when set, else on an embedded PGlite served over the PG wire
 * protocol on a loopback port (one connection: PGlite has a single session). `close()` ends both.
 */
export async function openTestPool(): Promise<{ pool: pg.Pool; close(): Promise<void> }> {
  let url = process.env['TEST_DATABASE_URL'];
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    const db = await PGlite.create();
    const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 32 });
    await server.start();
    url = `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`;
    stop = async () => {
      await server.stop();
      await db.close();
    };
  }
  const pool = new pg.Pool({ connectionString: url, max: stop ? 1 : 4 });
  return {
    pool,
    async close() {
      await pool.end();
      await stop?.();
    },
  };
}
