import { createHash } from 'node:crypto';
import type { AppDeps } from '../deps.js';
import { deleteUnreferenced, stageReleasedKey } from '../store/blobs.js';

/**
 * Brings completed multipart objects into the account's content-addressed store. Their parts arrive in
 * any order and on any gateway process, so the object's SHA-256 is not known at completion: its blob is
 * committed with sha256 NULL (migration 004) and this pass reads it back from the backend, then, in one
 * transaction, either records the hash, or, when the account already stores those bytes, moves every
 * object of the new blob to the existing one and queues the new backend object for deletion. So the
 * same bytes uploaded again, by PUT or by multipart, in either order, end up stored once.
 *
 * Idempotent and restart-safe: a blob is claimed for a while (hash_claimed_until) so N processes hash it
 * once, a pass that dies leaves a claim that lapses, and a blob already hashed or released is skipped.
 * Run by the jobs runner, and triggered after each completion (scheduleBlobHashing).
 */

type HashDeps = Pick<AppDeps, 'db' | 'backend' | 'logger'>;

export interface HashPendingOptions {
  /** Blobs read at once; each streams with flat memory. Default 2. */
  concurrency?: number;
  /** Stop after this many blobs (a job's time box); default all that are due. */
  limit?: number;
  signal?: AbortSignal;
}

export interface HashPendingResult {
  /** Blobs whose hash was recorded. */
  hashed: number;
  /** Blobs folded into an existing blob with the same content, their backend copy deleted. */
  merged: number;
  failed: number;
}

// A claim lasts long enough to read the blob at 1 MiB/s, and at least 15 minutes.
const CLAIM_BASE_SECONDS = 15 * 60;
const CLAIM_SECONDS_PER_MIB = 1;

interface UnhashedBlob {
  id: string;
  accountId: string;
  backendKey: string;
  size: number;
}

async function claimUnhashedBlob(deps: HashDeps): Promise<UnhashedBlob | null> {
  const { rows } = await deps.db.query<{ id: string; account_id: string; backend_key: string; size_bytes: number }>(
    `UPDATE blobs SET hash_claimed_until = now() + make_interval(secs => $1 + size_bytes / 1048576.0 * $2)
      WHERE id = (SELECT id FROM blobs WHERE sha256 IS NULL AND (hash_claimed_until IS NULL OR hash_claimed_until < now())
                   ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING id, account_id, backend_key, size_bytes`,
    [CLAIM_BASE_SECONDS, CLAIM_SECONDS_PER_MIB],
  );
  const row = rows[0];
  return row ? { id: row.id, accountId: row.account_id, backendKey: row.backend_key, size: Number(row.size_bytes) } : null;
}

async function digestBackendObject(deps: HashDeps, blob: UnhashedBlob, signal?: AbortSignal): Promise<{ sha256: string; md5: string }> {
  const { body } = await deps.backend.get({ key: blob.backendKey, ...(signal && { signal }) });
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    sha256.update(chunk);
    md5.update(chunk);
    bytes += chunk.length;
  }
  if (bytes !== blob.size) throw new Error(`backend object ${blob.backendKey} holds ${bytes} bytes where ${blob.size} were committed`);
  return { sha256: sha256.digest('hex'), md5: md5.digest('hex') };
}

// unique_violation: another pass or a PUT gave the same content its hash first; deadlock_detected.
const RETRYABLE_SQLSTATES = new Set(['23505', '40P01']);

/**
 * Records the blob's digests, or merges it into the account's blob with the same SHA-256. Locks in the
 * order every write takes them (the content's blob, then object rows, then the replaced blob), so it
 * cannot deadlock with a PUT that overwrites one of these objects with the same bytes.
 */
async function settleBlob(deps: HashDeps, blob: UnhashedBlob, digests: { sha256: string; md5: string }): Promise<'hashed' | 'merged' | 'gone'> {
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await deps.db.tx(async (q) => {
        const twins = await q.query<{ id: string }>('SELECT id FROM blobs WHERE account_id = $1 AND sha256 = $2 FOR UPDATE', [blob.accountId, digests.sha256]);
        await q.query('SELECT id FROM agentcache_assets WHERE blob_id = $1 FOR UPDATE', [blob.id]);
        const pending = await q.query('SELECT 1 FROM blobs WHERE id = $1 AND sha256 IS NULL FOR UPDATE', [blob.id]);
        if (pending.rowCount === 0) return 'gone' as const;
        const twin = twins.rows[0];
        if (!twin) {
          await q.query('UPDATE blobs SET sha256 = $2, md5 = $3, hash_claimed_until = NULL WHERE id = $1', [blob.id, digests.sha256, digests.md5]);
          await q.query('UPDATE agentcache_assets SET content_hash = $2 WHERE blob_id = $1', [blob.id, digests.sha256]);
          return 'hashed' as const;
        }
        const moved = await q.query('UPDATE agentcache_assets SET blob_id = $2, content_hash = $3 WHERE blob_id = $1', [blob.id, twin.id, digests.sha256]);
        await q.query('UPDATE blobs SET refcount = refcount + $2 WHERE id = $1', [twin.id, moved.rowCount]);
        await q.query('DELETE FROM blobs WHERE id = $1', [blob.id]);
        await stageReleasedKey(q, blob.backendKey, blob.accountId);
        return 'merged' as const;
      });
      if (outcome === 'merged') await deleteUnreferenced({ db: deps.db, backend: deps.backend, logger: deps.logger }, [blob.backendKey]);
      return outcome;
    } catch (error) {
      if (attempt < 3 && RETRYABLE_SQLSTATES.has(String((error as { code?: unknown }).code))) continue;
      throw error;
    }
  }
}

/** Hashes every blob that is due, `concurrency` at a time. Exported for the jobs runner. */
export async function hashPendingBlobs(deps: HashDeps, options: HashPendingOptions = {}): Promise<HashPendingResult> {
  const result: HashPendingResult = { hashed: 0, merged: 0, failed: 0 };
  let started = 0;
  const worker = async () => {
    while (options.limit === undefined || started < options.limit) {
      options.signal?.throwIfAborted();
      const blob = await claimUnhashedBlob(deps);
      if (!blob) return;
      started++;
      try {
        const outcome = await settleBlob(deps, blob, await digestBackendObject(deps, blob, options.signal));
        if (outcome !== 'gone') result[outcome]++;
      } catch (error) {
        // The claim stays until it lapses, so a failing blob is not retried in a tight loop.
        result.failed++;
        deps.logger.warn({ err: error, blobId: blob.id, backendKey: blob.backendKey }, 'could not hash a completed multipart object; it is retried once its claim lapses');
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 2 }, worker));
  return result;
}

interface HashingRun {
  again: boolean;
  done: Promise<void>;
}

// One background pass per database (so per app) at a time; a completion during a pass asks for another.
const runs = new WeakMap<object, HashingRun>();

/** Starts a background pass right after a completion, without waiting for it; failures are logged. */
export function scheduleBlobHashing(deps: HashDeps): void {
  const current = runs.get(deps.db);
  if (current) {
    current.again = true;
    return;
  }
  const run: HashingRun = { again: true, done: Promise.resolve() };
  runs.set(deps.db, run);
  run.done = (async () => {
    try {
      while (run.again) {
        run.again = false;
        await hashPendingBlobs(deps);
      }
    } catch (error) {
      deps.logger.warn({ err: error }, 'background hashing of completed multipart objects failed; the jobs runner retries');
    } finally {
      runs.delete(deps.db);
    }
  })();
}

/** Resolves once the background pass started by scheduleBlobHashing (if any) has ended: for tests and shutdown. */
export function blobHashingSettled(deps: Pick<AppDeps, 'db'>): Promise<void> {
  return runs.get(deps.db)?.done ?? Promise.resolve();
}
