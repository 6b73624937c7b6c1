import { defineConfig } from 'vitest/config';

// The sanitizer pass of `npm test` (scripts/hardening/asan-test.sh) sets 4: instrumented kernels are slower.
const timeScale = Number(process.env.EDU_TRAIN_TEST_TIME_SCALE ?? 1);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/gpu needs an NVIDIA GPU: npm run test:gpu.
    exclude: ['test/gpu/**', '**/node_modules/**'],
    testTimeout: 120_000 * timeScale,
    hookTimeout: 300_000 * timeScale,
    pool: 'forks',
    // Two cores: the native kernels already use both; running test files in parallel only thrashes.
    poolOptions: { forks: { singleFork: false, maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});
