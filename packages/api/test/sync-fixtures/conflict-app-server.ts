/**
 * The real OffSync app (createApp, SQLite control plane in a temp dir) for the conflict-log test
 * with the real SQLite Sync client 0.9.99 and OffSync's client. Runs in a worker thread through
 * `startServerInWorker` (the wasm client blocks the test's thread in synchronous XHR).
 *
 * `control(message)`:
 * - `{type:'setup', ddl, table, users}` → a new database with `ddl` deployed, OffSync on (RLS
 *   BYPASS) and one access token per user: `{ databaseId, tokens: { user: token } }`;
 * - `{type:'gql', query, variables}` → the `data` of a GraphQL operation with the admin key;
 * - `{type:'rows', databaseId, sql}` → rows of the central database (through the open engine);
 * - `{type:'dispose'}` → disposes the app.
 */
import type { Server } from 'node:http';
import { centralRows, createAccessToken, setupDatabase, startApp } from '../data-plane-fixtures.ts';

export async function startConflictAppServer(): Promise<{ server: Server; control: (m: unknown) => unknown }> {
  const t = await startApp({ rateLimitPerSecond: 0 });
  return {
    server: t.app.server,
    async control(message: unknown) {
      const m = message as { type: string; databaseId?: string; sql?: string; ddl?: string; table?: string; users?: string[]; query?: string; variables?: Record<string, unknown> };
      switch (m.type) {
        case 'setup': {
          const { databaseId } = await setupDatabase(t, m.ddl ?? '', [m.table ?? '']);
          const tokens: Record<string, string> = {};
          for (const u of m.users ?? []) tokens[u] = await createAccessToken(t, databaseId, u);
          return { databaseId, tokens };
        }
        case 'gql':
          return t.gql(m.query ?? '', m.variables ?? {});
        case 'rows': {
          const open = t.app.sync.databases.peek(m.databaseId ?? '');
          return open === undefined ? centralRows(t, m.databaseId ?? '') : open.driver.prepare(m.sql ?? '').all();
        }
        case 'dispose':
          await t.dispose();
          return null;
        default:
          throw new Error(`unknown control message ${JSON.stringify(message)}`);
      }
    },
  };
}
