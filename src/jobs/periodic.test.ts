import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import { runEvery } from './periodic.js';

const silent = createLogger('silent');

describe('runEvery', () => {
  it('runs one at a time, again after a failure, and stop() waits for the run in progress', async () => {
    let runs = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let finishedAfterStop = false;
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const task = runEvery(
      'test',
      5,
      async () => {
        runs++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          if (runs === 1) throw new Error('first run fails');
          if (runs === 3) {
            await blocked;
            finishedAfterStop = true;
          }
        } finally {
          inFlight--;
        }
      },
      silent,
    );
    await expect.poll(() => runs).toBe(3);
    task.wake();
    const stopped = task.stop();
    release();
    await stopped;
    expect(finishedAfterStop).toBe(true);
    expect(maxInFlight).toBe(1);
    const runsAtStop = runs;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(runs).toBe(runsAtStop);
  });

  it('wake() runs at once instead of after the interval', async () => {
    let runs = 0;
    const task = runEvery('test', 60_000, async () => void runs++, silent);
    task.wake();
    await expect.poll(() => runs).toBe(1);
    await task.stop();
  });
});
