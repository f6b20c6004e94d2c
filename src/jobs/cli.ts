import { openBackend } from '../backend/index.js';
import { ensureEmbeddedSecrets, loadConfig } from '../config.js';
import { migrate, openDb } from '../db/index.js';
import { createLogger } from '../log.js';
import { findJob, JOBS } from './index.js';
import { createProgress } from './progress.js';
import { createJobLocks, runJob, type JobRunResult } from './runner.js';

/** `jettythunder jobs ...`; resolves to the process's exit code. */

export const JOBS_USAGE = `Usage: jettythunder jobs <list | run <name>>

  list        every job, how often it runs and how its last run went
  run <name>  run one job now, whatever its schedule, and wait for it (Ctrl-C stops it at a safe point)

Exit codes of run: 0 done, 1 failed, 75 already running in another process, 130 interrupted.`;

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_BUSY = 75;
const EXIT_INTERRUPTED = 130;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function describe(result: JobRunResult): string {
  const counts = Object.entries(result.summary ?? {}).map(([name, value]) => `${name}=${value}`);
  return counts.length > 0 ? ` (${counts.join(', ')})` : '';
}

function every(intervalSeconds: number): string {
  if (intervalSeconds === 0) return 'on demand';
  if (intervalSeconds % 3600 === 0) return `${intervalSeconds / 3600}h`;
  if (intervalSeconds % 60 === 0) return `${intervalSeconds / 60}m`;
  return `${intervalSeconds}s`;
}

async function openJobDeps() {
  const config = await ensureEmbeddedSecrets(loadConfig(process.env));
  // Logs go to stderr: stdout carries the job's progress and result.
  const logger = createLogger(config.logLevel, process.stderr);
  const db = await openDb(config, (error) => logger.error({ err: error }, 'database connection error'));
  try {
    await migrate(db);
    const backend = await openBackend(config);
    return {
      deps: { config, db, backend, logger },
      async close() {
        await backend.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
}

async function listJobs(): Promise<number> {
  const { deps, close } = await openJobDeps();
  try {
    const { rows } = await deps.db.query<{ job: string; last_finished_at: Date | null; last_outcome: string | null; last_started_at: Date }>(
      'SELECT job, last_started_at, last_finished_at, last_outcome FROM job_runs',
    );
    const runs = new Map(rows.map((row) => [row.job, row]));
    const table = JOBS.map((job) => {
      const run = runs.get(job.name);
      const last = run?.last_finished_at ? new Date(run.last_finished_at).toISOString() : run ? `started ${new Date(run.last_started_at).toISOString()}` : 'never';
      return [job.name, every(deps.config.jobs.intervalSeconds[job.name]), last, run?.last_outcome ?? '-', job.description];
    });
    const header = ['JOB', 'EVERY', 'LAST RUN', 'OUTCOME', 'WHAT IT DOES'];
    const widths = header.map((title, i) => Math.max(title.length, ...table.map((row) => row[i]!.length)));
    for (const row of [header, ...table]) {
      process.stdout.write(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ') + '\n');
    }
    return 0;
  } finally {
    await close();
  }
}

async function runOne(name: string | undefined): Promise<number> {
  const job = name === undefined ? undefined : findJob(name);
  if (!job) {
    process.stderr.write(`jettythunder: ${name === undefined ? 'which job?' : `no job named "${name}"`} The jobs are: ${JOBS.map((j) => j.name).join(', ')}\n`);
    return EXIT_USAGE;
  }
  const { deps, close } = await openJobDeps();
  const locks = createJobLocks(deps);
  const controller = new AbortController();
  const interrupt = (signal: string) => {
    process.stderr.write(`received ${signal}: stopping ${job.name} at its next safe point\n`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  const onSigint = () => interrupt('SIGINT');
  const onSigterm = () => interrupt('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  try {
    const result = await runJob(deps, job, { locks, force: true, signal: controller.signal, progress: createProgress(process.stdout, job.name) });
    switch (result.outcome) {
      case 'ok':
        process.stdout.write(`${job.name}: ok in ${seconds(result.durationMs)}${describe(result)}\n`);
        return 0;
      case 'skipped':
        process.stderr.write(`${job.name}: already running in another process; nothing done\n`);
        return EXIT_BUSY;
      case 'interrupted':
        process.stderr.write(`${job.name}: interrupted after ${seconds(result.durationMs)}; run it again to resume\n`);
        return EXIT_INTERRUPTED;
      case 'failed':
        process.stderr.write(`${job.name}: failed after ${seconds(result.durationMs)}: ${result.error?.message ?? 'unknown error'}\n`);
        return EXIT_FAILED;
    }
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    await locks.close();
    await close();
  }
}

export async function runJobsCommand(args: string[]): Promise<number> {
  switch (args[0]) {
    case 'list':
      return listJobs();
    case 'run':
      return runOne(args[1]);
    default:
      process.stderr.write(`${args[0] === undefined ? '' : `jettythunder: unknown jobs command "${args[0]}"\n\n`}${JOBS_USAGE}\n`);
      return EXIT_USAGE;
  }
}
