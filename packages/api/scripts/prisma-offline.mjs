// Shared helpers for running the Prisma CLIs without network access (docs/CONTROL-PLANE.md).
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const apiDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const rootDir = resolve(apiDir, '../..');
export const schemaPath = join(rootDir, 'prisma/schema.prisma');
export const migrationsDir = join(rootDir, 'prisma/migrations');
export const generatedDir = join(apiDir, 'src/generated');
export const tmpDir = join(generatedDir, '.tmp');

/** Env for the Prisma CLIs: engine paths point at a placeholder so nothing is downloaded. */
export function offlineEnv() {
  mkdirSync(tmpDir, { recursive: true });
  const placeholder = join(tmpDir, 'engine-placeholder');
  if (!existsSync(placeholder)) writeFileSync(placeholder, '');
  return {
    ...process.env,
    // Generators such as prisma-pothos-types are resolved as binaries on PATH.
    PATH: [join(apiDir, 'node_modules/.bin'), join(rootDir, 'node_modules/.bin'), process.env.PATH ?? ''].join(delimiter),
    PRISMA_SCHEMA_ENGINE_BINARY: placeholder,
    PRISMA_QUERY_ENGINE_LIBRARY: placeholder,
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
  };
}

/**
 * schema.prisma with its provider swapped (and, for the Prisma 6 CLI, a `url` line added).
 * The generator `output` paths are rewritten relative to `outDir` so they still land in src/generated.
 */
export function deriveSchema(provider, { url, clientOutput, text: source } = {}) {
  let text = source ?? readFileSync(schemaPath, 'utf8');
  text = text.replace(/provider = "sqlite"/, `provider = "${provider}"${url ? `\n  url      = "${url}"` : ''}`);
  if (clientOutput) {
    text = text.replace(/output\s*=\s*"\.\.\/packages\/api\/src\/generated\/sqlite"/, `output       = "${clientOutput}"`);
  }
  return text;
}
