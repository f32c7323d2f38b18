import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The docker-compose stack test runs on its own (npm run test:stack, vitest.stack.config.ts).
    exclude: [...configDefaults.exclude, 'test/stack/**'],
    // Tests start real processes (registry, gateway, skopeo, docker): separate processes per file.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
