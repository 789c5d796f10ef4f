import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { createTestTarget, providers, stopEmbeddedPg } from '../../test/helpers.ts';
import { getDatamodel } from '../generated/pothos-prisma-types.ts';
import { loadMigrations, migrate } from './migrate.ts';

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
});
