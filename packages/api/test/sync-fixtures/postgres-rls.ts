/**
 * A Supabase-style PostgreSQL RLS workspace for the e2e tests (issue 10 item 4): table `todos`
 * with an owner column, a NOLOGIN role of this run's own (roles are global to a server), an
 * `auth.uid()` helper reading `request.jwt.claims`, a policy `user_id = auth.uid()`, and an app
 * with a POSTGRES database deployed, enabled, in ENFORCE mode, verifying HS256 JWTs. On
 * `TEST_DATABASE_URL` (CI) or an embedded PGlite.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { startApp, TestDevice } from '../data-plane-fixtures.ts';
import type { RunningApp } from '../data-plane-fixtures.ts';
import { openTestPostgres } from './postgres.ts';
import type { TestPostgres } from './postgres.ts';

export const RLS_TODOS_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";

export interface RlsWorkspace {
  pg: TestPostgres;
  t: RunningApp;
  databaseId: string;
  /** The role every JWT of {@link jwt} claims by default. */
  role: string;
  jwt(sub: string, role?: string): Promise<string>;
  /** A device of user `sub` (a JWT credential). */
  device(sub: string): Promise<TestDevice>;
  close(): Promise<void>;
}

/** Opens the workspace; `extraSql` runs after the policy is created (e.g. customer triggers). */
export async function openRlsWorkspace(extraSql: readonly string[] = []): Promise<RlsWorkspace> {
  const role = `app_user_${randomBytes(4).toString('hex')}`;
  const secret = randomBytes(32).toString('hex');
  const pg = await openTestPostgres();
  await pg.sql(RLS_TODOS_DDL);
  await pg.sql(`CREATE ROLE ${role} NOLOGIN`);
  await pg.sql('CREATE SCHEMA IF NOT EXISTS auth');
  await pg.sql(`CREATE OR REPLACE FUNCTION auth.uid() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub' $$`);
  await pg.sql(`GRANT USAGE ON SCHEMA auth TO ${role}`);
  await pg.sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON todos TO ${role}`);
  await pg.sql('ALTER TABLE todos ENABLE ROW LEVEL SECURITY');
  await pg.sql('CREATE POLICY own_rows ON todos USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid())');
  for (const s of extraSql) await pg.sql(s);

  const t = await startApp({ postgresPoolSize: pg.poolSize, postgresListen: pg.notifies, rateLimitPerSecond: 0 });
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "supabase", kind: POSTGRES) { id } }');
  const c = pg.connection;
  const d = await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!, $c: PostgresConnectionInput!) { createDatabase(projectId: $p, name: "app", connection: $c) { id } }', {
    p: p.createProject.id,
    c: { host: c.host, port: c.port, database: c.database, user: c.user, ...(c.password === '' ? {} : { password: c.password }) },
  });
  const databaseId = d.createDatabase.id;
  await t.gql('mutation($d: ID!) { deployTables(databaseId: $d, tables: ["todos"]) { added } }', { d: databaseId });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  await t.gql('mutation($d: ID!) { setRlsMode(databaseId: $d, mode: ENFORCE) { id } }', { d: databaseId });
  await t.app.services.auth.configureJwtProvider(databaseId, { method: 'HS256', secret });

  const jwt = (sub: string, r: string = role): Promise<string> =>
    new SignJWT({ role: r }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  return {
    pg, t, databaseId, role, jwt,
    device: async (sub) => new TestDevice(t, databaseId, await jwt(sub), RLS_TODOS_DDL),
    close: async () => {
      await t.dispose();
      await pg.sql(`DROP OWNED BY ${role}`).catch(() => undefined);
      await pg.sql(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await pg.close();
    },
  };
}
