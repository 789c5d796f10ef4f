/**
 * `tsx bench/control-plane.bench.ts`: CPU per call of the control-plane writes every sync request
 * makes (devices.recordDeviceSeen, metrics.recordTraffic), on an SQLite control plane, in this
 * process: `BENCH_CP_DEVICES` devices (default 100) each seen `BENCH_CP_ROUNDS` times (default 50)
 * in round-robin, then the same for traffic samples; then the flush of whatever is still pending;
 * then the admin-key check every GraphQL HTTP request makes.
 * Figures are process CPU (user + system) per call, the whole async chain included.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiPubSub, createPrismaClient, createSecretBox, createServices, migrate, silentLogger, systemClock } from '../src/index.ts';

const devices = Number(process.env['BENCH_CP_DEVICES'] || 100);
const rounds = Number(process.env['BENCH_CP_ROUNDS'] || 50);
const dir = mkdtempSync(join(tmpdir(), 'offsync-cp-bench-'));
const target = { provider: 'sqlite' as const, file: join(dir, 'control.db') };
await migrate(target);
const prisma = createPrismaClient(target);
const services = createServices({
  prisma, provider: 'sqlite', pubsub: createApiPubSub(), secretBox: createSecretBox(randomBytes(32)), clock: systemClock,
  logger: silentLogger, dataDir: dir, publicUrl: 'http://127.0.0.1', billingPeriodStartDay: 1, metricsThrottleMs: 250,
});
const project = await services.projects.createProject({ name: 'bench', kind: 'SQLITE' });
const databaseId = (await services.databases.createDatabase({ projectId: project.id, name: 'bench' })).id;
const sites = Array.from({ length: devices }, () => randomBytes(16).toString('hex'));
const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

async function time(what: string, n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  const c0 = cpu();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  const c = cpu() - c0;
  process.stdout.write(`${what}: ${((c * 1000) / n).toFixed(1)} µs CPU per call (${n} calls, ${(performance.now() - t0).toFixed(0)} ms wall)\n`);
}

const seen = (i: number) => ({ siteId: sites[i % devices] ?? '', credentialKind: 'API_KEY' as const, clientVersion: 'offsync-graphql', schemaHash: '1' });
await time('recordDeviceSeen, first request of each device', devices, (i) => services.devices.recordDeviceSeen(databaseId, seen(i)));
const flush = (services as { flushControlPlane?: () => Promise<void> }).flushControlPlane;
// Twice: the first pass warms Prisma's statement paths up; the second is the figure.
for (const pass of ['warm-up', 'measured']) {
  process.stdout.write(`-- ${pass}\n`);
  await time('recordDeviceSeen, every later request', devices * rounds, (i) => services.devices.recordDeviceSeen(databaseId, seen(i)));
  await time('recordTraffic, every request', devices * rounds, (i) => services.metrics.recordTraffic(databaseId, sites[i % devices] ?? '', { uploadBytes: 100, downloadBytes: 0 }));
  if (flush !== undefined) await time(`flush of what is pending (${devices} devices)`, 1, () => flush());
}
// What every GraphQL HTTP request does first (context.ts resolveViewer): is the Bearer the admin key?
const deviceKey = `osk_${randomBytes(24).toString('base64url')}`;
await time('auth.verifyAdminKey of a device credential (GraphQL context)', devices * rounds, () => services.auth.verifyAdminKey(deviceKey));
const m = await services.metrics.getMetrics(databaseId, { bucket: 'HOUR' });
process.stdout.write(`check: requests ${m.requests} (expected ${2 * devices * rounds}), uploadBytes ${m.uploadBytes} (expected ${2 * devices * rounds * 100})\n`);
await (services as { close?: () => Promise<void> }).close?.();
await prisma.$disconnect();
rmSync(dir, { recursive: true, force: true });
