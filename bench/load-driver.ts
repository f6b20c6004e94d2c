import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Job, JobResult } from './load-client.js';
import { BENCH_DIR, REPO_ROOT, TSX_LOADER, type Cleanup } from './processes.js';

/** The orchestrator's handle on the load-generator child: one job at a time, each with a time bound. */
export class LoadDriver {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (result: JobResult) => void; reject: (error: Error) => void }>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: { id?: number; result?: JobResult; error?: string }) => {
      if (message.id === undefined) return;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.error !== undefined) waiter.reject(new Error(message.error));
      else waiter.resolve(message.result!);
    });
    child.once('exit', (code, signal) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`load client exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  static async start(cleanup: Cleanup): Promise<LoadDriver> {
    const child = fork(path.join(BENCH_DIR, 'load-client.ts'), [], {
      cwd: REPO_ROOT,
      execArgv: ['--import', TSX_LOADER],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    cleanup.add(`load client (pid ${child.pid ?? '?'})`, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('load client did not start within 30 s')), 30_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`load client exited (${code}) while starting`));
      });
    });
    return new LoadDriver(child);
  }

  /**
   * Runs one job. Past `timeoutMs` the promise rejects; the job keeps running in the child until its own
   * request timeouts end it, so the caller should treat the client as spent and stop the run.
   */
  run<T extends JobResult>(job: Job, timeoutMs: number): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${job.kind} job exceeded ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (result) => {
          clearTimeout(timer);
          resolve(result as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ id, job });
    });
  }
}
