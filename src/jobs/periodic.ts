import type { Logger } from 'pino';

export interface PeriodicTask {
  /** Runs the task now unless a run is in progress (a run is then due right after it). */
  wake(): void;
  /** No run starts after this; resolves once the run in progress, if any, has ended. */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs`, one run at a time, starting `intervalMs` after the call. The timer is
 * unref'd, so a waiting task never keeps the process alive; a run that throws is logged and the next
 * one comes at the usual time. A run returning true asks for another at once (a full batch, more due).
 */
export function runEvery(
  name: string,
  intervalMs: number,
  task: (signal: AbortSignal) => Promise<boolean | void>,
  logger: Logger,
): PeriodicTask {
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let wakeRequested = false;

  const schedule = (delayMs: number) => {
    if (stopping.signal.aborted) return;
    clearTimeout(timer);
    timer = setTimeout(run, delayMs);
    timer.unref();
  };

  function run(): void {
    if (stopping.signal.aborted) return;
    if (running) {
      wakeRequested = true;
      return;
    }
    clearTimeout(timer);
    running = (async () => {
      let again = false;
      try {
        again = (await task(stopping.signal)) === true;
      } catch (error) {
        if (!stopping.signal.aborted) logger.error({ err: error, task: name }, 'periodic task failed; it runs again at the next interval');
      } finally {
        running = undefined;
      }
      const soon = again || wakeRequested;
      wakeRequested = false;
      schedule(soon ? 0 : intervalMs);
    })();
  }

  schedule(intervalMs);
  return {
    wake: run,
    async stop() {
      stopping.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
