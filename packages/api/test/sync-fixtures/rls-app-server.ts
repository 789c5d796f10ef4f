/**
 * The real OffSync app (createApp, SQLite control plane in a temp dir) for end-to-end tests with
 * the real SQLite Sync clients under row-level security. Runs in a worker thread through
 * `startServerInWorker` (the wasm 0.9.99 client blocks the test's thread in synchronous XHR).
 *
 * Per-credential request rates are OFF (`rateLimitPerSecond: 0`): 1.1.4 sends a chunked batch
 * back to back, faster than the default 20 requests/s; quotas are tested in their own files.
 *
 * `control(message)`:
 * - `{type:'setup', ddl, table, users}` → a new database with `ddl` deployed, OffSync on, RLS
 *   ENFORCE with `owner = auth_userid()` policies on all four operations, and one access token
 *   per user: `{ databaseId, tokens: { user: token } }`;
 * - `{type:'rows', databaseId, sql}` → rows of the central database;
 * - `{type:'rejections', databaseId}` → the rejection log, oldest first;
 * - `{type:'requests'}` / `{type:'clearRequests'}` → sync calls seen (method, path, status, JSON body of the reply);
 * - `{type:'dispose'}` → disposes the app.
 */
import type { Server } from 'node:http';
import Database from 'better-sqlite3';
import { sqliteDatabasePath } from '../../src/domains/databases/index.ts';
import { createAccessToken, setupDatabase, startApp } from '../data-plane-fixtures.ts';

export const RLS_POLICIES: Readonly<Record<string, string>> = {
  SELECT: 'owner = auth_userid()',
  INSERT: 'NEW.owner = auth_userid()',
  UPDATE: 'OLD.owner = auth_userid() AND NEW.owner = auth_userid()',
  DELETE: 'OLD.owner = auth_userid()',
};

export interface SeenRequest {
  method: string;
  path: string;
  status: number;
  /** The reply's JSON body, when it was JSON. */
  reply: unknown;
}

export async function startRlsAppServer(): Promise<{ server: Server; control: (m: unknown) => unknown }> {
  const t = await startApp({ rateLimitPerSecond: 0 });
  const requests: SeenRequest[] = [];
  t.app.server.prependListener('request', (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith('/v2/cloudsync/') || path.startsWith('/v2/cloudsync/_artifacts')) return;
    const chunks: Buffer[] = [];
    const write = res.write.bind(res) as (...a: unknown[]) => boolean;
    const end = res.end.bind(res) as (...a: unknown[]) => typeof res;
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
      return write(chunk, ...rest);
    }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
      const text = Buffer.concat(chunks).toString('utf8');
      let reply: unknown = null;
      try {
        reply = text === '' ? null : (JSON.parse(text) as unknown);
      } catch {
        reply = null;
      }
      requests.push({ method: req.method ?? '', path, status: res.statusCode, reply });
      return end(chunk, ...rest);
    }) as typeof res.end;
  });

  async function setup(m: { ddl: string; table: string; users: string[] }): Promise<{ databaseId: string; tokens: Record<string, string> }> {
    const { databaseId } = await setupDatabase(t, m.ddl, [m.table]);
    await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d: databaseId });
    for (const [op, e] of Object.entries(RLS_POLICIES)) {
      await t.gql('mutation($d: ID!, $t: String!, $op: RlsOperation!, $e: String!) { setRlsPolicy(databaseId: $d, table: $t, operation: $op, expression: $e) { table } }', { d: databaseId, t: m.table, op, e });
    }
    const tokens: Record<string, string> = {};
    for (const u of m.users) tokens[u] = await createAccessToken(t, databaseId, u);
    return { databaseId, tokens };
  }

  function rows(databaseId: string, sql: string): unknown[] {
    const open = t.app.sync.databases.peek(databaseId);
    if (open !== undefined) return open.driver.prepare(sql).all();
    const db = new Database(sqliteDatabasePath(t.dataDir, databaseId), { readonly: true });
    db.defaultSafeIntegers(true);
    try {
      return db.prepare(sql).all();
    } finally {
      db.close();
    }
  }

  return {
    server: t.app.server,
    async control(message: unknown) {
      const m = message as { type: string; databaseId?: string; sql?: string; ddl?: string; table?: string; users?: string[] };
      switch (m.type) {
        case 'setup':
          return setup({ ddl: m.ddl ?? '', table: m.table ?? '', users: m.users ?? [] });
        case 'rows':
          return rows(m.databaseId ?? '', m.sql ?? '');
        case 'rejections': {
          const page = (await t.app.sync.rejections(m.databaseId ?? '')).list({ first: 100 });
          return [...page.nodes].reverse();
        }
        case 'requests':
          return requests;
        case 'clearRequests':
          requests.length = 0;
          return null;
        case 'dispose':
          await t.dispose();
          return null;
        default:
          throw new Error(`unknown control message ${JSON.stringify(message)}`);
      }
    },
  };
}
