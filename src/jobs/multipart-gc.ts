import type { AppDeps } from '../deps.js';
import { finishAbortedUpload, listUploadsToCollect, markAborted } from '../store/multipart.js';

/**
 * The collector of multipart uploads nobody will finish (exported for the jobs runner to schedule):
 * - open uploads older than MULTIPART_MAX_AGE_HOURS (default 7 days) with no part streaming: aborted, so
 *   their parts stop counting against the account's storage and leave the backend;
 * - completions whose process died between the backend assembling the object and the commit (stuck in
 *   'completing'): aborted too, the assembled backend object deleted with the staged key;
 * - aborted uploads whose backend parts could not be deleted at the time, or whose last writer died.
 * Each step is idempotent, so overlapping runs, or a run cut short, leave nothing inconsistent.
 */

type CollectorDeps = Pick<AppDeps, 'db' | 'backend' | 'logger' | 'config'>;

export interface CollectOptions {
  /** Defaults to the configured MULTIPART_MAX_AGE_HOURS. */
  maxAgeHours?: number;
  /** A completion this old has lost its process. Default 60 minutes. */
  stuckCompletingMinutes?: number;
  /** Uploads read per query. */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface CollectResult {
  /** Uploads aborted by this run (stale or stuck). */
  aborted: number;
  /** Uploads whose backend parts are now gone and whose rows were removed. */
  removed: number;
  failed: number;
}

export async function collectStaleUploads(deps: CollectorDeps, options: CollectOptions = {}): Promise<CollectResult> {
  const result: CollectResult = { aborted: 0, removed: 0, failed: 0 };
  const seen = new Set<string>();
  for (;;) {
    options.signal?.throwIfAborted();
    const uploads = await listUploadsToCollect(deps.db, {
      maxAgeHours: options.maxAgeHours ?? deps.config.multipart.maxAgeHours,
      stuckCompletingMinutes: options.stuckCompletingMinutes ?? 60,
      limit: options.batchSize ?? 100,
    });
    // An aborted upload whose writer still streams stays listed; once a batch brings nothing new, stop.
    const fresh = uploads.filter((upload) => !seen.has(upload.id));
    if (fresh.length === 0) return result;
    for (const upload of fresh) {
      seen.add(upload.id);
      try {
        if (upload.state !== 'aborted' && (await markAborted(deps.db, upload.id, upload.state === 'completing' ? 'completing' : 'open')) === 'aborted') {
          result.aborted++;
        }
        if (await finishAbortedUpload({ db: deps.db, backend: deps.backend, logger: deps.logger }, upload.id)) result.removed++;
      } catch (error) {
        result.failed++;
        deps.logger.warn({ err: error, uploadId: upload.uploadId }, 'could not collect a multipart upload; the next run retries');
      }
    }
  }
}
