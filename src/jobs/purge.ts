import { BackendError, BackendErrorCode } from '../backend/backend.js';
import type { AppDeps } from '../deps.js';
import { accountPrefix } from '../storage-layout.js';

type PurgeDeps = Pick<AppDeps, 'db' | 'backend' | 'logger'>;
export type PurgeState = 'pending' | 'running' | 'done';

/** Keys per listing and per batch delete; S3's DeleteObjects takes at most 1,000. */
const BATCH = 1000;

async function deleteBackendObjects(deps: PurgeDeps, accountId: string, agentcacheUserId: string, signal?: AbortSignal): Promise<number> {
  const uploads = await deps.db.query<{ backend_key: string; backend_upload_id: string }>(
    // 'aborted' rows are uploads whose backend parts have not been confirmed gone yet (store/multipart.ts).
    `SELECT backend_key, backend_upload_id FROM multipart_uploads WHERE account_id = $1 AND state IN ('open', 'completing', 'aborted')`,
    [accountId],
  );
  // Parts of unfinished multipart uploads are invisible to a listing, yet stored and billed.
  for (const upload of uploads.rows) {
    signal?.throwIfAborted();
    await deps.backend.abortMultipart({ key: upload.backend_key, uploadId: upload.backend_upload_id });
  }

  const prefix = accountPrefix(agentcacheUserId);
  let deleted = 0;
  let previousFirstKey: string | undefined;
  // Each round lists from the start again: what the last round deleted is gone, so no continuation
  // token is needed, and a purge interrupted anywhere resumes by simply running again.
  for (;;) {
    signal?.throwIfAborted();
    const page = await deps.backend.list({ prefix, maxKeys: BATCH });
    if (page.objects.length === 0) return deleted;
    const keys = page.objects.map((object) => object.key);
    if (keys[0] === previousFirstKey) {
      throw new BackendError(BackendErrorCode.Failed, `purge of ${prefix} made no progress: ${keys[0]} is still listed after its delete`);
    }
    const { errors } = await deps.backend.deleteMany({ keys });
    if (errors.length > 0) {
      throw new BackendError(BackendErrorCode.Failed, `purge of ${prefix} could not delete ${errors.length} objects, e.g. ${errors[0]!.key}: ${errors[0]!.message}`);
    }
    deleted += keys.length;
    previousFirstKey = keys[0];
  }
}

/**
 * Removes everything a deleted account stored: its objects under users/<id>/ on the backend, then its
 * buckets, objects, blobs, uploads, reservations and live usage rows. The account row stays as a
 * tombstone (status deleted, purge_state done, secrets and email wiped) so a repeated delete or a late
 * webhook still finds it; billing history (storage_usage, api_requests) stays too.
 *
 * Idempotent and resumable: it does nothing for an account that is not deleted or already purged, and a
 * purge that failed or was interrupted (purge_state left 'running') picks up where it stopped when run
 * again. Returns the purge state afterwards, or null for an unknown account.
 */
export async function purgeAccount(deps: PurgeDeps, accountId: string, options: { signal?: AbortSignal } = {}): Promise<PurgeState | null> {
  const claimed = await deps.db.query<{ agentcache_user_id: string }>(
    `UPDATE agentcache_accounts SET purge_state = 'running', updated_at = now()
      WHERE id = $1 AND status = 'deleted' AND purge_state IS DISTINCT FROM 'done'
      RETURNING agentcache_user_id`,
    [accountId],
  );
  const account = claimed.rows[0];
  if (!account) {
    const { rows } = await deps.db.query<{ purge_state: PurgeState | null }>('SELECT purge_state FROM agentcache_accounts WHERE id = $1', [accountId]);
    return rows[0] ? rows[0].purge_state : null;
  }

  const started = Date.now();
  const objects = await deleteBackendObjects(deps, accountId, account.agentcache_user_id, options.signal);
  options.signal?.throwIfAborted();
  await deps.db.tx(async (q) => {
    // Order follows the foreign keys: objects point at blobs, parts at uploads (cascade), all at buckets.
    await q.query('DELETE FROM agentcache_assets WHERE account_id = $1', [accountId]);
    await q.query('DELETE FROM multipart_uploads WHERE account_id = $1', [accountId]);
    await q.query('DELETE FROM blobs WHERE account_id = $1', [accountId]);
    await q.query('DELETE FROM staged_writes WHERE account_id = $1', [accountId]);
    await q.query('DELETE FROM buckets WHERE account_id = $1', [accountId]);
    await q.query('DELETE FROM storage_reservations WHERE account_id = $1', [accountId]);
    await q.query('DELETE FROM bandwidth_usage WHERE account_id = $1', [accountId]);
    await q.query(
      `UPDATE agentcache_accounts
          SET purge_state = 'done', storage_used_bytes = 0, storage_reserved_bytes = 0,
              agentcache_email = '', webhook_url = NULL, updated_at = now()
        WHERE id = $1`,
      [accountId],
    );
  });
  deps.logger.info({ accountId, objects, ms: Date.now() - started }, 'account purged');
  return 'done';
}

/** Accounts whose purge has not finished, for a job runner to hand to purgeAccount. */
export async function listUnfinishedPurges(deps: Pick<AppDeps, 'db'>): Promise<string[]> {
  const { rows } = await deps.db.query<{ id: string }>(
    `SELECT id FROM agentcache_accounts WHERE status = 'deleted' AND purge_state IS DISTINCT FROM 'done' ORDER BY deleted_at`,
  );
  return rows.map((row) => row.id);
}

export interface PurgeRunner {
  /** Starts a purge in the background unless one for the account is already running here. */
  start(accountId: string): void;
  /** Interrupts running purges between batches (they resume on the next run) and waits for them. */
  stop(): Promise<void>;
}

export function createPurgeRunner(deps: PurgeDeps): PurgeRunner {
  const running = new Map<string, Promise<void>>();
  const controller = new AbortController();
  return {
    start(accountId) {
      if (running.has(accountId) || controller.signal.aborted) return;
      const purge = purgeAccount(deps, accountId, { signal: controller.signal })
        .then(
          () => undefined,
          (error: unknown) => {
            if (controller.signal.aborted) deps.logger.warn({ accountId }, 'account purge interrupted by shutdown; it resumes on the next run');
            else deps.logger.error({ err: error, accountId }, 'account purge failed; it resumes on the next delete or job run');
          },
        )
        .finally(() => running.delete(accountId));
      running.set(accountId, purge);
    },
    async stop() {
      controller.abort();
      await Promise.allSettled(running.values());
    },
  };
}
