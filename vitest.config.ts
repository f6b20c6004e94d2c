import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Files start servers and databases of their own; two at a time suits a 2-core machine.
          maxWorkers: 2,
          // Projects with different worker counts must run as separate groups.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
