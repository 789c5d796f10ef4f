/**
 * Central files on a running server (docs/ARCHITECTURE.md "Central files", "Files and keys"):
 * 0600/0700 modes whatever the umask, a deleted or replaced file refused for sync (503
 * `database_file_missing`) and never recreated, reported as FILE_MISSING by the connection card,
 * served again after `restoreConnection`; central connections use `synchronous = FULL`.
 */
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { openSyncDatabase } from '@offsync/core/sqlite';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createCentralFile, readFileIdentity } from '../src/domains/sync/index.ts';
import type { ServiceDeps } from '../src/index.ts';
import { centralRows, setupDatabase, startApp, TestDevice } from './data-plane-fixtures.ts';
import type { RunningApp } from './data-plane-fixtures.ts';

async function start(overrides: Partial<ServiceDeps> = {}): Promise<RunningApp> {
  return startApp({}, overrides);
}

const mode = (path: string) => statSync(path).mode & 0o777;

function errorCode(body: Record<string, unknown>): unknown {
  return (body['errors'] as Array<{ code?: unknown }> | undefined)?.[0]?.code;
}

async function card(t: RunningApp, databaseId: string) {
  const r = await t.gql<{ database: { connection: { status: string; error: { code: string } | null } } }>(
    'query($d: ID!) { database(id: $d) { connection { status error { code } } } }', { d: databaseId });
  return r.database.connection;
}

async function restore(t: RunningApp, databaseId: string): Promise<void> {
  await t.gql('mutation($d: ID!) { restoreConnection(databaseId: $d) { id } }', { d: databaseId });
}

function identityIn(file: string): string | null {
  const db = new Database(file, { fileMustExist: true, readonly: true });
  try {
    return readFileIdentity(db);
  } finally {
    db.close();
  }
}

describe('central files on a serving database', () => {
  let t: RunningApp;
  let umask: number;
  beforeEach(async () => {
    // No help from the umask: every mode below comes from OffSync's own chmod.
    umask = process.umask(0);
    t = await start();
  });
  afterEach(async () => {
    process.umask(umask);
    await t.dispose();
  });

  test('modes: databases/ 0700, the central file and its -wal/-shm 0600; the file carries the identity the control plane knows', async () => {
    const { databaseId, apiKey } = await setupDatabase(t);
    const file = sqliteDatabasePath(t.dataDir, databaseId);
    const device = new TestDevice(t, databaseId, apiKey);
    device.exec("INSERT INTO todos (id, title) VALUES ('a', 'one')");
    expect((await device.upload()).status).toBe(200);
    expect(mode(join(t.dataDir, 'databases'))).toBe(0o700);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect({ f, mode: mode(f) }).toEqual({ f, mode: 0o600 });
    const row = await t.app.services.prisma.database.findUniqueOrThrow({ where: { id: databaseId } });
    expect(row.fileIdentity).toMatch(/^fid_[0-9a-f]{32}$/);
    expect(identityIn(file)).toBe(row.fileIdentity);
  });

  test('synchronous = FULL on the central connection', async () => {
    const { databaseId, apiKey } = await setupDatabase(t);
    const device = new TestDevice(t, databaseId, apiKey);
    expect((await device.download()).status).toBe(200);
    const engine = t.app.sync.databases.peek(databaseId);
    expect(engine?.driver.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 2n });
  });

  test('deleted file: sync refused with database_file_missing, nothing recreated, card FILE_MISSING; a backup put back stays refused until restoreConnection', async () => {
    const { databaseId, apiKey } = await setupDatabase(t);
    const file = sqliteDatabasePath(t.dataDir, databaseId);
    const device = new TestDevice(t, databaseId, apiKey);
    device.exec("INSERT INTO todos (id, title) VALUES ('a', 'before backup')");
    expect((await device.upload()).status).toBe(200);
    const backup = join(t.dataDir, 'backup.sqlite');
    t.app.sync.databases.peek(databaseId)?.driver.exec(`VACUUM INTO '${backup}'`);
    const identity = identityIn(file);

    rmSync(file);
    device.exec("INSERT INTO todos (id, title) VALUES ('b', 'after delete')");
    const refused = await device.upload();
    expect(refused.status).toBe(503);
    expect(errorCode(refused.body)).toBe('database_file_missing');
    const check = await device.download();
    expect(check.status).toBe(503);
    expect(errorCode(check.body)).toBe('database_file_missing');
    expect(existsSync(file)).toBe(false);
    expect(await card(t, databaseId)).toEqual({ status: 'FILE_MISSING', error: { code: 'FILE_MISSING' } });
    expect(existsSync(file)).toBe(false);
    // The deleted file's WAL is kept aside (it may hold committed transactions), not left for the next file.
    const left = readdirSync(dirname(file)).filter((f) => f.startsWith(`${databaseId}.sqlite`));
    expect(left).toEqual([expect.stringMatching(new RegExp(`^${databaseId}\\.sqlite-wal\\.orphaned-\\d+$`))]);

    // The operator puts the backup back: same identity, but not the file sync had open.
    renameSync(backup, file);
    expect(identityIn(file)).toBe(identity);
    expect(errorCode((await device.upload()).body)).toBe('database_file_missing');
    expect(await card(t, databaseId)).toEqual({ status: 'FILE_MISSING', error: { code: 'FILE_REPLACED' } });

    await restore(t, databaseId);
    expect(await card(t, databaseId)).toEqual({ status: 'OK', error: null });
    const newIdentity = identityIn(file);
    expect(newIdentity).not.toBe(identity);
    expect((await t.app.services.prisma.database.findUniqueOrThrow({ where: { id: databaseId } })).fileIdentity).toBe(newIdentity);
    const resent = await device.upload();
    expect(resent.status).toBe(200);
    expect(centralRows(t, databaseId)).toEqual([
      { id: 'a', user_id: '', title: 'before backup' },
      { id: 'b', user_id: '', title: 'after delete' },
    ]);
    const other = new TestDevice(t, databaseId, apiKey);
    expect((await other.download()).status).toBe(200);
    expect(other.rows()).toEqual(centralRows(t, databaseId));
    expect(mode(file)).toBe(0o600);
  });

  test('replaced file (another database renamed over it) refused; restoreConnection accepts it', async () => {
    const { databaseId, apiKey } = await setupDatabase(t);
    const file = sqliteDatabasePath(t.dataDir, databaseId);
    const device = new TestDevice(t, databaseId, apiKey);
    expect((await device.download()).status).toBe(200);

    const impostor = join(t.dataDir, 'impostor.sqlite');
    const other = createCentralFile(impostor);
    t.app.sync.databases.peek(databaseId)?.driver.exec(`VACUUM INTO '${join(t.dataDir, 'copy.sqlite')}'`);
    renameSync(impostor, file);
    const refused = await device.download();
    expect(refused.status).toBe(503);
    expect(errorCode(refused.body)).toBe('database_file_missing');
    expect(identityIn(file)).toBe(other);
    expect(await card(t, databaseId)).toEqual({ status: 'FILE_MISSING', error: { code: 'FILE_REPLACED' } });

    // Even a copy of the right file (same identity) stays refused until restoreConnection.
    renameSync(join(t.dataDir, 'copy.sqlite'), file);
    expect(await card(t, databaseId)).toEqual({ status: 'FILE_MISSING', error: { code: 'FILE_REPLACED' } });
    await restore(t, databaseId);
    expect((await device.download()).status).toBe(200);
  });

  test('a file made before identities is adopted: its new identity is stored and sync goes on', async () => {
    const { databaseId, apiKey } = await setupDatabase(t);
    const file = sqliteDatabasePath(t.dataDir, databaseId);
    const legacy = new Database(file);
    legacy.exec('DROP TABLE offsync_identity');
    legacy.close();
    await t.app.services.prisma.database.update({ where: { id: databaseId }, data: { fileIdentity: null } });
    const device = new TestDevice(t, databaseId, apiKey);
    device.exec("INSERT INTO todos (id, title) VALUES ('a', 'one')");
    expect((await device.upload()).status).toBe(200);
    const row = await t.app.services.prisma.database.findUniqueOrThrow({ where: { id: databaseId } });
    expect(row.fileIdentity).toMatch(/^fid_/);
    expect(identityIn(file)).toBe(row.fileIdentity);
  });
});

test('OFFSYNC_SYNCHRONOUS=NORMAL reaches the central connection; the client default stays NORMAL', async () => {
  const t = await start({ centralSynchronous: 'NORMAL' });
  try {
    const { databaseId, apiKey } = await setupDatabase(t);
    expect((await new TestDevice(t, databaseId, apiKey).download()).status).toBe(200);
    expect(t.app.sync.databases.peek(databaseId)?.driver.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 1n });
    // The engine's own default (what @offsync/client opens) did not change.
    const client = openSyncDatabase(join(t.dataDir, 'client.db'));
    expect(client.driver.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 1n });
    client.close();
  } finally {
    await t.dispose();
  }
});
