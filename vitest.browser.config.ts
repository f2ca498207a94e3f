import { defineConfig } from 'vitest/config';

/** Browser tests: real Chromium (Debian's, driven by playwright-core) against the chat example on workerd. */
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One Chromium and one workerd at a time: timing-sensitive tests stay honest on 2 cores.
    fileParallelism: false,
    // Under CI a JSON report feeds the totals line of .ci/run.
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.tmp/results/browser.json' }]] : ['default'],
  },
});
