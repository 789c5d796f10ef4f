import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { createCentralFile } from '../sync/central-file.ts';
import { checkSqliteFile, RecentChecks, sqliteFileFingerprint } from './connection.ts';
import type { ConnectionStatus } from './connection.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'offsync-connection-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a SQLite file whose write lock another connection holds (a merge) is OK, and the check neither waits for the lock nor takes it', () => {
  const file = join(dir, 'a.sqlite');
  const identity = createCentralFile(file);
  const writer = new Database(file);
  try {
    writer.exec('BEGIN IMMEDIATE');
    writer.prepare('CREATE TABLE t (x)').run();
    // With the connection's default busy wait this blocked for 5 s, then reported FILE_NOT_WRITABLE.
    expect(checkSqliteFile(file, new Date(0), identity)).toMatchObject({ status: 'OK', error: null });
    // The writer still holds its transaction and commits it.
    expect(writer.inTransaction).toBe(true);
    writer.exec('COMMIT');
  } finally {
    writer.close();
  }
  expect(checkSqliteFile(file, new Date(0), identity)).toMatchObject({ status: 'OK', error: null });
  expect(checkSqliteFile(file, new Date(0), 'fid_other')).toMatchObject({ status: 'FILE_MISSING', error: { code: 'FILE_REPLACED' } });
});

test('a connection check answers again while it is younger than the max age and made under the same key; concurrent polls share one; a failed one is not kept', async () => {
  let now = 1000;
  const checks = new RecentChecks(2000, () => now);
  let runs = 0;
  const ok = (): ConnectionStatus => {
    runs++;
    return { status: 'OK', host: null, port: null, database: 'f', checkedAt: new Date(now), error: null, extensionInstalled: true };
  };
  const first = await checks.check('db1', 'k', ok);
  now += 1999;
  expect(await checks.check('db1', 'k', ok)).toBe(first);
  expect(runs).toBe(1);
  // Another key (the file replaced, new settings), another database, or older than the max age: checked again.
  expect((await checks.check('db1', 'k2', ok)).checkedAt).toEqual(new Date(now));
  expect(await checks.check('db2', 'k2', ok)).not.toBe(first);
  expect(runs).toBe(3);
  now += 2000;
  await checks.check('db1', 'k2', ok);
  expect(runs).toBe(4);
  // Two polls while a (PostgreSQL) check runs: one check.
  let release = (): void => undefined;
  const slow = (): Promise<ConnectionStatus> => new Promise((resolve) => (release = () => resolve(ok())));
  now += 5000;
  const a = checks.check('db1', 'k2', slow);
  const b = checks.check('db1', 'k2', slow);
  release();
  expect(await a).toBe(await b);
  expect(runs).toBe(5);
  // A check that threw is not kept; forget drops a kept one.
  now += 5000;
  await expect(checks.check('db1', 'k2', () => { throw new Error('boom'); })).rejects.toThrow('boom');
  await Promise.resolve();
  await checks.check('db1', 'k2', ok);
  expect(runs).toBe(6);
  checks.forget('db1');
  await checks.check('db1', 'k2', ok);
  expect(runs).toBe(7);
});

test("a SQLite file's fingerprint changes when it is removed, replaced or re-permissioned, not when it is read", () => {
  const file = join(dir, 'f.sqlite');
  expect(sqliteFileFingerprint(file)).toBe('');
  createCentralFile(file);
  const created = sqliteFileFingerprint(file);
  expect(created).not.toBe('');
  expect(checkSqliteFile(file, new Date(0)).status).toBe('OK');
  expect(sqliteFileFingerprint(file)).toBe(created);
  chmodSync(file, 0o400);
  const readOnly = sqliteFileFingerprint(file);
  expect(readOnly).not.toBe(created);
  rmSync(file);
  createCentralFile(file);
  expect(sqliteFileFingerprint(file)).not.toBe(readOnly);
  expect(sqliteFileFingerprint(file)).not.toBe(created);
});
