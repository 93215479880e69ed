import { defineConfig } from 'vitest/config';

// Named suites. `npm test` runs all of them; `npm run test:<name>` runs one alone.
// Integration and FUSE suites start real servers (PostgreSQL, redis-server, the S3/SQS emulator,
// FUSE mounts), so they get generous timeouts and run their files in forked processes.
const slow = { testTimeout: 120_000, hookTimeout: 180_000, pool: 'forks' as const };

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 } },
      { test: { name: 'integration', include: ['test/integration/**/*.test.ts'], ...slow } },
      { test: { name: 'fuse', include: ['test/fuse/**/*.test.ts'], ...slow, fileParallelism: false } },
      { test: { name: 'infra', include: ['test/infra/**/*.test.ts'], testTimeout: 300_000, pool: 'forks' } },
      { test: { name: 'localstack', include: ['test/localstack/**/*.test.ts'], ...slow } },
    ],
  },
});
