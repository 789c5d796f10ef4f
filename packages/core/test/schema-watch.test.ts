/**
 * `schemaWatch: false` (engine.ts): an engine that does not poll `PRAGMA schema_version` keeps
 * its table contexts until `reloadSchema()`; the default engine notices another connection's
 * deploy by itself (embedded and client use, where any program may ALTER the file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { openSyncDatabase } from '@offsync/core/sqlite';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function file(): string {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-schema-watch-'));
  dirs.push(dir);
  const path = join(dir, 'c.db');
  const setup = openSyncDatabase(path);
  setup.driver.exec("CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL DEFAULT '')");
  setup.close();
  return path;
}

test('with schemaWatch off, another connection’s deploy is seen only after reloadSchema()', () => {
  const path = file();
  const owned = openSyncDatabase(path, { schemaWatch: false });
  const owner = openSyncDatabase(path);
  try {
    const before = owned.schemaHash();
    owner.init('notes');
    expect(owned.table('notes')).toBeUndefined();
    expect(owned.schemaHash()).toBe(before);
    owned.reloadSchema();
    expect(owned.table('notes')).toBeDefined();
    expect(owned.schemaHash()).toBe(owner.schemaHash());
    expect(owned.schemaHash()).not.toBe(before);
  } finally {
    owned.close();
    owner.close();
  }
});

test('by default, an engine notices another connection’s deploy by itself', () => {
  const path = file();
  const watching = openSyncDatabase(path);
  const other = openSyncDatabase(path);
  try {
    const before = watching.schemaHash();
    other.init('notes');
    expect(watching.schemaHash()).toBe(other.schemaHash());
    expect(watching.schemaHash()).not.toBe(before);
    expect(watching.table('notes')).toBeDefined();
  } finally {
    watching.close();
    other.close();
  }
});
