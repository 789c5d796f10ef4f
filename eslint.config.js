// @ts-check
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
    // Core stays framework- and driver-free outside its adapters (docs/ARCHITECTURE.md).
    files: ['packages/core/src/**/*.ts'],
    ignores: ['packages/core/src/adapters/**', 'packages/core/src/testing/**', 'packages/core/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'better-sqlite3', 'pg', 'graphql', 'graphql-*', '@prisma/*', '@pothos/*'], message: 'core must stay pure: put driver code in src/adapters/' },
        ],
      }],
    },
  },
);
