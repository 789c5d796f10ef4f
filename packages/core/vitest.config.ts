import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Vitest's default is one worker fewer than the CPUs: on a 2-core CI machine that is ONE worker,
    // so the files ran one after another and core (the longest package) left a core idle once the
    // other packages' tasks were done. Files are independent (own SQLite databases, own PGlite, or
    // own random schemas and role names on TEST_DATABASE_URL), so two may always run side by side.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
