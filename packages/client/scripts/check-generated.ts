/**
 * Drift check for src/generated: regenerates from the committed schema
 * (packages/api/schema.graphql) and src/graphql/operations into a temp dir with the root
 * codegen.ts, and fails when anything differs from src/generated (works on uncommitted trees).
 * With CI set (or --committed), also fails when src/generated differs from git HEAD, which
 * catches a stale commit even after a `generate` step has rewritten the working tree.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const clientDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rootDir = resolve(clientDir, '../..');
const generatedDir = join(clientDir, 'src/generated');

function codegenBin(): string {
  const require = createRequire(join(rootDir, 'package.json'));
  return join(dirname(require.resolve('@graphql-codegen/cli/package.json')), 'esm/bin.js');
}

function files(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')).sort() : [];
}

function compare(expectedDir: string, actualDir: string): string[] {
  const problems: string[] = [];
  const expected = files(expectedDir);
  const actual = files(actualDir);
  for (const f of expected) {
    if (!actual.includes(f)) problems.push(`missing src/generated/${f}`);
    else if (readFileSync(join(expectedDir, f), 'utf8') !== readFileSync(join(actualDir, f), 'utf8')) problems.push(`stale src/generated/${f}`);
  }
  for (const f of actual) if (!expected.includes(f)) problems.push(`unexpected src/generated/${f} (no longer generated)`);
  return problems;
}

function committedDrift(): string[] {
  try {
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src/generated'], { cwd: clientDir, encoding: 'utf8' });
    return status.trim() === '' ? [] : [`src/generated differs from git HEAD:\n${status.trimEnd()}`];
  } catch {
    return []; // not a git checkout
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'offsync-client-codegen-'));
const problems: string[] = [];
try {
  execFileSync(process.execPath, [codegenBin(), '--config', join(rootDir, 'codegen.ts')], {
    cwd: rootDir,
    stdio: 'inherit',
    env: { ...process.env, OFFSYNC_CODEGEN_OUT: tmp },
  });
  problems.push(...compare(tmp, generatedDir));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
if (process.env['CI'] !== undefined || process.argv.includes('--committed')) problems.push(...committedDrift());

if (problems.length > 0) {
  for (const p of problems) console.error(`✗ ${p}`);
  console.error('Run `npm run contracts` (root) and commit packages/client/src/generated.');
  process.exit(1);
}
console.log('✓ packages/client/src/generated matches the schema and operations');
