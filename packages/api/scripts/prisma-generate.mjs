#!/usr/bin/env node
// `npm run generate`: Prisma clients for SQLite and PostgreSQL + Pothos types (gitignored build artifacts).
// Runs offline (placeholder engine paths; Prisma 7's client needs no engine) and skips the Prisma
// step when schema.prisma and the Prisma version are unchanged since the last run.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { apiDir, rootDir, schemaPath, generatedDir, tmpDir, offlineEnv, deriveSchema } from './prisma-offline.mjs';

const prismaCli = join(rootDir, 'node_modules/prisma/build/index.js');
const stampPath = join(generatedDir, '.stamp');
const force = process.argv.includes('--force');

function stamp() {
  const version = JSON.parse(readFileSync(join(rootDir, 'node_modules/prisma/package.json'), 'utf8')).version;
  return createHash('sha256').update(version).update(readFileSync(schemaPath)).update(readFileSync(new URL(import.meta.url))).digest('hex');
}

function prismaGenerate(schemaFile) {
  execFileSync(process.execPath, [prismaCli, 'generate', '--schema', schemaFile, '--no-hints'], {
    cwd: apiDir, env: offlineEnv(), stdio: ['ignore', 'ignore', 'inherit'],
  });
}

const current = stamp();
const upToDate = !force && existsSync(stampPath) && readFileSync(stampPath, 'utf8') === current
  && existsSync(join(generatedDir, 'sqlite/client.ts')) && existsSync(join(generatedDir, 'postgresql/client.ts'));

if (!upToDate) {
  // SQLite client + Pothos types straight from the source schema.
  prismaGenerate(schemaPath);
  // PostgreSQL client: same datamodel, provider swapped, Pothos generator dropped.
  mkdirSync(tmpDir, { recursive: true });
  const pgSchema = join(tmpDir, 'schema.postgresql.prisma');
  const text = deriveSchema('postgresql', { clientOutput: '../postgresql' })
    .replace(/generator pothos \{[^}]*\}\n/, '');
  writeFileSync(pgSchema, text);
  prismaGenerate(pgSchema);
  writeFileSync(stampPath, current);
}

// The committed GraphQL contract (schema.graphql) is NOT rewritten here: `npm run contracts`
// re-prints it, and `check:generated` fails when the committed file is stale.
