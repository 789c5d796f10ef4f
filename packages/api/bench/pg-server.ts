/**
 * One OffSync node of the PostgreSQL bench (bench/pg.ts), run as a child process: the real app on
 * a control-plane SQLite file shared by the nodes (BENCH_PG_DIR) and the server key they share
 * (BENCH_PG_KEY), serving a POSTGRES database whose connection is BENCH_PG_CONN. With
 * BENCH_PG_SETUP=1 it first registers that database (project, createDatabase, deployTables
 * `todos`, enableOffSync, an API key); the other nodes take BENCH_PG_DATABASE / BENCH_PG_APIKEY.
 * Answers the IPC requests of bench/ipc.ts (download build rate on the PostgreSQL feed).
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createApp, createSecretBox, migrate, createPrismaClient, silentLogger, systemClock, createApiPubSub } from '../src/index.ts';
import { downloadAll, serveBenchRequests } from './ipc.ts';
import type { BenchReply, BenchRequest } from './ipc.ts';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const dataDir = env('BENCH_PG_DIR');
const conn = JSON.parse(env('BENCH_PG_CONN')) as { host: string; port: number; database: string; user: string; password?: string };
const target = { provider: 'sqlite' as const, file: join(dataDir, 'control.db') };
const setup = process.env['BENCH_PG_SETUP'] === '1';
if (setup) await migrate(target);
const app = createApp({
  prisma: createPrismaClient(target),
  provider: 'sqlite',
  pubsub: createApiPubSub(),
  secretBox: createSecretBox(Buffer.from(env('BENCH_PG_KEY'), 'hex')),
  clock: systemClock,
  logger: silentLogger,
  dataDir,
  publicUrl: 'http://127.0.0.1',
  billingPeriodStartDay: 1,
  metricsThrottleMs: 250,
  sync: { rateLimitPerSecond: 0, maxConcurrentUploadsPerCredential: 0, postgresPoolSize: Number(process.env['BENCH_PG_POOL'] || 4) },
});
let databaseId = process.env['BENCH_PG_DATABASE'] ?? '';
let apiKey = process.env['BENCH_PG_APIKEY'] ?? '';
const adminKey = setup ? await app.services.auth.ensureAdminKey() : null;
if (setup) {
  const s = app.services;
  const project = await s.projects.createProject({ name: 'bench-pg', kind: 'POSTGRES' });
  databaseId = (await s.databases.createDatabase({ projectId: project.id, name: 'bench', connection: conn })).id;
  await s.tables.deployTables(databaseId, ['todos']);
  await s.databases.setOffSync(databaseId, true);
  apiKey = (await s.auth.createApiKey(databaseId, 'bench')).secret;
}
await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));

async function handle(req: BenchRequest): Promise<BenchReply> {
  switch (req.type) {
    case 'memory': {
      const m = process.memoryUsage();
      return { id: req.id, type: 'memory', rss: m.rss, heapUsed: m.heapUsed, external: m.external + m.arrayBuffers };
    }
    case 'head': {
      const db = await app.sync.open(databaseId);
      return { id: req.id, type: 'head', dbVersion: await db.dbVersion(), listeners: 0 };
    }
    case 'download':
      return { id: req.id, type: 'download', ...(await downloadAll(app.sync, databaseId, req.pageBytes, randomBytes(16).toString('hex'))) };
    case 'exit':
      await app.dispose();
      setImmediate(() => process.exit(0));
      return { id: req.id, type: 'exit' };
  }
}

serveBenchRequests(handle, { type: 'ready', port: (app.server.address() as AddressInfo).port, databaseId, apiKey, adminKey: adminKey ?? '' });
