import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The docker-compose stack test and the browser tests run once, on their own
    // (vitest.stack.config.ts, vitest.browser.config.ts).
    exclude: [...configDefaults.exclude, 'test/stack/**', 'test/browser/**'],
    // Tests start real processes (registry, gateway, skopeo, docker): separate processes per file.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
