import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestContext, providers, stopEmbeddedPg, testPgUrl } from '../../../test/helpers.ts';
import type { TestContext } from '../../../test/helpers.ts';
import { createCentralFile, peekCentralFile } from '../sync/central-file.ts';
import { sqliteDatabasePath } from './databases.service.ts';

afterAll(stopEmbeddedPg);

describe.each(providers)('databases on %s', (provider) => {
  let ctx: TestContext;
  beforeAll(async () => { ctx = await createTestContext(provider); });
  afterAll(async () => { await ctx.dispose(); });

  test('SQLITE: create file, list, offSync, connection check, restore, delete', async () => {
    const { databases, projects } = ctx.services;
    const p = await projects.createProject({ name: 'lite', kind: 'SQLITE' });
    const db = await databases.createDatabase({ projectId: p.id, name: 'main' });
    expect(db.id).toMatch(/^db_[a-z0-9]{24}$/);
    const file = sqliteDatabasePath(ctx.dataDir, db.id);
    expect(existsSync(file)).toBe(true);
    await expect(databases.createDatabase({ projectId: p.id, name: 'main' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(databases.createDatabase({ projectId: p.id, name: 'x', connection: { host: 'h', port: 1, database: 'd', user: 'u', password: 'p' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });

    expect(await databases.listDatabases(p.id, { offSyncEnabled: false })).toHaveLength(1);
    const on = await databases.setOffSync(db.id, true);
    expect(on.offSyncEnabled).toBe(true);
    expect(on.offSyncEnabledAt).toBeInstanceOf(Date);
    expect(await databases.listDatabases(p.id, { offSyncEnabled: false })).toHaveLength(0);
    expect(await databases.listDatabases(p.id, { nameContains: 'mai' })).toHaveLength(1);
    expect((await databases.setOffSync(db.id, false)).offSyncEnabledAt).toBeNull();

    expect(await databases.checkConnection(db.id)).toMatchObject({ status: 'OK', error: null });
    await expect(databases.configureConnection(db.id, { host: 'h', port: 5432, database: 'd', user: 'u' })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(db.fileIdentity).toMatch(/^fid_/);
    expect(peekCentralFile(file)).toEqual({ exists: true, identity: db.fileIdentity });
    rmSync(file);
    expect(await databases.checkConnection(db.id)).toMatchObject({ status: 'FILE_MISSING', error: { code: 'FILE_MISSING', retryable: false } });
    const before = db.serviceKeyHash;
    const restored = await databases.restoreConnection(db.id);
    expect(restored.serviceKeyHash).not.toBe(before);
    expect(restored.fileIdentity).not.toBe(db.fileIdentity);
    expect(peekCentralFile(file)).toEqual({ exists: true, identity: restored.fileIdentity });
    expect(await databases.checkConnection(db.id)).toMatchObject({ status: 'OK' });
    // Another file in its place: FILE_MISSING (replaced) until restoreConnection accepts it.
    rmSync(file);
    createCentralFile(file);
    expect(await databases.checkConnection(db.id)).toMatchObject({ status: 'FILE_MISSING', error: { code: 'FILE_REPLACED', retryable: false } });
    const accepted = await databases.restoreConnection(db.id);
    expect(peekCentralFile(file)).toEqual({ exists: true, identity: accepted.fileIdentity });
    expect(await databases.checkConnection(db.id)).toMatchObject({ status: 'OK' });

    expect(await databases.deleteDatabase(db.id)).toBe(db.id);
    expect(existsSync(file)).toBe(false);
    await expect(databases.getDatabase(db.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  test('POSTGRES: register with encrypted password, check against a real server, reconfigure', async () => {
    const { databases, projects } = ctx.services;
    const p = await projects.createProject({ name: 'pg', kind: 'POSTGRES' });
    await expect(databases.createDatabase({ projectId: p.id, name: 'nope' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(databases.createDatabase({ projectId: p.id, name: 'bad', connection: { host: 'bad host', port: 5432, database: 'd', user: 'u', password: 'x' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });

    const url = new URL(await testPgUrl());
    const db = await databases.createDatabase({
      projectId: p.id, name: 'app',
      connection: { host: url.hostname, port: Number(url.port || 5432), database: url.pathname.slice(1), user: decodeURIComponent(url.username), password: url.password || 'secret-password' },
    });
    expect(db.pgPasswordEnc).not.toContain('secret-password');
    const ok = await databases.checkConnection(db.id);
    expect(ok).toMatchObject({ status: 'OK', host: url.hostname, extensionInstalled: false, error: null });

    const closed = await databases.configureConnection(db.id, { host: '127.0.0.1', port: 1, database: 'x', user: 'u' });
    expect(closed.pgPasswordEnc).toBe(db.pgPasswordEnc);
    const failed = await databases.checkConnection(db.id);
    expect(failed).toMatchObject({ status: 'ERROR', error: { code: 'CONNECTION_REFUSED', retryable: true } });
  });
});
