import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/browser/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most suites wait on workerd (grace periods, evictions) rather than compute: a third worker on 2 cores takes the run from ~210 s to ~140 s.
    maxWorkers: 3,
    // Under CI a JSON report feeds the totals line of .ci/run.
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.tmp/results/unit.json' }]] : ['default'],
  },
});
