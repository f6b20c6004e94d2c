import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/db/postgres.js';
import { createJobLocks, runJob, startJobScheduler, type JobContext, type JobDefinition, type JobDeps } from '../../src/jobs/runner.js';
import { registry } from '../../src/observability/metrics.js';
import { runCli } from '../helpers/cli.js';
import { primaryDbKind } from '../helpers/db.js';
import { jobDeps } from '../helpers/jobs.js';
import { startTestServer, TEST_ADMIN_SECRET, TEST_MASTER_KEY, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

/** A job that runs until the test lets it finish, or until it is told to stop. */
function heldJob(name: JobDefinition['name']) {
  let start!: () => void;
  let finish!: () => void;
  const started = new Promise<void>((resolve) => (start = resolve));
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const job: JobDefinition = {
    name,
    description: 'test',
    async run(ctx: JobContext) {
      start();
      await Promise.race([
        finished,
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true })),
      ]);
      return { done: 1 };
    },
  };
  return { job, started, finish };
}

async function lastRun(job: string) {
  const { rows } = await server.db.query('SELECT last_outcome, last_summary, last_error FROM job_runs WHERE job = $1', [job]);
  return rows[0];
}

/** A second gateway process's view: its own pool and lock connection on PostgreSQL, the same database on PGlite. */
function otherProcess(): JobDeps & { close(): Promise<void> } {
  if (server.db.kind !== 'postgres') return { ...jobDeps(server), close: async () => {} };
  const db = openPostgres({ connectionString: server.config.databaseUrl!, max: 2 });
  return { ...jobDeps(server, { db }), close: () => db.close() };
}

describe('job runner', () => {
  it('runs a job in one process at a time: a second runner skips it while the first holds the lock', async () => {
    const first = jobDeps(server);
    const second = otherProcess();
    const [firstLocks, secondLocks] = [createJobLocks(first), createJobLocks(second)];
    try {
      const held = heldJob('reconcile');
      const running = runJob(first, held.job, { locks: firstLocks, force: true });
      await held.started;
      expect(await runJob(second, held.job, { locks: secondLocks, force: true })).toMatchObject({ outcome: 'skipped', skipped: 'locked' });
      // The same process asking again is refused too (session locks would let it in twice).
      expect(await runJob(first, held.job, { locks: firstLocks, force: true })).toMatchObject({ outcome: 'skipped', skipped: 'locked' });
      held.finish();
      expect(await running).toMatchObject({ outcome: 'ok', summary: { done: 1 } });
      expect(await lastRun('reconcile')).toEqual({ last_outcome: 'ok', last_summary: { done: 1 }, last_error: null });

      // The lock is free again, but the cluster's last run is less than an interval old.
      const quick = heldJob('reconcile');
      quick.finish();
      expect(await runJob(second, quick.job, { locks: secondLocks })).toMatchObject({ outcome: 'skipped', skipped: 'not-due' });
      expect(await runJob(second, quick.job, { locks: secondLocks, force: true })).toMatchObject({ outcome: 'ok' });
    } finally {
      await Promise.all([firstLocks.close(), secondLocks.close()]);
      await second.close();
    }
  });

  it.skipIf(primaryDbKind !== 'postgres')('stops a job whose lock connection dropped, since another process may now run it', async () => {
    const deps = jobDeps(server);
    const locks = createJobLocks(deps);
    try {
      const held = heldJob('purge');
      const running = runJob(deps, held.job, { locks, force: true });
      await held.started;
      const admin = new pg.Client({ connectionString: server.config.databaseUrl! });
      await admin.connect();
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jettythunder-job-locks' AND datname = current_database()`);
      await admin.end();
      expect(await running).toMatchObject({ outcome: 'interrupted' });
      // A new connection takes the lock again.
      const again = heldJob('purge');
      again.finish();
      expect(await runJob(deps, again.job, { locks, force: true })).toMatchObject({ outcome: 'ok' });
    } finally {
      await locks.close();
    }
  });

  it('the scheduler runs a due job, and stop() interrupts it at a safe point and waits for it', async () => {
    const held = heldJob('hash-pending');
    const scheduler = startJobScheduler(jobDeps(server), { jobs: [held.job], firstLookMs: 0, maxJitterMs: 0 });
    await held.started;
    await scheduler.stop();
    expect(await lastRun('hash-pending')).toMatchObject({ last_outcome: 'interrupted', last_error: 'shutting down' });
    const metrics = await registry.getSingleMetricAsString('jt_job_runs_total');
    expect(metrics).toContain('jt_job_runs_total{job="hash-pending",outcome="interrupted"} 1');
    expect(metrics).toContain('jt_job_runs_total{job="reconcile",outcome="skipped"}');
  });
});

describe('jettythunder jobs', () => {
  it('`jobs run expire` prints plain lines when not on a terminal and exits 0; `jobs list` shows the run', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jt-jobs-cli-'));
    // PGlite serves one process: the CLI gets an embedded database of its own.
    const env: Record<string, string> =
      server.db.kind === 'postgres'
        ? { DATABASE_URL: server.config.databaseUrl!, JT_MASTER_KEY: TEST_MASTER_KEY, AGENTCACHE_WEBHOOK_SECRET: TEST_ADMIN_SECRET, DATA_DIR: dataDir }
        : { DATA_DIR: dataDir };
    try {
      const run = runCli(['jobs', 'run', 'expire'], { env: { ...env, LOG_LEVEL: 'warn' } });
      expect(await run.exited).toEqual({ code: 0, signal: null });
      const lines = run.stdout().trimEnd().split('\n');
      expect(lines[0]).toBe('expire: expired objects (0)');
      expect(lines.at(-1)).toMatch(/^expire: ok in \d+\.\ds \(objects=0, backendObjects=0, reservations=0\)$/);
      expect(run.stdout()).not.toMatch(/[\r\x1b]/);

      const list = runCli(['jobs', 'list'], { env });
      expect(await list.exited).toEqual({ code: 0, signal: null });
      expect(list.stdout()).toMatch(/^expire\s+5m\s+\d{4}-\d\d-\d\dT\S+\s+ok\s+delete objects/m);
      expect(list.stdout()).toMatch(/^gc\s+1h\s+never\s+-\s+/m);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
