import { defineConfig } from 'vitest/config';

export default defineConfig({
  // JSX with the automatic runtime (as @vitejs/plugin-react configures it for the build).
  oxc: { jsx: { runtime: 'automatic' } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // `npm test` runs the component tests; the browser suite (Debian's chromium) is its own
    // command, `npm run test:browser` — .ci/run installs chromium and runs it after `npm test`.
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/unit/**/*.test.tsx'] } },
      { extends: true, test: { name: 'browser', include: ['test/e2e/**/*.test.ts'] } },
    ],
  },
});
