/**
 * A PostgreSQL database for tests of POSTGRES workspaces: a fresh database on the server of
 * `TEST_DATABASE_URL` (dropped by `close()`), else an embedded PGlite served over the wire
 * protocol on a loopback port (one session: the app must use a pool of one connection).
 */
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';

export interface TestPostgres {
  /** Connection settings as `createDatabase(connection:)` takes them. */
  connection: { host: string; port: number; database: string; user: string; password: string };
  /** Connections the app may use per database (1 on PGlite). */
  poolSize: number;
  /** False on PGlite: every session is its superuser, whatever user logs in. */
  authenticatesUsers: boolean;
  /** False on PGlite: its socket server shares one session between connections, so a LISTEN connection is not kept. */
  notifies: boolean;
  /** Runs SQL as the superuser on the test database, like psql would (array rows). */
  sql(text: string, params?: unknown[]): Promise<unknown[][]>;
  close(): Promise<void>;
}

export async function openTestPostgres(): Promise<TestPostgres> {
  const url = process.env['TEST_DATABASE_URL'];
  if (url) {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const name = `offsync_t_${randomBytes(5).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(url);
    const connection = { host: u.hostname, port: Number(u.port || 5432), database: name, user: decodeURIComponent(u.username || 'postgres'), password: decodeURIComponent(u.password) };
    const client = new pg.Client({ ...connection, password: connection.password || undefined });
    await client.connect();
    return {
      connection,
      poolSize: 4,
      authenticatesUsers: true,
      notifies: true,
      async sql(text, params = []) {
        return (await client.query({ text, values: params, rowMode: 'array' })).rows as unknown[][];
      },
      async close() {
        await client.end();
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      },
    };
  }
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 32 });
  await server.start();
  const [host, port] = server.getServerConn().split(':');
  return {
    connection: { host: host ?? '127.0.0.1', port: Number(port), database: 'postgres', user: 'postgres', password: 'unused-by-pglite' },
    poolSize: 1,
    authenticatesUsers: false,
    notifies: false,
    async sql(text, params = []) {
      return (await db.query<unknown[]>(text, params, { rowMode: 'array' })).rows;
    },
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
