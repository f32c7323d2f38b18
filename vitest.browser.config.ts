import { defineConfig } from 'vitest/config';

// The web UI in Debian's chromium: a browser, a registry and a gateway per file, so it runs once
// (not on each Node version), one file at a time.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
