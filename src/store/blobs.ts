import type { Backend } from '../backend/backend.js';
import type { Queryable } from '../db/index.js';

/**
 * Content-addressed storage per account. A blob is one stored content; objects point at blobs.
 * Backend keys are `users/<id>/blobs/<uuid>`: chosen here, never derived from a tenant's key.
 * Every backend object without a committed blob row is listed in staged_writes until it is committed or
 * deleted, so a crash at any point leaves a row that tells the collector what to remove.
 */

/** The one logging call this module makes; satisfied by pino and Fastify's request loggers alike. */
export interface WarnLogger {
  warn(details: object, message: string): void;
}

export function newBlobKey(agentcacheUserId: string): string {
  return `users/${agentcacheUserId}/blobs/${crypto.randomUUID()}`;
}

/** Records a backend object about to be written, before its first byte goes out. */
export async function stageWrite(q: Queryable, accountId: string, backendKey: string): Promise<void> {
  await q.query('INSERT INTO staged_writes (backend_key, account_id) VALUES ($1, $2)', [backendKey, accountId]);
}

export interface BlobRef {
  id: string;
  backendKey: string;
}

export interface NewBlob {
  accountId: string;
  sha256: string;
  md5: string;
  size: number;
  backendKey: string;
}

/**
 * Links one more reference to the account's blob with this content, or registers the staged object as a
 * new blob. `duplicate` is true when an existing blob won: the staged object is then surplus and stays
 * in staged_writes for the caller to delete after commit.
 */
export async function linkOrRegisterBlob(q: Queryable, blob: NewBlob): Promise<BlobRef & { duplicate: boolean }> {
  // The staged row goes in the same statement when the staged object became the blob.
  const { rows } = await q.query<{ id: string; backend_key: string }>(
    `WITH linked AS (
       INSERT INTO blobs (account_id, sha256, md5, size_bytes, backend_key, refcount)
       VALUES ($1, $2, $3, $4, $5, 1)
       ON CONFLICT (account_id, sha256) DO UPDATE SET refcount = blobs.refcount + 1
       RETURNING id, backend_key),
          unstaged AS (DELETE FROM staged_writes WHERE backend_key = $5 AND EXISTS (SELECT 1 FROM linked WHERE linked.backend_key = $5))
     SELECT id, backend_key FROM linked`,
    [blob.accountId, blob.sha256, blob.md5, blob.size, blob.backendKey],
  );
  const row = rows[0]!;
  const duplicate = row.backend_key !== blob.backendKey;
  return { id: row.id, backendKey: row.backend_key, duplicate };
}

/**
 * Registers a staged backend object whose content hash is not known yet (a completed multipart upload) as
 * a blob with one reference. It joins the content-addressed store once jobs/hash-pending.ts has read it.
 */
export async function registerUnhashedBlob(q: Queryable, accountId: string, size: number, backendKey: string): Promise<string> {
  const { rows } = await q.query<{ id: string }>(
    'INSERT INTO blobs (account_id, size_bytes, backend_key, refcount) VALUES ($1, $2, $3, 1) RETURNING id',
    [accountId, size, backendKey],
  );
  await q.query('DELETE FROM staged_writes WHERE backend_key = $1', [backendKey]);
  return rows[0]!.id;
}

/** Adds a reference to an existing blob (copy, or a write skipped because the content is stored). */
export async function addBlobReference(q: Queryable, accountId: string, sha256: string): Promise<BlobRef | null> {
  const { rows } = await q.query<{ id: string; backend_key: string }>(
    'UPDATE blobs SET refcount = refcount + 1 WHERE account_id = $1 AND sha256 = $2 RETURNING id, backend_key',
    [accountId, sha256],
  );
  const row = rows[0];
  return row ? { id: row.id, backendKey: row.backend_key } : null;
}

export async function findBlob(q: Queryable, accountId: string, sha256: string): Promise<BlobRef | null> {
  const { rows } = await q.query<{ id: string; backend_key: string }>(
    'SELECT id, backend_key FROM blobs WHERE account_id = $1 AND sha256 = $2',
    [accountId, sha256],
  );
  const row = rows[0];
  return row ? { id: row.id, backendKey: row.backend_key } : null;
}

/**
 * Lists the backend key of a blob row just deleted in this transaction for deletion after commit. Its
 * bytes were committed and no upload writes that key again, so the row is dated as already past the
 * staged-writes age bound: should the process die before deleting it, the collector's next run takes
 * it, rather than waiting out the window that protects uploads still streaming.
 */
export async function stageReleasedKey(q: Queryable, backendKey: string, accountId: string): Promise<void> {
  await q.query(
    `INSERT INTO staged_writes (backend_key, account_id, created_at) VALUES ($1, $2, '-infinity')
     ON CONFLICT (backend_key) DO UPDATE SET created_at = '-infinity'`,
    [backendKey, accountId],
  );
}

/**
 * Drops one reference. The last one deletes the blob row in this same transaction and moves its backend
 * key to staged_writes; returns that key for deletion after commit, else null.
 */
export async function releaseBlob(q: Queryable, blobId: string): Promise<string | null> {
  const { rows } = await q.query<{ backend_key: string; account_id: string; refcount: number }>(
    'UPDATE blobs SET refcount = refcount - 1 WHERE id = $1 RETURNING backend_key, account_id, refcount',
    [blobId],
  );
  const row = rows[0];
  if (!row || row.refcount > 0) return null;
  await q.query('DELETE FROM blobs WHERE id = $1 AND refcount = 0', [blobId]);
  await stageReleasedKey(q, row.backend_key, row.account_id);
  return row.backend_key;
}

/**
 * Deletes backend objects no blob references any more, then forgets them. Failures are logged and left
 * in staged_writes for the collector; the request that caused them has already succeeded.
 */
export async function deleteUnreferenced(deps: { db: Queryable; backend: Backend; logger: WarnLogger }, backendKeys: string[]): Promise<void> {
  for (const key of backendKeys) {
    try {
      await deps.backend.delete({ key });
      await deps.db.query('DELETE FROM staged_writes WHERE backend_key = $1', [key]);
    } catch (error) {
      deps.logger.warn({ err: error, backendKey: key }, 'could not delete an unreferenced backend object; the collector will retry');
    }
  }
}
