/**
 * Test support for the data-plane tests: the real app (`createApp`, SQLite control plane in a
 * temp dir) listening on an ephemeral loopback port, GraphQL through `yoga.fetch` with the admin
 * key, a database with tables deployed and OffSync enabled, and G3 sync calls of a device.
 */
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { openReplica } from '@offsync/core/testing';
import type { SyncEngine } from '@offsync/core';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createApp } from '../src/index.ts';
import type { App, AppDeps, AppSyncOptions } from '../src/index.ts';
import { createTestDeps } from './helpers.ts';

export const TODOS_RLS_DDL = "CREATE TABLE todos(id TEXT PRIMARY KEY NOT NULL, user_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '')";

export interface RunningApp {
  app: App;
  origin: string;
  adminKey: string;
  dataDir: string;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<T>;
  dispose(): Promise<void>;
}

/**
 * Listens on a loopback port with a fresh admin key and wraps the app as a RunningApp (GraphQL
 * with the admin key, origin, dispose = app.dispose() then `cleanup`). Every test that starts a
 * real app goes through here.
 */
export async function serveApp(
  app: App,
  dataDir: string,
  cleanup: () => Promise<void> | void,
  opts: { sharedControlPlane?: boolean; gqlOverHttp?: boolean } = {},
): Promise<RunningApp & { ws: string }> {
  const adminKey = await app.services.auth.ensureAdminKey();
  // A second app on the same control plane gets no fresh key: the caller sets `adminKey`.
  if (adminKey === null && opts.sharedControlPlane !== true) throw new Error('expected a fresh admin key');
  await new Promise<void>((ok) => app.server.listen(0, '127.0.0.1', ok));
  const port = (app.server.address() as AddressInfo).port;
  const running: RunningApp & { ws: string } = {
    app,
    origin: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/graphql`,
    adminKey: adminKey ?? '',
    dataDir,
    async gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
      const init: RequestInit = {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${running.adminKey}` },
        body: JSON.stringify({ query, variables }),
      };
      // Through the server (router, metrics, logs) when asked; else straight into yoga.
      const res = await (opts.gqlOverHttp === true ? fetch(`${running.origin}/graphql`, init) : app.yoga.fetch('http://localhost/graphql', init));
      const body = (await res.json()) as { data?: T; errors?: Array<{ message: string }> };
      if (body.errors?.length) throw new Error(`GraphQL: ${body.errors.map((e) => e.message).join('; ')}`);
      return body.data as T;
    },
    async dispose() {
      await app.dispose();
      await cleanup();
    },
  };
  return running;
}

/** A fresh app on a SQLite control plane (`createTestDeps`), with `sync` options and extra app deps. */
export async function startApp(sync: AppSyncOptions = {}, extra: Partial<AppDeps> = {}, testDeps: Parameters<typeof createTestDeps>[1] = {}): Promise<RunningApp & { ws: string }> {
  const { deps, dataDir, cleanup } = await createTestDeps('sqlite', testDeps);
  return serveApp(createApp({ ...deps, ...extra, sync: { cacheTtlMs: 0, ...sync } }), dataDir, cleanup);
}

/** createProject → createDatabase → CREATE TABLE (in the database's file) → deployTables → enableOffSync → createApiKey. */
export async function setupDatabase(t: RunningApp, ddl: string = TODOS_RLS_DDL, tables: string[] = ['todos']): Promise<{ databaseId: string; apiKey: string; apiKeyId: string }> {
  const p = await t.gql<{ createProject: { id: string } }>('mutation { createProject(name: "p", kind: SQLITE) { id } }');
  const d = await t.gql<{ createDatabase: { id: string } }>('mutation($p: ID!) { createDatabase(projectId: $p, name: "app") { id } }', { p: p.createProject.id });
  const databaseId = d.createDatabase.id;
  const file = new Database(sqliteDatabasePath(t.dataDir, databaseId));
  file.exec(ddl);
  file.close();
  await t.gql('mutation($d: ID!, $t: [String!]!) { deployTables(databaseId: $d, tables: $t) { added } }', { d: databaseId, t: tables });
  await t.gql('mutation($d: ID!) { enableOffSync(databaseId: $d) { id } }', { d: databaseId });
  const k = await t.gql<{ createApiKey: { secret: string; apiKey: { id: string } } }>('mutation($d: ID!) { createApiKey(databaseId: $d, name: "device") { secret apiKey { id } } }', { d: databaseId });
  return { databaseId, apiKey: k.createApiKey.secret, apiKeyId: k.createApiKey.apiKey.id };
}

export async function createAccessToken(t: RunningApp, databaseId: string, userId: string, attributes: Record<string, unknown> = {}): Promise<string> {
  const r = await t.gql<{ createAccessToken: { token: string } }>(
    'mutation($d: ID!, $u: String!, $a: JSON) { createAccessToken(databaseId: $d, userId: $u, name: "t", attributes: $a) { token } }',
    { d: databaseId, u: userId, a: attributes },
  );
  return r.createAccessToken.token;
}

export const G3 = { 'x-cloudsync-version': '1.1.4', 'x-cloudsync-capabilities': 'check-status-response, check-chunks' };

export interface Reply { status: number; body: Record<string, unknown>; text: string }

export async function http(method: string, url: string, credential: string | null, json?: unknown): Promise<Reply> {
  const headers: Record<string, string> = { ...G3 };
  if (credential !== null) headers['authorization'] = `Bearer ${credential}`;
  const init: RequestInit = { method, headers };
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = {};
  }
  return { status: r.status, body, text };
}

/** A device: an OffSync replica with its own site id, speaking G3 to the server. */
export class TestDevice {
  readonly engine: SyncEngine;
  readonly site: string;
  sent = 0;
  cursor = { dbVersion: 0, seq: 0 };

  constructor(readonly t: RunningApp, readonly databaseId: string, public credential: string | null, ddl: string = TODOS_RLS_DDL, tables: readonly string[] = ['todos']) {
    this.engine = openReplica(ddl, tables);
    this.site = Buffer.from(this.engine.siteId).toString('hex');
  }

  url(call: string): string {
    return `${this.t.origin}/v2/cloudsync/databases/${this.databaseId}/${this.site}/${call}`;
  }

  exec(sql: string, ...params: Array<string | number>): void {
    this.engine.driver.prepare(sql).run(...params);
  }

  /** Uploads every local change since the last accepted upload (inline G3 apply). */
  async upload(): Promise<Reply> {
    const max = this.engine.dbVersion();
    const payload = this.engine.encodeChanges(this.engine.changes({ localOnly: true, after: { dbVersion: this.sent, seq: Number.MAX_SAFE_INTEGER } }));
    if (payload === null) throw new Error('nothing to upload');
    const r = await http('POST', this.url('apply'), this.credential, { blob: Buffer.from(payload).toString('base64'), dbVersionMin: this.sent + 1, dbVersionMax: max });
    // `failures.rejected` reports changes rejected on their own: the batch itself landed.
    if (r.status === 200 && (r.body['failures'] as { apply?: unknown } | undefined)?.apply === undefined) this.sent = max;
    return r;
  }

  /** Downloads (inline G3 check) and applies; returns the reply. */
  async download(): Promise<Reply> {
    const r = await http('POST', this.url('check'), this.credential, { dbVersion: this.cursor.dbVersion, seq: this.cursor.seq, cursor: 0 });
    const data = r.body['data'] as { payload?: string; watermark?: number } | undefined;
    if (r.status === 200 && data?.payload !== undefined) {
      this.engine.applyPayload(new Uint8Array(Buffer.from(data.payload, 'base64')));
      if (data.watermark !== undefined) this.cursor = { dbVersion: data.watermark, seq: 0 };
    }
    return r;
  }

  rows(): unknown[] {
    return this.engine.driver.prepare('SELECT * FROM todos ORDER BY id').all();
  }
}

/** Rows of the central database (through the open engine when the sync service has it). */
export function centralRows(t: RunningApp, databaseId: string): unknown[] {
  const open = t.app.sync.databases.peek(databaseId);
  if (open !== undefined) return open.driver.prepare('SELECT * FROM todos ORDER BY id').all();
  const db = new Database(sqliteDatabasePath(t.dataDir, databaseId), { readonly: true });
  try {
    return db.prepare('SELECT * FROM todos ORDER BY id').all();
  } finally {
    db.close();
  }
}
