import type { JobContext, JobSummary } from './runner.js';

/** Rows deleted per statement: short statements keep the table writable for the request log meanwhile. */
const BATCH = 5_000;

/** Deletes api_requests rows older than REQUEST_LOG_RETENTION_DAYS, a bounded batch at a time. */
export async function pruneRequestLog(ctx: JobContext): Promise<JobSummary> {
  const days = ctx.config.jobs.requestLogRetentionDays;
  ctx.progress.phase(`requests older than ${days} days`);
  let rows = 0;
  for (;;) {
    ctx.signal.throwIfAborted();
    const { rowCount } = await ctx.db.query(
      `DELETE FROM api_requests WHERE id IN (
         SELECT id FROM api_requests WHERE created_at < $1::timestamptz - make_interval(days => $2) LIMIT $3)`,
      [ctx.now(), days, BATCH],
    );
    rows += rowCount;
    ctx.progress.advance(rowCount);
    if (rowCount < BATCH) return { rows };
  }
}
