/**
 * The generated API client against the real server (createApp, SQLite control plane, loopback
 * port): every operation of src/graphql/operations, subscriptions over graphql-ws, and the
 * ClientError codes the server's answers map to.
 */
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sqliteDatabasePath } from '@offsync/api';
import { openReplica, TODOS_DDL } from '@offsync/core/testing';
import { ClientError, createApiClient } from '../src/index.ts';
import type { ApiClient } from '../src/index.ts';
import { randomSiteId, startTestServer } from './api-client.server.ts';
import type { TestServer } from './api-client.server.ts';

let server: TestServer;
let client: ApiClient;

beforeAll(async () => {
  server = await startTestServer();
  client = createApiClient({ url: server.url, token: server.adminKey, webSocketImpl: WebSocket, retryAttempts: 0 });
});
afterAll(async () => {
  await client.dispose();
  await server.close();
});

async function rejection(p: Promise<unknown>): Promise<ClientError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(ClientError);
  return e as ClientError;
}

describe('every operation against the real server', () => {
  let projectId = '';
  let databaseId = '';

  test('projects: create, list, read', async () => {
    expect((await client.projects()).projects).toEqual([]);
    const { createProject } = await client.createProject({ name: 'acme', kind: 'SQLITE' });
    expect(createProject).toMatchObject({ name: 'acme', kind: 'SQLITE' });
    expect(Date.parse(createProject.createdAt)).not.toBeNaN();
    projectId = createProject.id;
    expect((await client.projects()).projects.map((p) => p.id)).toEqual([projectId]);
    const { project } = await client.project({ id: projectId });
    expect(project).toMatchObject({ id: projectId, name: 'acme', databases: [] });
  });

  test('databases: create (SQLite file), list, read, connection', async () => {
    const { createDatabase } = await client.createDatabase({ projectId, name: 'todos' });
    databaseId = createDatabase.id;
    expect(createDatabase).toMatchObject({ name: 'todos', kind: 'SQLITE', projectId, rlsMode: 'BYPASS', offSync: { enabled: false, enabledAt: null } });
    const file = new Database(sqliteDatabasePath(server.dataDir, databaseId));
    file.exec(`${TODOS_DDL}; CREATE TABLE legacy(n INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)`);
    file.close();
    expect((await client.databases({ projectId })).databases.map((d) => d.id)).toEqual([databaseId]);
    expect((await client.databases({ projectId, filter: { nameContains: 'nope' } })).databases).toEqual([]);
    const { database } = await client.database({ id: databaseId });
    expect(database).toMatchObject({ id: databaseId, project: { id: projectId }, connection: { status: 'OK', error: null } });
    expect(database.clientIntegration.databaseId).toBe(databaseId);
    expect(database.clientIntegration.snippet).toContain(databaseId);
    const conn = await client.databaseConnection({ id: databaseId });
    expect(conn.database.connection).toMatchObject({ status: 'OK', extensionInstalled: expect.any(Boolean) });
    expect((await client.project({ id: projectId })).project.databases.map((d) => d.name)).toEqual(['todos']);
  });

  test('tables: list, deploy (refusal included), enable OffSync', async () => {
    const { database } = await client.tables({ databaseId });
    expect(database.tables.totalCount).toBe(2);
    const todos = database.tables.nodes.find((t) => t.name === 'todos');
    expect(todos).toMatchObject({ selected: false, enabled: false, schemaIssues: [] });
    expect(todos?.columns.map((c) => [c.name, c.primaryKeyPosition])).toEqual([['id', 1], ['title', 0], ['done', 0], ['note', 0]]);
    expect(database.tables.nodes.find((t) => t.name === 'legacy')?.schemaIssues.length).toBeGreaterThan(0);

    const refused = await rejection(client.deployTables({ databaseId, tables: ['legacy'] }));
    expect(refused).toMatchObject({ code: 'CLIENT_DOMAIN', serverCode: 'SCHEMA_ISSUES' });

    const { deployTables } = await client.deployTables({ databaseId, tables: ['todos'] });
    expect(deployTables).toMatchObject({ added: ['todos'], removed: [], tables: { selectedCount: 1 } });
    const { enableOffSync } = await client.enableOffSync({ databaseId });
    expect(enableOffSync.offSync.enabled).toBe(true);
    const selected = await client.tables({ databaseId, filter: { selected: true } });
    expect(selected.database.tables.nodes.map((t) => [t.name, t.enabled])).toEqual([['todos', true]]);
  });

  test('auth: API keys, access tokens, JWT provider', async () => {
    const { createApiKey } = await client.createApiKey({ databaseId, name: 'ci' });
    expect(createApiKey.secret.length).toBeGreaterThan(16);
    expect(createApiKey.apiKey.prefix).toBe(`${createApiKey.secret.slice(0, 8)}…`);
    const { createAccessToken } = await client.createAccessToken({ databaseId, name: 'alice-phone', userId: 'alice', attributes: { team: 'red' } });
    expect(createAccessToken.accessToken).toMatchObject({ userId: 'alice', attributes: { team: 'red' }, revokedAt: null, expiresAt: null });
    const { configureJwtProvider } = await client.configureJwtProvider({ databaseId, method: 'HS256', secret: 'a-shared-secret-of-32-characters!!' });
    expect(configureJwtProvider).toMatchObject({ configured: true, method: 'HS256' });

    const auth = (await client.databaseAuth({ databaseId })).database.auth;
    expect(auth.apiKeys.map((k) => k.id)).toContain(createApiKey.apiKey.id);
    expect(auth.accessTokens.map((t) => t.id)).toEqual([createAccessToken.accessToken.id]);
    expect(auth.jwtProvider.configured).toBe(true);

    expect((await client.revokeApiKey({ id: createApiKey.apiKey.id })).revokeApiKey.revokedAt).not.toBeNull();
    expect((await client.revokeAccessToken({ id: createAccessToken.accessToken.id })).revokeAccessToken.revokedAt).not.toBeNull();
    expect((await client.removeJwtProvider({ databaseId })).removeJwtProvider).toBe(true);
    expect((await client.databaseAuth({ databaseId })).database.auth.jwtProvider).toMatchObject({ configured: false, method: null });
  });

  test('RLS: mode and policies', async () => {
    expect((await client.setRlsMode({ databaseId, mode: 'ENFORCE' })).setRlsMode.rlsMode).toBe('ENFORCE');
    const { setRlsPolicy } = await client.setRlsPolicy({ databaseId, table: 'todos', operation: 'SELECT', expression: "auth_userid() = 'alice'" });
    expect(setRlsPolicy).toMatchObject({ table: 'todos', operation: 'SELECT', expression: "auth_userid() = 'alice'" });
    const policies = await client.rlsPolicies({ databaseId });
    expect(policies.database).toMatchObject({ rlsMode: 'ENFORCE', rlsPolicies: [{ table: 'todos', operation: 'SELECT' }] });
    expect((await client.removeRlsPolicy({ databaseId, table: 'todos', operation: 'SELECT' })).removeRlsPolicy).toBe(true);
    expect((await client.rlsPolicies({ databaseId })).database.rlsPolicies).toEqual([]);
    await client.setRlsMode({ databaseId, mode: 'BYPASS' });
  });

  test('push: Expo access token and registered device tokens', async () => {
    expect((await client.setExpoAccessToken({ databaseId, token: 'expo-access-token-123' })).setExpoAccessToken).toBe(true);
    await server.app.services.push.registerPushToken(databaseId, { expoToken: 'ExponentPushToken[abc]', deviceId: 'dev-1', siteId: randomSiteId(), platform: 'ios' });
    const push = (await client.pushNotifications({ databaseId })).database.pushNotifications;
    expect(push).toMatchObject({ enabled: true, expoAccessTokenConfigured: true, registeredTokens: 1 });
    expect(push.expoAccessTokenUpdatedAt).not.toBeNull();
    expect((await client.deleteExpoAccessToken({ databaseId })).deleteExpoAccessToken).toBe(true);
    expect((await client.pushNotifications({ databaseId })).database.pushNotifications.expoAccessTokenConfigured).toBe(false);
  });

  test('devices and metrics through subscriptions, then queries, usage and removal', async () => {
    const site = randomSiteId();
    const live = client.liveMetrics({ databaseId, bucket: 'MINUTE' });
    const first = await live.next(); // the initial snapshot: the subscription is registered
    expect(first.done).toBe(false);
    expect(first.value).toMatchObject({ metrics: { databaseId, bucket: 'MINUTE', uploadBytes: 0 } });

    const events = client.deviceEvents({ databaseId });
    const registered = events.next();
    await new Promise((r) => setTimeout(r, 1000)); // let the deviceEvents subscription register (no ack in graphql-ws)
    await server.app.services.devices.recordDeviceSeen(databaseId, { siteId: site, userId: 'alice', credentialKind: 'API_KEY', clientVersion: '1.0.18' });
    const ev = await registered;
    expect(ev.value).toMatchObject({ deviceEvents: { kind: 'REGISTERED', siteId: site, databaseId, device: { userId: 'alice', clientVersion: '1.0.18' } } });
    await events.return?.();

    await server.app.services.metrics.recordTraffic(databaseId, site, { uploadBytes: 1234, downloadBytes: 5678 });
    for (;;) {
      const next = await live.next();
      if (next.done === true) throw new Error('metrics subscription ended');
      if (next.value.metrics.uploadBytes === 1234) break;
    }
    await live.return?.();

    const devices = (await client.devices({ databaseId, first: 10 })).database.devices;
    expect(devices.totalCount).toBe(1);
    expect(devices.nodes[0]).toMatchObject({ siteId: site, userId: 'alice', credentialKind: 'API_KEY' });
    expect(devices.pageInfo.hasNextPage).toBe(false);
    const metrics = (await client.databaseMetrics({ databaseId, bucket: 'HOUR' })).database.metrics;
    expect(metrics).toMatchObject({ uploadBytes: 1234, downloadBytes: 5678, bucket: 'HOUR' });
    expect(metrics.series.reduce((n, p) => n + p.uploadBytes, 0)).toBe(1234);
    const { usage } = await client.usage({ projectId });
    expect(usage).toMatchObject({ projectId, period: 'CURRENT', uploadBytes: 1234, downloadBytes: 5678 });
    expect(usage.databases).toEqual([expect.objectContaining({ databaseId, uploadBytes: 1234 })]);
    expect((await client.usage({ projectId, period: 'PREVIOUS' })).usage.uploadBytes).toBe(0);

    expect((await client.removeDevice({ databaseId, siteId: site })).removeDevice).toBe(true);
    expect((await client.devices({ databaseId })).database.devices.totalCount).toBe(0);
  });

  test('sync: pushChanges from device A reaches B through the changes subscription and pullChanges', async () => {
    const a = openReplica();
    const b = openReplica();
    const site = (e: typeof a) => Buffer.from(e.siteId).toString('hex');
    const rows = (e: typeof a) => e.driver.prepare('SELECT id, title, done, note FROM todos ORDER BY id').all();
    const feed = client.changes({ databaseId, siteId: site(b) });
    const replay = await feed.next(); // nothing to replay: one empty final batch, then live
    expect(replay.value).toMatchObject({ changes: { final: true, changes: 0, payload: null } });

    a.driver.prepare('INSERT INTO todos (id, title) VALUES (?, ?)').run('t1', 'milk');
    const bytes = a.encodeChanges(a.changes({ localOnly: true, after: { dbVersion: 0, seq: Number.MAX_SAFE_INTEGER } }));
    if (bytes === null) throw new Error('no local changes');
    const { pushChanges } = await client.pushChanges({
      databaseId, siteId: site(a), payload: Buffer.from(bytes).toString('base64'), dbVersionMin: 1, dbVersionMax: a.dbVersion(),
    });
    expect(pushChanges).toMatchObject({ received: 3, applied: 3, failures: [], gaps: [], lastConfirmedVersion: a.dbVersion() });

    const live = await feed.next();
    await feed.return?.();
    expect(live.value?.changes).toMatchObject({ changes: 3, payload: expect.any(String) });
    const { pullChanges } = await client.pullChanges({ databaseId, siteId: site(b), maxBytes: 65536 });
    expect(pullChanges).toMatchObject({ final: true, changes: 3, cursor: live.value?.changes.cursor });
    b.applyPayload(new Uint8Array(Buffer.from(pullChanges.payload ?? '', 'base64')));
    expect(rows(b)).toEqual(rows(a));
    const after = await client.pullChanges({ databaseId, siteId: site(b), cursor: pullChanges.cursor });
    expect(after.pullChanges).toMatchObject({ final: true, changes: 0, payload: null });
    a.close();
    b.close();
  });

  test('connection, disable, delete; domain errors carry the server code', async () => {
    const conflict = await rejection(client.configureConnection({ databaseId, connection: { host: '127.0.0.1', database: 'd', user: 'u', password: 'secret-123' } }));
    expect(conflict).toMatchObject({ code: 'CLIENT_DOMAIN', serverCode: 'CONFLICT', retryable: false });
    expect(conflict.errors[0]?.path).toEqual(['configureConnection']);
    const { restoreConnection } = await client.restoreConnection({ databaseId });
    expect(restoreConnection.connection.status).toBe('OK');
    expect((await client.disableOffSync({ databaseId })).disableOffSync.offSync.enabled).toBe(false);
    expect((await client.deleteDatabase({ id: databaseId })).deleteDatabase.id).toBe(databaseId);
    const missing = await rejection(client.database({ id: databaseId }));
    expect(missing).toMatchObject({ code: 'CLIENT_DOMAIN', serverCode: 'NOT_FOUND' });
    expect(missing.message).toMatch(/not/i);
  });
});
