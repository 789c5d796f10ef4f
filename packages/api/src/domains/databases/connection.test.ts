import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { createCentralFile } from '../sync/central-file.ts';
import { checkSqliteFile } from './connection.ts';

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
