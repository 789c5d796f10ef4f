/**
 * Test harness: a fresh control-plane database per context, on SQLite (temp file) or PostgreSQL
 * (TEST_DATABASE_URL with a fresh schema, else an embedded PGlite served over the PG wire protocol
 * on an ephemeral loopback port). Both run by default; nothing is skipped.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import {
  createApp,
  createSecretBox,
  createPrismaClient,
  migrate,
  quotePgIdent,
  silentLogger,
  createApiPubSub,
  createServices,
} from '../src/index.ts';
import type { App, DatabaseTarget, Clock, ServiceDeps, Services } from '../src/index.ts';

export const providers = ['sqlite', 'postgresql'] as const;
export type Provider = (typeof providers)[number];

let embedded: Promise<{ url: string; stop: () => Promise<void> }> | null = null;

/** One embedded PGlite per test file (module state), started on first use. */
function embeddedPg() {
  embedded ??= (async () => {
    const db = await PGlite.create();
    const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 32 });
    await server.start();
    return {
      url: `postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`,
      stop: async () => {
        await server.stop();
        await db.close();
      },
    };
  })();
  return embedded;
}

/** Base PostgreSQL URL for tests: TEST_DATABASE_URL or the embedded server. */
export async function testPgUrl(): Promise<string> {
  return process.env['TEST_DATABASE_URL'] || (await embeddedPg()).url;
}

export async function stopEmbeddedPg(): Promise<void> {
  const e = embedded;
  embedded = null;
  if (e) await (await e).stop();
}

export interface TestTarget { target: DatabaseTarget; drop(): Promise<void> }

export async function createTestTarget(provider: Provider): Promise<TestTarget> {
  if (provider === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'offsync-cp-'));
    return { target: { provider: 'sqlite', file: join(dir, 'control.db') }, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const url = await testPgUrl();
  const schema = `test_${randomBytes(6).toString('hex')}`;
  return {
    target: { provider: 'postgresql', url, schema },
    drop: async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${quotePgIdent(schema)} CASCADE`);
      await client.end();
    },
  };
}

export interface TestContext {
  provider: Provider;
  deps: ServiceDeps;
  services: Services;
  dataDir: string;
  clock: Clock & { set(ms: number): void; advance(ms: number): void };
  dispose(): Promise<void>;
}

export function manualClock(start = Date.parse('2025-06-15T12:00:00Z')) {
  let now = start;
  return { now: () => now, set: (ms: number) => { now = ms; }, advance: (ms: number) => { now += ms; } };
}

export async function createTestDeps(provider: Provider, options: { clock?: Clock; metricsThrottleMs?: number } = {}) {
  const t = await createTestTarget(provider);
  await migrate(t.target);
  const dataDir = mkdtempSync(join(tmpdir(), 'offsync-data-'));
  const deps: ServiceDeps = {
    prisma: createPrismaClient(t.target),
    provider,
    pubsub: createApiPubSub(),
    secretBox: createSecretBox(randomBytes(32)),
    clock: options.clock ?? { now: () => Date.now() },
    logger: silentLogger,
    dataDir,
    publicUrl: 'http://127.0.0.1:4000',
    billingPeriodStartDay: 1,
    metricsThrottleMs: options.metricsThrottleMs ?? 50,
    // Traffic counters are written behind (domains/metrics/traffic-buffer.ts); events come sooner in tests.
    trafficFlushMs: 50,
  };
  const cleanup = async () => {
    await deps.prisma.$disconnect();
    await t.drop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { deps, dataDir, cleanup };
}

export async function createTestContext(provider: Provider): Promise<TestContext> {
  const clock = manualClock();
  const { deps, dataDir, cleanup } = await createTestDeps(provider, { clock });
  const services = createServices(deps);
  // Pending traffic is written (services.close flushes) before the control plane goes.
  return { provider, deps, services, dataDir, clock, dispose: async () => { await services.close(); await cleanup(); } };
}

export async function createTestApp(provider: Provider, options: { metricsThrottleMs?: number } = {}): Promise<{ app: App; adminKey: string; dispose(): Promise<void> }> {
  const { deps, cleanup } = await createTestDeps(provider, options);
  const app = createApp(deps);
  const adminKey = await app.services.auth.ensureAdminKey();
  if (adminKey === null) throw new Error('expected a fresh admin key');
  return { app, adminKey, dispose: async () => { await app.dispose(); await cleanup(); } };
}

/** A random 32-hex site id. */
export function siteId(): string {
  return randomBytes(16).toString('hex');
}
