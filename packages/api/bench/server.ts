/**
 * The benchmark's server, run as a child process (`fork` from api.bench.ts) so its memory is
 * measured alone and it gets its own core: the real app (createApp: Yoga, graphql-ws, the sync
 * HTTP handler and data plane) on a temp data dir with an SQLite control plane, one database with
 * the `todos` table deployed, an API key. Answers IPC requests (memory, head, download rate).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { TODOS_DDL } from '@offsync/core/testing';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { changeHubOf } from '../src/domains/sync/index.ts';
import { createApp, createSecretBox, migrate, createPrismaClient, silentLogger, systemClock, createApiPubSub } from '../src/index.ts';
import type { AppSyncOptions } from '../src/index.ts';
import { downloadAll, serveBenchRequests } from './ipc.ts';
import type { BenchReply, BenchRequest } from './ipc.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'offsync-bench-'));
const target = { provider: 'sqlite' as const, file: join(dataDir, 'control.db') };
await migrate(target);
const pubsub = createApiPubSub();
const app = createApp({
  prisma: createPrismaClient(target),
  provider: 'sqlite',
  pubsub,
  secretBox: createSecretBox(randomBytes(32)),
  clock: systemClock,
  logger: silentLogger,
  dataDir,
  publicUrl: 'http://127.0.0.1',
  billingPeriodStartDay: 1,
  metricsThrottleMs: 250,
  // bench/durability.bench.ts compares FULL (the default) with NORMAL.
  centralSynchronous: process.env['OFFSYNC_SYNCHRONOUS'] === 'NORMAL' ? 'NORMAL' : 'FULL',
  // BENCH_SYNC_OPTIONS: JSON of extra sync options (AppSyncOptions), e.g. quotas off for one-key benches.
  sync: JSON.parse(process.env['BENCH_SYNC_OPTIONS'] || '{}') as AppSyncOptions,
});
const adminKey = await app.services.auth.ensureAdminKey();
const project = await app.services.projects.createProject({ name: 'bench', kind: 'SQLITE' });
const databaseId = (await app.services.databases.createDatabase({ projectId: project.id, name: 'bench' })).id;
const file = new Database(sqliteDatabasePath(dataDir, databaseId));
file.exec(TODOS_DDL);
file.close();
await app.services.tables.deployTables(databaseId, ['todos']);
await app.services.databases.setOffSync(databaseId, true);
const { secret: apiKey } = await app.services.auth.createApiKey(databaseId, 'bench');
await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));

function memory(): { rss: number; heapUsed: number; external: number } {
  for (let i = 0; i < 3; i++) globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external + m.arrayBuffers };
}

async function handle(req: BenchRequest): Promise<BenchReply> {
  switch (req.type) {
    case 'memory':
      return { id: req.id, type: 'memory', ...memory() };
    case 'head': {
      const db = await app.sync.databases.get(databaseId);
      return { id: req.id, type: 'head', dbVersion: db.engine.dbVersion(), listeners: changeHubOf(pubsub).stats().get(databaseId) ?? 0 };
    }
    case 'download':
      return { id: req.id, type: 'download', ...(await downloadAll(app.sync, databaseId, req.pageBytes, randomBytes(16).toString('hex'))) };
    case 'exit':
      await app.dispose();
      rmSync(dataDir, { recursive: true, force: true });
      setImmediate(() => process.exit(0));
      return { id: req.id, type: 'exit' };
  }
}

serveBenchRequests(handle, { type: 'ready', port: (app.server.address() as AddressInfo).port, databaseId, apiKey, adminKey: adminKey ?? '' });
