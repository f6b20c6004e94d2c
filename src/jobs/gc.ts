import { stageReleasedKey } from '../store/blobs.js';
import { collectStaleUploads } from './multipart-gc.js';
import type { JobContext, JobSummary } from './runner.js';

/** Rows read per query. */
const BATCH = 500;

/**
 * Deletes a backend object nothing references, then forgets its staged_writes row. The object goes first:
 * a run cut short between the two leaves the row, and deleting an object already gone succeeds.
 */
async function deleteStaged(ctx: JobContext, key: string): Promise<boolean> {
  try {
    await ctx.backend.delete({ key });
    await ctx.db.query('DELETE FROM staged_writes WHERE backend_key = $1', [key]);
    return true;
  } catch (error) {
    ctx.logger.warn({ err: error, backendKey: key }, 'could not delete an unreferenced backend object; the next gc run retries');
    return false;
  }
}

/**
 * Blobs no object points at. Every write keeps blobs.refcount and the objects in step inside one
 * transaction, so such a blob is drift (a bug, or a hand edit), not a write in progress. Each one is
 * deleted under its row lock after checking again in a fresh statement, so a write that links to it
 * meanwhile either commits first (and the blob stays) or finds it gone and fails as if it never existed.
 * Its backend key moves to staged_writes in the same transaction, then the backend object is deleted.
 * The key is staged as released (stageReleasedKey), so a run killed between the commit and the delete
 * leaves a row that the next run's staged-writes pass removes.
 */
async function collectUnreferencedBlobs(ctx: JobContext): Promise<number> {
  let collected = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    ctx.signal.throwIfAborted();
    const { rows } = await ctx.db.query<{ id: string }>(
      `SELECT b.id FROM blobs b
        WHERE b.id > $1 AND NOT EXISTS (SELECT 1 FROM agentcache_assets o WHERE o.blob_id = b.id)
        ORDER BY b.id LIMIT $2`,
      [after, BATCH],
    );
    if (rows.length === 0) return collected;
    for (const { id } of rows) {
      ctx.signal.throwIfAborted();
      const key = await ctx.db.tx(async (q) => {
        const locked = await q.query<{ backend_key: string; account_id: string }>('SELECT backend_key, account_id FROM blobs WHERE id = $1 FOR UPDATE', [id]);
        const blob = locked.rows[0];
        if (!blob) return null;
        const referenced = await q.query('SELECT 1 FROM agentcache_assets WHERE blob_id = $1 LIMIT 1', [id]);
        if (referenced.rowCount > 0) return null;
        await q.query('DELETE FROM blobs WHERE id = $1', [id]);
        await stageReleasedKey(q, blob.backend_key, blob.account_id);
        return blob.backend_key;
      });
      if (key !== null && (await deleteStaged(ctx, key))) collected++;
      ctx.progress.advance();
    }
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * Backend objects staged by uploads that never committed (their process died) or left behind by a delete
 * that failed, once older than STAGED_WRITE_MAX_AGE_HOURS: no upload in flight is that old. A key a
 * multipart upload still names stays (the backend writes it only when the upload completes; the
 * multipart collector ends those), and so does a key a blob row holds.
 */
async function collectStagedWrites(ctx: JobContext): Promise<number> {
  let collected = 0;
  let after = '';
  for (;;) {
    ctx.signal.throwIfAborted();
    const { rows } = await ctx.db.query<{ backend_key: string }>(
      `SELECT s.backend_key FROM staged_writes s
        WHERE s.created_at < now() - make_interval(hours => $1) AND s.backend_key COLLATE "C" > $2
          AND NOT EXISTS (SELECT 1 FROM multipart_uploads u WHERE u.backend_key = s.backend_key)
          AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.backend_key = s.backend_key)
        ORDER BY s.backend_key COLLATE "C" LIMIT $3`,
      [ctx.config.jobs.stagedWriteMaxAgeHours, after, BATCH],
    );
    if (rows.length === 0) return collected;
    for (const { backend_key: key } of rows) {
      ctx.signal.throwIfAborted();
      if (await deleteStaged(ctx, key)) collected++;
      ctx.progress.advance();
    }
    after = rows[rows.length - 1]!.backend_key;
  }
}

/**
 * Garbage collection: blobs nobody references, staged bytes of uploads that never committed, and
 * multipart uploads older than MULTIPART_MAX_AGE_HOURS (jobs/multipart-gc.ts). Every step is idempotent,
 * so a run cut short anywhere and run again ends where one whole run would have.
 */
export async function collectGarbage(ctx: JobContext): Promise<JobSummary> {
  ctx.progress.phase('unreferenced blobs');
  const blobs = await collectUnreferencedBlobs(ctx);
  ctx.progress.phase('staged writes');
  const stagedWrites = await collectStagedWrites(ctx);
  ctx.progress.phase('multipart uploads');
  const uploads = await collectStaleUploads(ctx, { signal: ctx.signal });
  ctx.progress.advance(uploads.aborted + uploads.removed);
  return { blobs, stagedWrites, uploadsAborted: uploads.aborted, uploadsRemoved: uploads.removed, failed: uploads.failed };
}
