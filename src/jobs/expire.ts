import { expireReservations } from '../quota/storage.js';
import { deleteUnreferenced } from '../store/blobs.js';
import { deleteExpiredObjects } from '../store/objects.js';
import type { JobContext, JobSummary } from './runner.js';

/** Objects deleted per transaction: one account row lock held for a bounded time. */
const BATCH = 500;

/**
 * Deletes objects whose expires_at has passed (every surface stopped showing them at that moment), with
 * their usage, and deletes the backend objects no other object shares. Also releases storage
 * reservations whose upload's process died, so quota never leaks.
 *
 * Interrupted anywhere, it loses nothing: each batch commits its rows, usage and released blobs together,
 * and a backend object not deleted yet stays in staged_writes for gc.
 */
export async function expireObjects(ctx: JobContext): Promise<JobSummary> {
  const reservations = await expireReservations(ctx.db);
  const { rows: total } = await ctx.db.query<{ n: number }>(
    `SELECT count(*)::bigint AS n FROM agentcache_assets o JOIN agentcache_accounts a ON a.id = o.account_id
      WHERE o.expires_at <= now() AND a.status <> 'deleted'`,
  );
  ctx.progress.phase('expired objects', Number(total[0]!.n));
  let objects = 0;
  let backendObjects = 0;
  // A deleted account's objects are the purge's to remove.
  for (;;) {
    ctx.signal.throwIfAborted();
    const { rows: buckets } = await ctx.db.query<{ account_id: string; bucket_id: string }>(
      `SELECT DISTINCT o.account_id, o.bucket_id FROM agentcache_assets o JOIN agentcache_accounts a ON a.id = o.account_id
        WHERE o.expires_at <= now() AND a.status <> 'deleted' LIMIT 100`,
    );
    if (buckets.length === 0) break;
    let progressed = false;
    for (const bucket of buckets) {
      for (;;) {
        ctx.signal.throwIfAborted();
        const { count, unreferenced } = await deleteExpiredObjects(ctx.db, bucket.account_id, bucket.bucket_id, BATCH);
        await deleteUnreferenced(ctx, unreferenced);
        objects += count;
        backendObjects += unreferenced.length;
        ctx.progress.advance(count);
        if (count > 0) progressed = true;
        if (count < BATCH) break;
      }
    }
    // Rows another transaction holds are skipped (SKIP LOCKED); they are left for the next run.
    if (!progressed) break;
  }
  return { objects, backendObjects, reservations };
}
