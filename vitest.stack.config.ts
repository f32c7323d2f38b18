import { defineConfig } from 'vitest/config';

// The docker-compose stack test: builds images and starts containers, so it runs once, alone.
export default defineConfig({
  test: {
    include: ['test/stack/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 600_000,
  },
});
