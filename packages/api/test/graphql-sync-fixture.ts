/**
 * Fixture of the GraphQL sync tests: a real app (createApp) with one SQLite database whose
 * `todos` table is deployed and synced, an API key, replicas on the real engine and a small
 * GraphQL-over-HTTP client through `yoga.fetch`.
 */
import Database from 'better-sqlite3';
import type { SyncEngine } from '@offsync/core';
import { openReplica, TODOS_DDL } from '@offsync/core/testing';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import type { App } from '../src/index.ts';
import { createTestApp } from './helpers.ts';

export type GqlResult<T> = { data?: T | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };

export interface SyncTestApp {
  app: App;
  adminKey: string;
  apiKey: string;
  databaseId: string;
  gql<T>(query: string, variables?: Record<string, unknown>, key?: string | null): Promise<GqlResult<T>>;
  dispose(): Promise<void>;
}

export async function startSyncApp(): Promise<SyncTestApp> {
  const { app, adminKey, dispose } = await createTestApp('sqlite');
  const { services } = app;
  const project = await services.projects.createProject({ name: 'p', kind: 'SQLITE' });
  const databaseId = (await services.databases.createDatabase({ projectId: project.id, name: 'todos' })).id;
  const file = new Database(sqliteDatabasePath(services.deps.dataDir, databaseId));
  file.exec(TODOS_DDL);
  file.close();
  await services.tables.deployTables(databaseId, ['todos']);
  await services.databases.setOffSync(databaseId, true);
  const { secret: apiKey } = await services.auth.createApiKey(databaseId, 'devices');
  async function gql<T>(query: string, variables: Record<string, unknown> = {}, key: string | null = apiKey): Promise<GqlResult<T>> {
    const res = await app.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as GqlResult<T>;
  }
  return { app, adminKey, apiKey, databaseId, gql, dispose };
}

export const replica = (): SyncEngine => openReplica(TODOS_DDL);
export const siteOf = (e: SyncEngine): string => Buffer.from(e.siteId).toString('hex');

/** The replica's own changes after `afterVersion` as a base64 payload with its version window. */
export function outgoing(e: SyncEngine, afterVersion: number): { payload: string; dbVersionMin: number; dbVersionMax: number } | null {
  const bytes = e.encodeChanges(e.changes({ localOnly: true, after: { dbVersion: afterVersion, seq: Number.MAX_SAFE_INTEGER } }));
  if (bytes === null) return null;
  return { payload: Buffer.from(bytes).toString('base64'), dbVersionMin: afterVersion + 1, dbVersionMax: e.dbVersion() };
}

export function insertTodos(e: SyncEngine, from: number, n: number, title = 'todo'): void {
  e.driver.transaction(() => {
    const st = e.driver.prepare('INSERT INTO todos (id, title, done) VALUES (?, ?, 0)');
    for (let i = from; i < from + n; i++) st.run(`t${String(i).padStart(6, '0')}`, `${title} ${i}`);
  });
}

export const rows = (e: SyncEngine): unknown[] => e.driver.prepare('SELECT id, title, done, note FROM todos ORDER BY id').all();

export const PUSH = `mutation($db: ID!, $site: String!, $payload: String!, $min: Int, $max: Int) {
  pushChanges(databaseId: $db, siteId: $site, payload: $payload, dbVersionMin: $min, dbVersionMax: $max) {
    lastOptimisticVersion lastConfirmedVersion received applied dbVersion gaps { dbVersionMin dbVersionMax } failures { code message retryable }
  }
}`;

export const PULL = `query($db: ID!, $site: String!, $cursor: SyncCursorInput, $max: Int) {
  pullChanges(databaseId: $db, siteId: $site, cursor: $cursor, maxBytes: $max) { payload changes cursor { dbVersion seq } final }
}`;

export const CHANGES = `subscription($db: ID!, $site: String!, $cursor: SyncCursorInput, $max: Int) {
  changes(databaseId: $db, siteId: $site, cursor: $cursor, maxBytes: $max) { payload changes cursor { dbVersion seq } final }
}`;

export interface Batch {
  payload: string | null;
  changes: number;
  cursor: { dbVersion: number; seq: number };
  final: boolean;
}

export interface PushResult {
  lastOptimisticVersion: number;
  lastConfirmedVersion: number;
  received: number;
  applied: number;
  dbVersion: number | null;
  failures: { code: string; message: string; retryable: boolean }[];
}

/** Pushes the replica's changes after `afterVersion`; returns the new high-water mark. */
export async function push(t: SyncTestApp, e: SyncEngine, afterVersion: number, key: string | null = t.apiKey): Promise<{ result: PushResult; sent: number }> {
  const out = outgoing(e, afterVersion);
  if (out === null) throw new Error('nothing to push');
  const r = await t.gql<{ pushChanges: PushResult }>(PUSH, { db: t.databaseId, site: siteOf(e), payload: out.payload, min: out.dbVersionMin, max: out.dbVersionMax }, key);
  if (r.errors !== undefined || !r.data) throw new Error(JSON.stringify(r.errors));
  return { result: r.data.pushChanges, sent: out.dbVersionMax };
}
