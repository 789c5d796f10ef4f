/**
 * The real OffSync server for the API client tests: `createApp` from @offsync/api with a SQLite
 * control plane and data dir in a temp directory, listening on an ephemeral loopback port.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiPubSub, createApp, createPrismaClient, createSecretBox, GRAPHQL_PATH, migrate, silentLogger } from '@offsync/api';
import type { App } from '@offsync/api';

export interface TestServer {
  app: App;
  adminKey: string;
  dataDir: string;
  /** http://127.0.0.1:<port>/graphql */
  url: string;
  close(): Promise<void>;
}

export async function startTestServer(): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'offsync-api-client-'));
  const target = { provider: 'sqlite' as const, file: join(dir, 'control.db') };
  await migrate(target);
  const dataDir = join(dir, 'data');
  const prisma = createPrismaClient(target);
  const app = createApp({
    prisma,
    provider: 'sqlite',
    pubsub: createApiPubSub(),
    secretBox: createSecretBox(randomBytes(32)),
    clock: { now: () => Date.now() },
    logger: silentLogger,
    dataDir,
    publicUrl: 'http://127.0.0.1:4000',
    billingPeriodStartDay: 1,
    metricsThrottleMs: 50,
  });
  const adminKey = await app.services.auth.ensureAdminKey();
  if (adminKey === null) throw new Error('expected a fresh admin key');
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
  const { port } = app.server.address() as AddressInfo;
  return {
    app,
    adminKey,
    dataDir,
    url: `http://127.0.0.1:${port}${GRAPHQL_PATH}`,
    async close() {
      await app.dispose();
      await prisma.$disconnect();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A random 32-hex site id. */
export function randomSiteId(): string {
  return randomBytes(16).toString('hex');
}
