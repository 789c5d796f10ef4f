import { defineConfig } from 'vitest/config';

export default defineConfig({
  // JSX with the automatic runtime (as @vitejs/plugin-react configures it for the build).
  oxc: { jsx: { runtime: 'automatic' } },
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
