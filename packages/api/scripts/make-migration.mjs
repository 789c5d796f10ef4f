#!/usr/bin/env node
// Generates the SQL that creates the control-plane schema, for SQLite and PostgreSQL, from
// prisma/schema.prisma. Uses the Prisma 6.19 CLI (npm alias `prisma-legacy-cli`), whose
// WebAssembly schema engine runs offline when the config sets a driver adapter with engine "js".
//
//   node scripts/make-migration.mjs <name>   writes prisma/migrations/{sqlite,postgresql}/NNNN_<name>.sql
//
// The diff goes from prisma/migrations/schema.snapshot.prisma (the datamodel of the newest
// migration; empty at first) to prisma/schema.prisma, then the snapshot is updated.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { rootDir, migrationsDir, schemaPath, tmpDir, offlineEnv, deriveSchema } from './prisma-offline.mjs';

const legacyCli = join(rootDir, 'node_modules/prisma-legacy-cli/build/index.js');

async function runDiff(provider, url, fromSchema) {
  const dir = join(tmpDir, `diff-${provider}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schema.prisma'), deriveSchema(provider, { url }));
  const adapter = provider === 'sqlite'
    ? `import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';\nconst adapter = async () => new PrismaBetterSqlite3({ url: ${JSON.stringify(url)} });`
    : `import { PrismaPg } from '@prisma/adapter-pg';\nconst adapter = async () => new PrismaPg({ connectionString: ${JSON.stringify(url)} });`;
  writeFileSync(join(dir, 'prisma.config.ts'),
    `${adapter}\nexport default { experimental: { adapter: true }, engine: 'js', schema: './schema.prisma', adapter };\n`);
  if (fromSchema) writeFileSync(join(dir, 'from.prisma'), deriveSchema(provider, { url, text: readFileSync(fromSchema, 'utf8') }));
  const from = fromSchema ? ['--from-schema-datamodel', './from.prisma'] : ['--from-empty'];
  // Async on purpose: the embedded PGlite server lives in this process's event loop.
  const { stdout: out } = await promisify(execFile)(process.execPath, [
    legacyCli, 'migrate', 'diff', ...from, '--to-schema-datamodel', './schema.prisma', '--script', '--config', './prisma.config.ts',
  ], { cwd: dir, env: offlineEnv(), encoding: 'utf8' });
  // The migrator runs these inside whatever schema the connection's search_path selects.
  return out.replace(/^Loaded Prisma config.*\n/m, '').replace(/-- CreateSchema\nCREATE SCHEMA IF NOT EXISTS "public";\n*/, '').trim() + '\n';
}

async function withPg(fn) {
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1' });
  await server.start();
  try {
    return await fn(`postgresql://postgres@${server.getServerConn()}/postgres?sslmode=disable`);
  } finally {
    await server.stop();
    await db.close();
  }
}

function nextFileName(provider, name) {
  const dir = join(migrationsDir, provider);
  mkdirSync(dir, { recursive: true });
  const n = readdirSync(dir).filter((f) => /^\d{4}_.*\.sql$/.test(f)).length + 1;
  return join(dir, `${String(n).padStart(4, '0')}_${name}.sql`);
}

/** Where the datamodel of the newest migration is kept (the "from" side of the next diff). */
export const snapshotPath = join(migrationsDir, 'schema.snapshot.prisma');

/** SQL that takes the snapshot datamodel (or empty) to the current schema.prisma, per provider. */
export async function pendingSql() {
  const from = existsSync(snapshotPath) ? snapshotPath : null;
  const sqlite = await runDiff('sqlite', `file:${join(tmpDir, 'diff-scratch.db')}`, from);
  const postgresql = await withPg((url) => runDiff('postgresql', url, from));
  return { sqlite, postgresql };
}

export function isEmptyMigration(sql) {
  return !sql.replace(/^--.*$/gm, '').trim();
}

async function main() {
  const name = process.argv[2];
  if (!name || !/^[a-z0-9_]+$/.test(name)) throw new Error('usage: make-migration.mjs <snake_case_name>');
  const sql = await pendingSql();
  if (isEmptyMigration(sql.sqlite) && isEmptyMigration(sql.postgresql)) {
    console.log('schema.prisma has no changes since the last migration');
    return;
  }
  for (const provider of ['sqlite', 'postgresql']) {
    const file = nextFileName(provider, name);
    writeFileSync(file, sql[provider]);
    console.log(`wrote ${file.slice(rootDir.length + 1)}`);
  }
  writeFileSync(snapshotPath, '// Datamodel of the newest migration; written by make-migration.mjs, do not edit.\n' + readFileSync(schemaPath, 'utf8'));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
