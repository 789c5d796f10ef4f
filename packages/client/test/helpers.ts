/** Shared helpers of the client tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/sync/index.ts';
import type { OffSyncDatabase, OpenDatabaseOptions } from '../src/sync/index.ts';
import { API_KEY, ROWS_SQL, TODOS_DDL } from './fixtures/sync-server.ts';
export { prng } from '@offsync/core/testing';

const dirs: string[] = [];

export function tempPath(name = 'device.db'): string {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-client-'));
  dirs.push(dir);
  return join(dir, name);
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A device with the todos table initialised through the SQL API. */
export function device(opts: OpenDatabaseOptions & { path?: string } = {}): OffSyncDatabase {
  const { path, ...rest } = opts;
  const d = openDatabase(path ?? tempPath(), { apiKey: API_KEY, ...rest });
  d.db.exec(TODOS_DDL);
  d.db.prepare(`SELECT cloudsync_init('todos')`).get();
  return d;
}

export function rows(d: OffSyncDatabase): Array<Record<string, unknown>> {
  return d.db.prepare(ROWS_SQL).all() as Array<Record<string, unknown>>;
}

export async function until(cond: () => boolean, timeoutMs = 30_000, stepMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
