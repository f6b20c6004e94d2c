import pg from 'pg';
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import type { JobName, ReadyConfig } from '../config.js';
import type { Db } from '../db/index.js';
import { jobDuration, jobRuns } from '../observability/metrics.js';
import { silentProgress, type Progress } from './progress.js';

/**
 * Runs background jobs once per cluster. Every gateway process schedules every job, and a job runs only
 * where its PostgreSQL advisory lock was taken, and only once the cluster's last run of it (job_runs) is
 * an interval old. `jettythunder jobs run <name>` takes the same lock, so an operator's run and a
 * scheduled one never overlap either.
 */

export interface JobContext {
  db: Db;
  backend: Backend;
  logger: Logger;
  config: ReadyConfig;
  /** Fires on shutdown, Ctrl-C or a lost lock: the job stops at its next safe point and resumes next run. */
  signal: AbortSignal;
  progress: Progress;
  now(): Date;
}

/** What a job reports when it ends: counts by name, e.g. { objects: 3, bytes: 1024 }. */
export type JobSummary = Record<string, number>;

export interface JobDefinition {
  name: JobName;
  description: string;
  run(ctx: JobContext): Promise<JobSummary>;
}

export type JobDeps = Pick<JobContext, 'db' | 'backend' | 'logger' | 'config'>;

export type JobOutcome = 'ok' | 'failed' | 'interrupted' | 'skipped';

export interface JobRunResult {
  job: JobName;
  outcome: JobOutcome;
  /** Why a run was skipped: another run holds the lock, or the last run is not an interval old. */
  skipped?: 'locked' | 'not-due';
  summary?: JobSummary;
  error?: Error;
  durationMs: number;
  /** When the scheduler should look again, in milliseconds from now. */
  nextInMs?: number;
}

// ------------------------------------------------------------------------------------------------- locks

export interface JobLock {
  /** Fires when the lock can no longer be trusted: its connection dropped, so another process may take it. */
  lost: AbortSignal;
  release(): Promise<void>;
}

export interface JobLocks {
  /** The job's cluster-wide lock, or null while another run, here or elsewhere, holds it. */
  tryLock(job: string): Promise<JobLock | null>;
  close(): Promise<void>;
}

// Two-key advisory locks: this namespace ("JTJB") and hashtext(job name), apart from other users' keys.
const LOCK_NAMESPACE = 0x4a544a42;

/**
 * Session advisory locks on one connection of their own, outside the pool: no transaction stays open
 * while a job runs, and a process that dies takes its locks with its connection. Session locks are
 * re-entrant within a session, so a job already running here is refused before the database is asked.
 */
function postgresLocks(connectionString: string, logger: Logger): JobLocks {
  let connection: { client: pg.Client; lost: AbortController; ready: Promise<void> } | null = null;
  const held = new Set<string>();

  const connect = () => {
    if (connection) return connection;
    // Named, so operators can tell it in pg_stat_activity: it idles for as long as the process runs.
    const client = new pg.Client({ connectionString, keepAlive: true, application_name: 'jettythunder-job-locks' });
    const lost = new AbortController();
    const drop = (error?: Error) => {
      if (connection?.client !== client) return;
      connection = null;
      held.clear();
      lost.abort(new Error('the connection holding job locks was lost'));
      if (error) logger.warn({ err: error }, 'lost the connection holding job locks; running jobs stop and are retried');
      void client.end().catch(() => undefined);
    };
    client.on('error', drop);
    client.on('end', () => drop());
    const current = { client, lost, ready: client.connect().then(() => undefined) };
    current.ready.catch((error: Error) => drop(error));
    connection = current;
    return current;
  };

  return {
    async tryLock(job) {
      if (held.has(job)) return null;
      held.add(job);
      try {
        const { client, lost, ready } = connect();
        await ready;
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked', [LOCK_NAMESPACE, job]);
        if (!rows[0]?.locked) {
          held.delete(job);
          return null;
        }
        return {
          lost: lost.signal,
          async release() {
            held.delete(job);
            if (connection?.client === client) {
              await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, job]).catch(() => undefined);
            }
          },
        };
      } catch (error) {
        held.delete(job);
        throw error;
      }
    },
    async close() {
      const current = connection;
      connection = null;
      held.clear();
      if (current) await current.client.end().catch(() => undefined);
    },
  };
}

// PGlite is one process by nature: a set per database is the whole cluster's lock table.
const embeddedHeld = new WeakMap<Db, Set<string>>();

function embeddedLocks(db: Db): JobLocks {
  let held = embeddedHeld.get(db);
  if (!held) {
    held = new Set();
    embeddedHeld.set(db, held);
  }
  const locks = held;
  return {
    async tryLock(job) {
      if (locks.has(job)) return null;
      locks.add(job);
      return {
        lost: new AbortController().signal,
        async release() {
          locks.delete(job);
        },
      };
    },
    async close() {},
  };
}

export function createJobLocks(deps: { db: Db; config: Pick<ReadyConfig, 'databaseUrl'>; logger: Logger }): JobLocks {
  return deps.db.kind === 'postgres' && deps.config.databaseUrl ? postgresLocks(deps.config.databaseUrl, deps.logger) : embeddedLocks(deps.db);
}

// ------------------------------------------------------------------------------------------------ one run

export interface RunJobOptions {
  locks: JobLocks;
  /** Run even when the cluster's last run is less than an interval old (an operator's `jobs run`). */
  force?: boolean;
  signal?: AbortSignal;
  progress?: Progress;
  now?: () => Date;
}

function intervalSeconds(deps: JobDeps, job: JobDefinition): number {
  return deps.config.jobs.intervalSeconds[job.name];
}

/** Milliseconds until the job is due again by the cluster's last run; 0 when due now. */
async function msUntilDue(db: Db, job: JobName, seconds: number): Promise<number> {
  const { rows } = await db.query<{ wait_ms: number | null }>(
    `SELECT GREATEST(EXTRACT(EPOCH FROM (last_finished_at + make_interval(secs => $2) - now())) * 1000, 0)::float8 AS wait_ms
       FROM job_runs WHERE job = $1`,
    [job, seconds],
  );
  return Math.ceil(rows[0]?.wait_ms ?? 0);
}

async function recordStart(db: Db, job: JobName): Promise<void> {
  await db.query(
    `INSERT INTO job_runs (job, last_started_at) VALUES ($1, now())
     ON CONFLICT (job) DO UPDATE SET last_started_at = now()`,
    [job],
  );
}

async function recordEnd(db: Db, result: JobRunResult): Promise<void> {
  await db.query(
    `UPDATE job_runs SET last_finished_at = now(), last_outcome = $2::text, last_duration_ms = $3, last_summary = $4, last_error = $5,
            last_ok_at = CASE WHEN $2::text = 'ok' THEN now() ELSE last_ok_at END
      WHERE job = $1`,
    [result.job, result.outcome, Math.round(result.durationMs), result.summary ? JSON.stringify(result.summary) : null, result.error?.message.slice(0, 2000) ?? null],
  );
}

function observe(result: JobRunResult): void {
  jobRuns.inc({ job: result.job, outcome: result.outcome });
  if (result.outcome !== 'skipped') jobDuration.observe({ job: result.job }, result.durationMs / 1000);
}

/**
 * Runs one job here if its lock is free (and, unless forced, it is due), records the run in job_runs and
 * the metrics, and never throws: a failure is the result's outcome.
 */
export async function runJob(deps: JobDeps, job: JobDefinition, options: RunJobOptions): Promise<JobRunResult> {
  const started = performance.now();
  const interval = intervalSeconds(deps, job) * 1000;
  const lock = await options.locks.tryLock(job.name).catch((error: Error) => error);
  if (lock instanceof Error) {
    const result: JobRunResult = { job: job.name, outcome: 'failed', error: lock, durationMs: performance.now() - started, nextInMs: interval };
    deps.logger.error({ err: lock, job: job.name }, 'could not ask for a job lock');
    observe(result);
    return result;
  }
  if (lock === null) {
    const result: JobRunResult = { job: job.name, outcome: 'skipped', skipped: 'locked', durationMs: performance.now() - started, nextInMs: interval };
    observe(result);
    return result;
  }

  const signal = AbortSignal.any(options.signal ? [options.signal, lock.lost] : [lock.lost]);
  let result: JobRunResult;
  try {
    if (!options.force) {
      const wait = await msUntilDue(deps.db, job.name, intervalSeconds(deps, job));
      if (wait > 0) {
        result = { job: job.name, outcome: 'skipped', skipped: 'not-due', durationMs: performance.now() - started, nextInMs: wait };
        observe(result);
        return result;
      }
    }
    await recordStart(deps.db, job.name);
    const ctx: JobContext = {
      ...deps,
      signal,
      progress: options.progress ?? silentProgress,
      now: options.now ?? (() => new Date()),
    };
    try {
      const summary = await job.run(ctx);
      result = { job: job.name, outcome: 'ok', summary, durationMs: performance.now() - started, nextInMs: interval };
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      const outcome = signal.aborted ? 'interrupted' : 'failed';
      result = { job: job.name, outcome, error: failure, durationMs: performance.now() - started, nextInMs: interval };
    } finally {
      ctx.progress.done();
    }
    await recordEnd(deps.db, result).catch((error: unknown) => deps.logger.warn({ err: error, job: job.name }, 'could not record a job run'));
    observe(result);
    const details = { job: job.name, outcome: result.outcome, ms: Math.round(result.durationMs), summary: result.summary };
    if (result.outcome === 'ok') deps.logger.info(details, 'job finished');
    else if (result.outcome === 'interrupted') deps.logger.warn(details, 'job interrupted; the next run resumes it');
    else deps.logger.error({ ...details, err: result.error }, 'job failed; the next run retries');
    return result;
  } catch (error) {
    // The database failed around the run (the due check or its record): retried at the next interval.
    result = { job: job.name, outcome: 'failed', error: error as Error, durationMs: performance.now() - started, nextInMs: interval };
    deps.logger.error({ err: error, job: job.name }, 'job could not run');
    observe(result);
    return result;
  } finally {
    await lock.release();
  }
}

// ---------------------------------------------------------------------------------------------- schedule

export interface JobScheduler {
  /** Stops scheduling, interrupts running jobs at their next safe point and waits for them. */
  stop(): Promise<void>;
}

export interface SchedulerOptions {
  jobs: readonly JobDefinition[];
  locks?: JobLocks;
  /** Wait before a process's first look at each job. */
  firstLookMs?: number;
  /** Most random delay added to each look, so processes do not ask for a lock in lockstep; default 10 % of the interval, at most 30 s. */
  maxJitterMs?: number;
}

const FIRST_LOOK_MS = 15_000;

/** Schedules every job with an interval; each looks again when the cluster's last run says it is due. */
export function startJobScheduler(deps: JobDeps, options: SchedulerOptions): JobScheduler {
  const locks = options.locks ?? createJobLocks(deps);
  const controller = new AbortController();
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<unknown>>();
  const firstLook = options.firstLookMs ?? FIRST_LOOK_MS;

  const schedule = (job: JobDefinition, delayMs: number) => {
    if (controller.signal.aborted) return;
    const jitter = Math.random() * (options.maxJitterMs ?? Math.min(intervalSeconds(deps, job) * 100, 30_000));
    const timer = setTimeout(() => {
      timers.delete(timer);
      const run = runJob(deps, job, { locks, signal: controller.signal });
      running.add(run);
      void run
        .then(
          (result) => result.nextInMs,
          (error: unknown) => deps.logger.error({ err: error, job: job.name }, 'job runner failed'),
        )
        .then((nextInMs) => {
          running.delete(run);
          schedule(job, nextInMs ?? intervalSeconds(deps, job) * 1000);
        });
    }, delayMs + jitter);
    timer.unref();
    timers.add(timer);
  };

  for (const job of options.jobs) {
    if (intervalSeconds(deps, job) > 0) schedule(job, firstLook);
  }

  return {
    async stop() {
      controller.abort(new Error('shutting down'));
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.allSettled([...running]);
      await locks.close();
    },
  };
}
