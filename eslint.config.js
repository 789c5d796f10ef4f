// @ts-check
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

/**
 * `no-restricted-imports` for `test/**` and `bench/**` of one package, anchored at it (see the core
 * purity block below for why basePath is absolute). `entries` are the entry modules under src/
 * (without `.ts`; regular expressions) that tests may import by relative path.
 * @param {string} pkg
 * @param {string[]} entries
 */
function entryPointRules(pkg, entries) {
  return [{
    basePath: fileURLToPath(new URL(`./packages/${pkg}/`, import.meta.url)),
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: `^(\\.\\./)+src/(?!(${entries.join('|')})\\.ts$)`, message: `tests import @offsync/${pkg}'s public entry points (${entries.map((e) => `src/${e}.ts`).join(', ')}), not its internals: export what the test needs from an entry (test-only helpers from a testing entry), or colocate a white-box test as src/**/*.test.ts` },
          { regex: '(^|/)(core|api|client|dashboard)/src/', message: 'import another package by its name and public entry point (@offsync/core, @offsync/core/testing, @offsync/api, …), not by a path into its src/' },
        ],
      }],
    },
  }];
}

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
  // Tests and benches go through the public entry points (docs/ARCHITECTURE.md "Public entry points
  // and tests"): a deep `../src/…` import is refused unless it names an entry file, and another
  // package is imported by its name (`@offsync/core…`), never by a path into its src/. White-box
  // unit tests live next to their module (src/**/*.test.ts) and may import their siblings.
  ...entryPointRules('core', ['index', 'adapters/sqlite/index', 'adapters/postgres/index', 'testing/index']),
  ...entryPointRules('client', ['index', 'sync/index']),
  ...entryPointRules('api', ['index', 'domains/[a-z-]+/index']),
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
