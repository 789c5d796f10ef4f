/**
 * The load benchmark's server (bench/load.ts forks it): the real app (createApp: Yoga, the sync
 * HTTP handler, data plane, SQLite control plane) on a temp data dir, with two databases:
 *
 * - `mix`: `todos` (TODOS_DDL) seeded with `seedRows` rows, one API key, and `tokens` access
 *   tokens (RLS BYPASS) — the 200-device mixed load;
 * - `storm`: `todos(id, user_id, title)` seeded with `stormRows` rows spread over `stormUsers`
 *   users, RLS ENFORCE with SELECT `user_id = auth_userid()`, one access token per user — the
 *   initial-sync storm.
 *
 * Rows are seeded as local writes of the central database (tracked by its triggers, so they are
 * in the change feed like merged uploads). Quotas are the defaults unless LOAD_SYNC_OPTIONS (JSON
 * of AppSyncOptions) says otherwise. IPC: `lag` (monitorEventLoopDelay of this process, reset on
 * `lag-start`; RSS sampled every 50 ms meanwhile), `exit`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { TODOS_DDL } from '@offsync/core/testing';
import { sqliteDatabasePath } from '../src/domains/databases/index.ts';
import { createApp, createSecretBox, migrate, createPrismaClient, silentLogger, systemClock, createApiPubSub } from '../src/index.ts';
import type { AppSyncOptions } from '../src/index.ts';
import { STORM_DDL } from './load-ipc.ts';
import type { LoadReady, LoadReply, LoadRequest, LoadSetup } from './load-ipc.ts';

const setup = JSON.parse(process.env['LOAD_SETUP'] ?? '{}') as LoadSetup;
const syncOptions = JSON.parse(process.env['LOAD_SYNC_OPTIONS'] || '{}') as AppSyncOptions;
const dataDir = mkdtempSync(join(tmpdir(), 'offsync-bench-load-'));
const target = { provider: 'sqlite' as const, file: join(dataDir, 'control.db') };
await migrate(target);
const app = createApp({
  prisma: createPrismaClient(target),
  provider: 'sqlite',
  pubsub: createApiPubSub(),
  secretBox: createSecretBox(randomBytes(32)),
  clock: systemClock,
  logger: silentLogger,
  dataDir,
  publicUrl: 'http://127.0.0.1',
  billingPeriodStartDay: 1,
  metricsThrottleMs: 250,
  sync: syncOptions,
});
const adminKey = (await app.services.auth.ensureAdminKey()) ?? '';
const project = await app.services.projects.createProject({ name: 'load', kind: 'SQLITE' });

async function database(name: string, ddl: string, rows: number, row: (i: number) => unknown[]): Promise<string> {
  const id = (await app.services.databases.createDatabase({ projectId: project.id, name })).id;
  const file = new Database(sqliteDatabasePath(dataDir, id));
  file.exec(ddl);
  file.close();
  await app.services.tables.deployTables(id, ['todos']);
  await app.services.databases.setOffSync(id, true);
  const db = await app.sync.databases.get(id);
  const columns = ddl.includes('user_id') ? '(id, user_id, title)' : '(id, title, done)';
  const insert = db.engine.driver.prepare(`INSERT INTO todos ${columns} VALUES (?, ?, ?)`);
  for (let from = 0; from < rows; from += 1000) {
    db.engine.driver.transaction(() => {
      for (let i = from; i < Math.min(rows, from + 1000); i++) insert.run(...(row(i) as Array<string | number>));
    });
  }
  return id;
}

const mixId = await database('mix', TODOS_DDL, setup.seedRows, (i) => [`seed-${i}`, `seeded todo number ${i} of the mixed load`, i % 2]);
const { secret: apiKey } = await app.services.auth.createApiKey(mixId, 'fleet');
const mixTokens: string[] = [];
for (let i = 0; i < setup.tokens; i++) mixTokens.push((await app.services.auth.createAccessToken(mixId, { userId: `m${i}`, name: `device ${i}` })).secret);

const stormId = await database('storm', STORM_DDL, setup.stormRows, (i) => [`s-${i}`, `u${i % setup.stormUsers}`, `row ${i} owned by user ${i % setup.stormUsers}`]);
await app.services.tables.setRlsMode(stormId, 'ENFORCE');
await app.services.tables.setRlsPolicy(stormId, 'todos', 'SELECT', 'user_id = auth_userid()');
const stormTokens: string[] = [];
for (let i = 0; i < setup.stormUsers; i++) stormTokens.push((await app.services.auth.createAccessToken(stormId, { userId: `u${i}`, name: `storm ${i}` })).secret);

await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));

const lag = monitorEventLoopDelay({ resolution: 10 });
let rssStart = 0;
let rssPeak = 0;
let sampler: NodeJS.Timeout | undefined;

function handle(m: LoadRequest): LoadReply {
  switch (m.type) {
    case 'lag-start':
      lag.disable();
      lag.reset();
      lag.enable();
      rssStart = rssPeak = process.memoryUsage.rss();
      clearInterval(sampler);
      sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()); }, 50);
      return { id: m.id, type: 'ok' };
    case 'lag': {
      const rss = process.memoryUsage.rss();
      rssPeak = Math.max(rssPeak, rss);
      const ms = (ns: number): number => ns / 1e6;
      return { id: m.id, type: 'lag', p50: ms(lag.percentile(50)), p99: ms(lag.percentile(99)), max: ms(lag.max), rssStart, rssPeak, rss };
    }
    case 'exit':
      clearInterval(sampler);
      lag.disable();
      void app.dispose().then(() => {
        rmSync(dataDir, { recursive: true, force: true });
        process.exit(0);
      });
      return { id: m.id, type: 'ok' };
  }
}

process.on('message', (m: LoadRequest) => {
  try {
    process.send?.(handle(m));
  } catch (e) {
    process.send?.({ id: m.id, type: 'error', message: e instanceof Error ? e.message : String(e) } satisfies LoadReply);
  }
});
const ready: LoadReady = {
  type: 'ready',
  port: (app.server.address() as AddressInfo).port,
  adminKey,
  quotas: JSON.stringify(syncOptions),
  mix: { databaseId: mixId, apiKey, tokens: mixTokens },
  storm: { databaseId: stormId, tokens: stormTokens },
};
process.send?.(ready);
