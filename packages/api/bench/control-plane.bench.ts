/**
 * `tsx bench/control-plane.bench.ts`: CPU per call of the control-plane writes every sync request
 * makes (devices.recordDeviceSeen, metrics.recordTraffic), on an SQLite control plane, in this
 * process: `BENCH_CP_DEVICES` devices (default 100) each seen `BENCH_CP_ROUNDS` times (default 50)
 * in round-robin, then the same for traffic samples; then the flush of whatever is still pending;
 * then the admin-key check every GraphQL HTTP request makes; then a dashboard's metrics reads over
 * a fleet: `BENCH_CP_FLEET_DEVICES` devices (default 300) busy every minute of 24 h, read through
 * the hour and day roll-ups against the same aggregation over the minute buckets alone (the
 * baseline: how they were read before the roll-ups), in this run.
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
/** Minutes back from now the timed flushes' samples went to (each flush a new minute, in the default 24 h window). */
let flushMinutes = 0;
// Twice: the first pass warms Prisma's statement paths up; the second is the figure.
for (const pass of ['warm-up', 'measured']) {
  process.stdout.write(`-- ${pass}\n`);
  await time('recordDeviceSeen, every later request', devices * rounds, (i) => services.devices.recordDeviceSeen(databaseId, seen(i)));
  await time('recordTraffic, every request', devices * rounds, (i) => services.metrics.recordTraffic(databaseId, sites[i % devices] ?? '', { uploadBytes: 100, downloadBytes: 0 }));
  if (flush !== undefined) {
    await flush();
    // The flush alone, 20 times: each after one sample per device in a new minute (untimed).
    let flushCpu = 0;
    for (let r = 0; r < 20; r++) {
      const at = Date.now() - 60_000 * ++flushMinutes;
      for (const site of sites) await services.metrics.recordTraffic(databaseId, site, { uploadBytes: 100, downloadBytes: 0, at: new Date(at) });
      const c0 = cpu();
      await flush();
      flushCpu += cpu() - c0;
    }
    process.stdout.write(`flush of ${devices} devices' traffic (a minute, hour and day bucket each, and the device): ${(flushCpu / 20).toFixed(2)} ms CPU per flush (20 flushes)\n`);
  }
}
// What every GraphQL HTTP request does first (context.ts resolveViewer): is the Bearer the admin key?
const deviceKey = `osk_${randomBytes(24).toString('base64url')}`;
await time('auth.verifyAdminKey of a device credential (GraphQL context)', devices * rounds, () => services.auth.verifyAdminKey(deviceKey));
const m = await services.metrics.getMetrics(databaseId, { bucket: 'HOUR' });
process.stdout.write(`check: requests ${m.requests} (expected ${2 * devices * rounds + 40 * devices}), uploadBytes ${m.uploadBytes} (expected ${(2 * devices * rounds + 40 * devices) * 100})\n`);

// A fleet's metrics: every device busy every minute of the last 24 h.
const fleet = Number(process.env['BENCH_CP_FLEET_DEVICES'] || 300);
const fleetDb = (await services.databases.createDatabase({ projectId: project.id, name: 'fleet' })).id;
const fleetSites = Array.from({ length: fleet }, () => randomBytes(16).toString('hex'));
const now = Date.now();
const t0 = performance.now();
for (let minute = 24 * 60; minute > 0; minute--) {
  const at = new Date(now - minute * 60_000);
  for (const site of fleetSites) await services.metrics.recordTraffic(fleetDb, site, { uploadBytes: 100, downloadBytes: 10, at });
  if (minute % 60 === 0 && flush !== undefined) await flush();
}
await flush?.();
process.stdout.write(`-- fleet: ${fleet} devices × 1,440 minutes = ${fleet * 1440} minute buckets written in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
/** The baseline: the same sums and distinct sites per point and for the range, over the minute buckets alone. */
async function minutesOnly(points: ReadonlyArray<readonly [number, number]>): Promise<{ requests: number; sites: number }> {
  const rows = await prisma.$queryRawUnsafe<Array<{ req: number }>>(
    `SELECT p.column1 AS point, SUM(b."uploadBytes") AS up, SUM(b."downloadBytes") AS down, SUM(b."requests") AS req, SUM(b."rejectedChanges") AS rej, COUNT(DISTINCT b."siteId") AS sites ` +
      `FROM (VALUES ${points.map(() => '(?, ?, ?)').join(', ')}) AS p JOIN "TrafficBucket" b ON b."databaseId" = ? AND b."bucketStart" >= p.column2 AND b."bucketStart" < p.column3 GROUP BY p.column1`,
    ...points.flatMap(([f, t], i) => [i, new Date(f), new Date(t)]), fleetDb,
  );
  const range = await prisma.$queryRawUnsafe<Array<{ sites: number }>>(
    `SELECT COUNT(DISTINCT "siteId") AS sites FROM "TrafficBucket" WHERE "databaseId" = ? AND "bucketStart" >= ? AND "bucketStart" < ?`,
    fleetDb, new Date(points[0]?.[0] ?? 0), new Date(points[points.length - 1]?.[1] ?? 0));
  return { requests: rows.reduce((n, r) => n + Number(r.req), 0), sites: Number(range[0]?.sites ?? 0) };
}
async function cpuPerRead(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const c0 = cpu();
  for (let i = 0; i < 5; i++) await fn();
  return (cpu() - c0) / 5;
}
/** `count` points of `size` from `[from, to)`'s first bucket, the ends cut to the range (as getMetrics does). */
const seriesOf = (from: number, to: number, size: number): Array<readonly [number, number]> => {
  const first = Math.floor(from / size) * size;
  return Array.from({ length: Math.ceil((to - first) / size) }, (_, i) => [Math.max(from, first + i * size), Math.min(to, first + (i + 1) * size)] as const);
};
for (const [what, bucket, hours] of [['24 h by HOUR (the dashboard default)', 'HOUR', 24], ['3 h by MINUTE (minutes either way)', 'MINUTE', 3]] as const) {
  const from = now - hours * 3_600_000;
  const size = bucket === 'HOUR' ? 3_600_000 : 60_000;
  const read = () => services.metrics.getMetrics(fleetDb, { from: new Date(from), to: new Date(now), bucket });
  const m = await read();
  const ref = await minutesOnly([[from, now]]);
  if (m.requests !== ref.requests || m.activeDevices !== ref.sites) throw new Error(`fleet read differs: ${m.requests}/${m.activeDevices} against ${ref.requests}/${ref.sites}`);
  const rollups = await cpuPerRead(read);
  const baseline = await cpuPerRead(() => minutesOnly(seriesOf(from, now, size)));
  process.stdout.write(`metrics read, ${what}: ${rollups.toFixed(1)} ms CPU; minute buckets alone ${baseline.toFixed(1)} ms; ratio ${(rollups / baseline).toFixed(2)}× baseline (${m.requests} requests, ${m.activeDevices} devices, checked equal)\n`);
}
await (services as { close?: () => Promise<void> }).close?.();
await prisma.$disconnect();
if (process.env["BENCH_CP_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true }); else process.stdout.write(`kept ${dir}\n`);
