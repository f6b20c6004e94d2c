import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));
/** Resolved once, so children load TypeScript the way `npm run bench` does, whatever their cwd. */
export const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;

/**
 * Everything the run starts registers how to undo it here; cleanup runs the list newest first, once,
 * on success, on error and on Ctrl-C alike.
 */
export class Cleanup {
  private readonly steps: { what: string; undo: () => Promise<void> | void }[] = [];
  private running: Promise<void> | undefined;

  add(what: string, undo: () => Promise<void> | void): void {
    this.steps.push({ what, undo });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()!;
        try {
          await step.undo();
        } catch (error) {
          process.stderr.write(`bench: cleanup of ${step.what} failed: ${String(error)}\n`);
        }
      }
    })();
    return this.running;
  }
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines of its output, for an error message. */
  tail(lines?: number): string;
  /** Resolves with the first JSON log line whose msg is `msg`, polling the log file. */
  waitForJsonLine<T>(msg: string, timeoutMs: number): Promise<T>;
  /** SIGTERM, then SIGKILL when it has not exited within graceMs. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a Node process whose stdout and stderr go to a file rather than a pipe: a pipe we stopped
 * reading would block a process that logs synchronously (pino), and a file costs the measured process
 * no more than production logging does.
 */
export function startService(options: {
  name: string;
  script: string;
  args?: string[];
  env: Record<string, string>;
  logDir: string;
  cleanup: Cleanup;
  /** Load the script through tsx (TypeScript source); false for plain JS. Default true. */
  tsx?: boolean;
  /** Options for node itself, e.g. --cpu-prof. */
  nodeArgs?: string[];
}): ServiceProcess {
  const logFile = path.join(options.logDir, `${options.name}.log`);
  const fd = openSync(logFile, 'a');
  const loader = options.tsx === false ? [] : ['--import', TSX_LOADER];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, options.script, ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${options.name}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const readLog = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  const service: ServiceProcess = {
    name: options.name,
    child,
    pid: child.pid,
    logFile,
    exited,
    tail: (lines = 15) => readLog().trimEnd().split('\n').slice(-lines).join('\n'),
    async waitForJsonLine<T>(msg: string, timeoutMs: number): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (const line of readLog().split('\n')) {
          if (!line.includes(`"msg":"${msg}"`)) continue;
          try {
            return JSON.parse(line) as T;
          } catch {
            // A line still being written; the next poll reads it whole.
          }
        }
        if (hasExited) throw new Error(`${options.name} exited before logging "${msg}":\n${service.tail()}`);
        if (Date.now() > deadline) throw new Error(`${options.name} did not log "${msg}" within ${timeoutMs} ms:\n${service.tail()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop(graceMs = 5_000) {
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  options.cleanup.add(`process ${options.name} (pid ${child.pid})`, () => service.stop());
  return service;
}

/** The URL a bench service (null-s3, passthrough) logs in its `listening` line. */
export async function waitForServiceUrl(service: ServiceProcess, timeoutMs = 30_000): Promise<string> {
  const line = await service.waitForJsonLine<{ url: string }>('listening', timeoutMs);
  return line.url;
}

/**
 * For the bench's own children: exit when the run that started them is gone (killed with SIGKILL, say),
 * so no null endpoint or proxy outlives it. The gateway is the project's code and is stopped by Cleanup.
 */
export function exitWithParent(): void {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1_000).unref();
}

/** True when `moduleUrl` is the script Node was started with (as opposed to imported). */
export function isMainModule(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && pathToFileURL(path.resolve(script)).href === moduleUrl;
}
