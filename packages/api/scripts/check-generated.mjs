#!/usr/bin/env node
// Fails when a committed generated contract is stale:
//  - schema.graphql differs from the schema printed from the current sources;
//  - prisma/schema.prisma has changes that no migration under prisma/migrations/ covers
//    (diff from the newest migration's datamodel snapshot must be empty, for SQLite and PostgreSQL).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiDir, rootDir } from './prisma-offline.mjs';
import { isEmptyMigration, pendingSql } from './make-migration.mjs';

const problems = [];
const dir = mkdtempSync(join(tmpdir(), 'offsync-check-'));
try {
  const printed = join(dir, 'schema.graphql');
  execFileSync(process.execPath, [join(rootDir, 'node_modules/tsx/dist/cli.mjs'), join(apiDir, 'scripts/print-schema.ts'), printed], { cwd: apiDir, stdio: 'inherit' });
  if (readFileSync(printed, 'utf8') !== readFileSync(join(apiDir, 'schema.graphql'), 'utf8')) {
    problems.push('packages/api/schema.graphql is stale: run `npm run contracts` (root) and commit it');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const pending = await pendingSql();
for (const provider of ['sqlite', 'postgresql']) {
  if (!isEmptyMigration(pending[provider])) {
    problems.push(`prisma/schema.prisma has changes without a ${provider} migration: run \`node packages/api/scripts/make-migration.mjs <name>\`\n${pending[provider]}`);
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`✗ ${p}`);
  process.exit(1);
}
console.log('✓ schema.graphql and migrations are current');
