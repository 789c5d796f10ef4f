import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { createTestTarget, providers, stopEmbeddedPg } from '../../test/helpers.ts';
import { getDatamodel } from '../generated/pothos-prisma-types.ts';
import { loadMigrations, migrate } from './migrate.ts';
import { createPrismaClient } from './prisma.ts';

afterAll(stopEmbeddedPg);

/** Every scalar field of every Prisma model must exist as a column of the migrated database. */
function expectedColumns(): Map<string, string[]> {
  const models: Record<string, { fields: readonly { name: string; kind: string }[] }> = getDatamodel().datamodel.models;
  return new Map(Object.entries(models).map(([name, m]) => [name, m.fields.filter((f) => f.kind === 'scalar' || f.kind === 'enum').map((f) => f.name).sort()]));
}

describe.each(providers)('migrations on %s', (provider) => {
  test('apply once, and the database matches the Prisma datamodel', async () => {
    const t = await createTestTarget(provider);
    try {
      const all = loadMigrations(t.target.provider).map((m) => m.name);
      expect(all[0]).toBe('0001_init.sql');
      expect(await migrate(t.target)).toEqual(all);
      expect(await migrate(t.target)).toEqual([]);
      const actual = new Map<string, string[]>();
      if (t.target.provider === 'sqlite') {
        const db = new Database(t.target.file, { readonly: true });
        for (const table of expectedColumns().keys()) {
          actual.set(table, (db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all(table) as string[]).sort());
        }
        db.close();
      } else {
        const client = new pg.Client({ connectionString: t.target.url });
        await client.connect();
        const res = await client.query<{ table_name: string; column_name: string }>(
          'SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1', [t.target.schema]);
        await client.end();
        for (const r of res.rows) actual.set(r.table_name, [...(actual.get(r.table_name) ?? []), r.column_name].sort());
        actual.delete('_offsync_migrations');
      }
      expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(expectedColumns()));
    } finally {
      await t.drop();
    }
  });

  test('0006 rolls the minute buckets recorded before it up into hours and days', async () => {
    const t = await createTestTarget(provider);
    const all = loadMigrations(t.target.provider);
    const at = all.findIndex((m) => m.name === '0006_traffic_rollups.sql');
    expect(at).toBeGreaterThan(0);
    await migrate(t.target, all.slice(0, at));
    const prisma = createPrismaClient(t.target);
    try {
      const project = await prisma.project.create({ data: { id: 'p1', name: 'p', kind: 'SQLITE' } });
      const database = await prisma.database.create({ data: { id: 'd1', projectId: project.id, name: 'd', kind: 'SQLITE' } });
      const minute = (iso: string, site: string, requests: number) =>
        ({ databaseId: database.id, siteId: site, bucketStart: new Date(iso), uploadBytes: BigInt(requests * 10), downloadBytes: 1n, requests, rejectedChanges: requests % 2 });
      const a = 'a'.repeat(32);
      const b = 'b'.repeat(32);
      await prisma.trafficBucket.createMany({ data: [
        minute('2025-06-14T10:00:00Z', a, 1), minute('2025-06-14T10:59:00Z', a, 2), minute('2025-06-14T11:00:00Z', a, 4),
        minute('2025-06-15T00:00:00Z', a, 8), minute('2025-06-14T10:30:00Z', b, 16),
      ] });
      expect(await migrate(t.target)).toEqual(all.slice(at).map((m) => m.name));
      const rows = async (model: typeof prisma.trafficHour) => (await model.findMany({ orderBy: [{ siteId: 'asc' }, { bucketStart: 'asc' }] }))
        .map((r) => [r.siteId[0], r.bucketStart.toISOString(), Number(r.uploadBytes), Number(r.downloadBytes), r.requests, r.rejectedChanges]);
      expect(await rows(prisma.trafficHour)).toEqual([
        ['a', '2025-06-14T10:00:00.000Z', 30, 2, 3, 1], ['a', '2025-06-14T11:00:00.000Z', 40, 1, 4, 0], ['a', '2025-06-15T00:00:00.000Z', 80, 1, 8, 0],
        ['b', '2025-06-14T10:00:00.000Z', 160, 1, 16, 0],
      ]);
      expect(await rows(prisma.trafficDay as unknown as typeof prisma.trafficHour)).toEqual([
        ['a', '2025-06-14T00:00:00.000Z', 70, 3, 7, 1], ['a', '2025-06-15T00:00:00.000Z', 80, 1, 8, 0], ['b', '2025-06-14T00:00:00.000Z', 160, 1, 16, 0],
      ]);
    } finally {
      await prisma.$disconnect();
      await t.drop();
    }
  });
});
