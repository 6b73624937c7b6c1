import { defineConfig } from 'vitest/config';

/** `npm run test:gpu`: the CUDA conformance suite, for machines with an NVIDIA GPU. */
export default defineConfig({
  test: {
    include: ['test/gpu/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
  },
});
