import type { JobName } from '../config.js';
import { expireObjects } from './expire.js';
import { collectGarbage } from './gc.js';
import { hashPendingBlobs } from './hash-pending.js';
import { listUnfinishedPurges, purgeAccount } from './purge.js';
import { reconcileJob } from './reconcile.js';
import { pruneRequestLog } from './request-log-prune.js';
import type { JobContext, JobDefinition, JobSummary } from './runner.js';
import { rollUpUsage } from './usage-rollup.js';

export { createJobLocks, runJob, startJobScheduler, type JobDefinition, type JobRunResult } from './runner.js';

/**
 * Finishes the purge of every deleted account whose purge has not ended: the admin API starts one at
 * delete time, and this picks up any that a restart or a failure cut short.
 */
async function purgeDeletedAccounts(ctx: JobContext): Promise<JobSummary> {
  const accounts = await listUnfinishedPurges(ctx);
  ctx.progress.phase('deleted accounts', accounts.length);
  let purged = 0;
  let failed = 0;
  for (const accountId of accounts) {
    ctx.signal.throwIfAborted();
    try {
      if ((await purgeAccount(ctx, accountId, { signal: ctx.signal })) === 'done') purged++;
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      failed++;
      ctx.logger.warn({ err: error, accountId }, 'account purge failed; the next run resumes it');
    }
    ctx.progress.advance();
  }
  if (failed > 0) throw new Error(`${failed} of ${accounts.length} account purges failed; the next run resumes them`);
  return { purged };
}

async function hashCompletedUploads(ctx: JobContext): Promise<JobSummary> {
  ctx.progress.phase('completed multipart objects');
  const result = await hashPendingBlobs(ctx, { signal: ctx.signal });
  ctx.progress.advance(result.hashed + result.merged);
  if (result.failed > 0) throw new Error(`${result.failed} completed multipart objects could not be read back; retried once their claim lapses`);
  return { hashed: result.hashed, merged: result.merged };
}

/** Every background job; intervals come from the configuration (JOB_DEFAULT_INTERVAL_SECONDS, JOB_INTERVALS). */
export const JOBS: readonly JobDefinition[] = Object.freeze([
  { name: 'expire', description: 'delete objects whose expires_at has passed, and reservations whose upload died', run: expireObjects },
  { name: 'usage-rollup', description: 'write hourly storage, bandwidth, request and cost rows to storage_usage', run: rollUpUsage },
  { name: 'purge', description: "finish removing deleted accounts' backend objects and rows", run: purgeDeletedAccounts },
  { name: 'gc', description: 'delete unreferenced blobs, staged bytes of uploads that never committed, and stale multipart uploads', run: collectGarbage },
  { name: 'reconcile', description: "recompute every account's storage usage from its rows and fix drift", run: reconcileJob },
  { name: 'request-log-prune', description: 'delete api_requests rows older than REQUEST_LOG_RETENTION_DAYS', run: pruneRequestLog },
  { name: 'hash-pending', description: 'read back completed multipart objects to learn their SHA-256 and deduplicate them', run: hashCompletedUploads },
] satisfies JobDefinition[]);

export function findJob(name: string): JobDefinition | undefined {
  return JOBS.find((job) => job.name === (name as JobName));
}
