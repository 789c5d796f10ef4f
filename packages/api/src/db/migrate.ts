/**
 * Applies prisma/migrations/<provider>/NNNN_*.sql once each, in order, each in a transaction,
 * recording them in `_offsync_migrations`. The SQL is generated from prisma/schema.prisma by
 * scripts/make-migration.mjs (see docs/CONTROL-PLANE.md).
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { DatabaseTarget } from './prisma.ts';

export const migrationsRoot = resolve(fileURLToPath(import.meta.url), '../../../../../prisma/migrations');

export interface Migration { name: string; sql: string }

export function loadMigrations(provider: DatabaseTarget['provider'], root = migrationsRoot): Migration[] {
  const dir = join(root, provider);
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((name) => ({ name, sql: readFileSync(join(dir, name), 'utf8') }));
}

/** Applies pending migrations; returns the names applied now. */
export async function migrate(target: DatabaseTarget, migrations = loadMigrations(target.provider)): Promise<string[]> {
  return target.provider === 'sqlite' ? migrateSqlite(target.file, migrations) : migratePostgres(target.url, target.schema, migrations);
}

function migrateSqlite(file: string, migrations: Migration[]): string[] {
  mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE IF NOT EXISTS _offsync_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    const done = new Set(db.prepare('SELECT name FROM _offsync_migrations').pluck().all() as string[]);
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.name)) continue;
      db.transaction(() => {
        db.exec(m.sql);
        db.prepare('INSERT INTO _offsync_migrations (name, applied_at) VALUES (?, ?)').run(m.name, new Date().toISOString());
      })();
      applied.push(m.name);
    }
    return applied;
  } finally {
    db.close();
  }
}

async function migratePostgres(url: string, schema: string | null, migrations: Migration[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    if (schema !== null) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quotePgIdent(schema)}`);
      await client.query(`SET search_path TO ${quotePgIdent(schema)}`);
    }
    await client.query('CREATE TABLE IF NOT EXISTS _offsync_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
    const res = await client.query<{ name: string }>('SELECT name FROM _offsync_migrations');
    const done = new Set(res.rows.map((r) => r.name));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.name)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO _offsync_migrations (name) VALUES ($1)', [m.name]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      }
      applied.push(m.name);
    }
    return applied;
  } finally {
    await client.end();
  }
}

export function quotePgIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
