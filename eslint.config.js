// @ts-check
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/generated/**', '**/dist/**', '**/*.d.ts'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Core stays framework- and driver-free outside its adapters (docs/ARCHITECTURE.md). Anchored
    // at the core package by an absolute basePath: each package lints with `--config ../../…`,
    // which makes patterns relative to its own directory, so a root-relative glob never matched.
    basePath: fileURLToPath(new URL('./packages/core/', import.meta.url)),
    files: ['src/**/*.ts'],
    ignores: ['src/adapters/**', 'src/testing/**', 'src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'better-sqlite3', 'pg', 'graphql', 'graphql-*', '@prisma/*', '@pothos/*'], message: 'core must stay pure: put driver code in src/adapters/' },
        ],
      }],
    },
  },
);
