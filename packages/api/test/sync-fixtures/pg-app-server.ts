/**
 * The real OffSync app with a POSTGRES database as its central database (TEST_DATABASE_URL or an
 * embedded PGlite, sync-fixtures/postgres.ts), for end-to-end tests with the real SQLite Sync
 * clients. Runs in a worker thread through `startServerInWorker` (the wasm 0.9.99 client blocks
 * the test's thread in synchronous XHR).
 *
 * `control(message)`:
 * - `{type:'info'}` → `{ databaseId, apiKey }` of the database set up at start: `todos` in
 *   PostgreSQL, deployed, OffSync on, one API key;
 * - `{type:'sql', sql}` → rows (arrays) of a statement run on the PostgreSQL database, as psql would;
 * - `{type:'dispose'}` → disposes the app and the database.
 */
import type { Server } from 'node:http';
import { startApp } from '../data-plane-fixtures.ts';
import { openTestPostgres } from './postgres.ts';

export const PG_TODOS_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0)";

export async function startPgAppServer(): Promise<{ server: Server; control: (m: unknown) => unknown }> {
  const pg = await openTestPostgres();
  await pg.sql(PG_TODOS_DDL);
  const t = await startApp({ postgresPoolSize: pg.poolSize, postgresListen: pg.notifies, rateLimitPerSecond: 0 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "pg", kind: POSTGRES) { id } }');
  const c = pg.connection;
  const d = await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id } }', {
    p: p.createProject.id,
    c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) },
  });
  const databaseId = d.createDatabase.id;
  await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["todos"]) { added } }', { d: databaseId });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const k = await t.gql<{ createApiKey: { secret: string } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret } }', { d: databaseId });
  const apiKey = k.createApiKey.secret;
  return {
    server: t.app.server,
    async control(m: unknown) {
      const msg = m as { type: string; sql?: string };
      if (msg.type === 'info') return { databaseId, apiKey };
      if (msg.type === 'sql') return pg.sql(msg.sql ?? '');
      if (msg.type === 'dispose') {
        await t.dispose();
        await pg.close();
        return null;
      }
      throw new Error(`unknown control message ${msg.type}`);
    },
  };
}
