import type { Db, Queryable } from '../db/index.js';
import { applyStorageDelta, settleReservation, type Reservation } from '../quota/storage.js';
import { addBlobReference, linkOrRegisterBlob, registerUnhashedBlob, releaseBlob } from './blobs.js';

/** The headers S3 stores with an object and returns on GET/HEAD. */
export interface ObjectHeaders {
  contentType: string | null;
  contentEncoding: string | null;
  contentDisposition: string | null;
  contentLanguage: string | null;
  cacheControl: string | null;
  expires: string | null;
  /** x-amz-meta-* without the prefix, names lowercased. */
  userMetadata: Record<string, string>;
}

export interface StoredObject extends ObjectHeaders {
  id: string;
  bucketId: string;
  key: string;
  blobId: string;
  backendKey: string;
  size: number;
  /**
   * SHA-256 hex of the content; null for a completed multipart object until the hashing pass has read it
   * back (jobs/hash-pending.ts).
   */
  sha256: string | null;
  /** MD5 hex of the whole content (the blob's): the ETag of a single-part object, and of its copies. Null as sha256 is. */
  md5: string | null;
  etag: string;
  checksums: Record<string, string>;
  partsCount: number | null;
  lastModified: Date;
  cacheKey: string | null;
  expiresAt: Date | null;
}

/** The columns ObjectHeaders are kept in, on objects and on multipart uploads alike. */
export interface ObjectHeaderColumns {
  content_type: string | null;
  content_encoding: string | null;
  content_disposition: string | null;
  content_language: string | null;
  cache_control: string | null;
  expires_header: string | null;
  user_metadata: Record<string, string>;
}

export function objectHeadersFrom(row: ObjectHeaderColumns): ObjectHeaders {
  return {
    contentType: row.content_type,
    contentEncoding: row.content_encoding,
    contentDisposition: row.content_disposition,
    contentLanguage: row.content_language,
    cacheControl: row.cache_control,
    expires: row.expires_header,
    userMetadata: row.user_metadata,
  };
}

interface ObjectRow extends ObjectHeaderColumns {
  id: string;
  bucket_id: string;
  object_key: string;
  blob_id: string;
  backend_key: string;
  size_bytes: number;
  content_hash: string | null;
  md5: string | null;
  etag: string;
  checksums: Record<string, string>;
  parts_count: number | null;
  last_modified: Date;
  cache_key: string | null;
  expires_at: Date | null;
}

export const OBJECT_COLUMNS = `o.id, o.bucket_id, o.object_key, o.blob_id, b.backend_key, o.size_bytes, o.content_hash, b.md5, o.etag,
  o.content_type, o.content_encoding, o.content_disposition, o.content_language, o.cache_control, o.expires_header,
  o.user_metadata, o.checksums, o.parts_count, o.last_modified, o.cache_key, o.expires_at`;

/** An object whose TTL has passed is gone for every surface at once, before the collector deletes it. */
export const VISIBLE = '(o.expires_at IS NULL OR o.expires_at > now())';

export function toStoredObject(row: ObjectRow): StoredObject {
  return {
    id: row.id,
    bucketId: row.bucket_id,
    key: row.object_key,
    blobId: row.blob_id,
    backendKey: row.backend_key,
    size: row.size_bytes,
    sha256: row.content_hash,
    md5: row.md5,
    etag: row.etag,
    ...objectHeadersFrom(row),
    checksums: row.checksums,
    partsCount: row.parts_count,
    lastModified: new Date(row.last_modified),
    cacheKey: row.cache_key,
    expiresAt: row.expires_at ? new Date(row.expires_at) : null,
  };
}

export async function getObject(q: Queryable, bucketId: string, key: string): Promise<StoredObject | null> {
  const { rows } = await q.query<ObjectRow>(
    `SELECT ${OBJECT_COLUMNS} FROM agentcache_assets o JOIN blobs b ON b.id = o.blob_id
      WHERE o.bucket_id = $1 AND o.object_key = $2 AND ${VISIBLE}`,
    [bucketId, key],
  );
  return rows[0] ? toStoredObject(rows[0]) : null;
}

/**
 * getObject by the bucket's name, scoped by the account, in one statement: a read that finds its object
 * needs no separate bucket lookup. Null when either is missing; the caller tells which apart.
 */
export async function getObjectInNamedBucket(q: Queryable, accountId: string, bucketName: string, key: string): Promise<StoredObject | null> {
  const { rows } = await q.query<ObjectRow>(
    `SELECT ${OBJECT_COLUMNS} FROM buckets k JOIN agentcache_assets o ON o.bucket_id = k.id JOIN blobs b ON b.id = o.blob_id
      WHERE k.account_id = $1 AND k.name = $2 AND o.object_key = $3 AND ${VISIBLE}`,
    [accountId, bucketName, key],
  );
  return rows[0] ? toStoredObject(rows[0]) : null;
}

export interface ObjectWrite extends ObjectHeaders {
  accountId: string;
  bucketId: string;
  key: string;
  size: number;
  /** Null only with an 'unhashed' blob source. */
  sha256: string | null;
  md5: string | null;
  etag: string;
  checksums: Record<string, string>;
  partsCount: number | null;
  /** The UploadId that completed into this object, so a retried CompleteMultipartUpload can be recognised. */
  multipartUploadId?: string | null;
  /** Each part's size in order, for GetObject ?partNumber=N. */
  partSizes?: number[] | null;
  cacheKey?: string | null;
  pipelineId?: string | null;
  expiresAt?: Date | null;
  uploadedVia?: 's3' | 'api';
}

export interface CommitResult {
  object: { id: string; etag: string; lastModified: Date };
  /** True when the bytes were already stored by this account: no new blob was kept. */
  deduplicated: boolean;
  /** Backend objects nobody references after this commit; delete them once it has committed. */
  unreferenced: string[];
}

type BlobSource =
  /** A staged backend object holding exactly these bytes. */
  | { kind: 'staged'; backendKey: string }
  /** Bytes verified equal to a blob the account already has (the write was skipped, or a copy). */
  | { kind: 'existing' }
  /** A completed multipart object: a new blob whose SHA-256 and MD5 the hashing pass fills in later. */
  | { kind: 'unhashed'; backendKey: string };

export interface CommitOptions {
  /** Bytes of this write already counted as usage (an upload's parts): the delta is reduced by them. */
  countedBytes?: number;
}

function digestsOf(write: ObjectWrite): { sha256: string; md5: string } {
  if (write.sha256 === null || write.md5 === null) throw new Error('a write linked by content needs its SHA-256 and MD5');
  return { sha256: write.sha256, md5: write.md5 };
}

/**
 * Every transaction that changes an account's objects locks the account row first. One lock order
 * (account, then blobs and objects) keeps concurrent writes of one account from deadlocking, and it
 * orders a commit against a suspension or deletion landing while the upload streamed, so a purge
 * never misses an object committed beside it. Returns the account's status.
 */
export async function lockAccount(q: Queryable, accountId: string): Promise<string> {
  const { rows } = await q.query<{ status: string }>('SELECT status FROM agentcache_accounts WHERE id = $1 FOR NO KEY UPDATE', [accountId]);
  return rows[0]?.status ?? 'deleted';
}

/**
 * lockAccount for a commit, and in the same statement KEY SHARE on the bucket row, which orders the commit
 * against a DeleteBucket racing it: one of them sees the other. The account row is locked first (the
 * materialized CTE), the bucket row only once that lock is held, as the lock order requires.
 */
async function lockForCommit(q: Queryable, accountId: string, bucketId: string): Promise<void> {
  const { rows } = await q.query<{ status: string; bucket_locked: boolean | null }>(
    `WITH account AS MATERIALIZED (SELECT status FROM agentcache_accounts WHERE id = $1 FOR NO KEY UPDATE)
     SELECT account.status, (SELECT true FROM buckets WHERE id = $2 FOR KEY SHARE) AS bucket_locked FROM account`,
    [accountId, bucketId],
  );
  const status = rows[0]?.status ?? 'deleted';
  if (status !== 'active') throw Object.assign(new Error(`The account is ${status}.`), { code: 'ACCOUNT_SUSPENDED' });
  if (!rows[0]?.bucket_locked) throw Object.assign(new Error('The specified bucket does not exist'), { code: 'NoSuchBucket' });
}

// Writes the object row, replacing the key's current row when there is one (locked first), and returns
// what it replaced. Commits of one account are serialised by its row lock, so no insert races this one.
const UPSERT_OBJECT = `
  WITH replaced AS MATERIALIZED (
         SELECT id, blob_id, size_bytes FROM agentcache_assets WHERE bucket_id = $2 AND object_key = $3 FOR UPDATE),
       updated AS (
         UPDATE agentcache_assets o SET blob_id = $4, filename = $5, size_bytes = $6, content_hash = $7, etag = $8,
             content_type = $9, content_encoding = $10, content_disposition = $11, content_language = $12, cache_control = $13,
             expires_header = $14, user_metadata = $15, checksums = $16, parts_count = $17, cache_key = $18,
             agentcache_pipeline_id = $19, expires_at = $20, uploaded_via = $21, multipart_upload_id = $22, part_sizes = $23,
             hit_count = 0, last_accessed = NULL, created_at = now(), last_modified = now()
          -- By the primary key alone: a plan may not trade it for a scan of the account's or bucket's rows.
          WHERE o.id = (SELECT id FROM replaced)
          RETURNING o.id, o.last_modified),
       inserted AS (
         INSERT INTO agentcache_assets (account_id, bucket_id, object_key, blob_id, filename, size_bytes, content_hash, etag,
             content_type, content_encoding, content_disposition, content_language, cache_control, expires_header,
             user_metadata, checksums, parts_count, cache_key, agentcache_pipeline_id, expires_at, uploaded_via,
             multipart_upload_id, part_sizes)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23
          WHERE NOT EXISTS (SELECT 1 FROM replaced)
         RETURNING id, last_modified)
  SELECT updated.id, updated.last_modified, replaced.blob_id AS replaced_blob_id, replaced.size_bytes AS replaced_size
    FROM updated CROSS JOIN replaced
  UNION ALL
  SELECT id, last_modified, NULL, NULL FROM inserted`;

/**
 * The one commit transaction of every write: link or register the blob, upsert the object row, release
 * the replaced version's blob, and turn the reservation into usage by the real delta.
 */
export async function commitObject(db: Db, write: ObjectWrite, source: BlobSource, reservation: Reservation | null): Promise<CommitResult> {
  return db.tx((q) => commitObjectIn(q, write, source, reservation));
}

/** commitObject inside a transaction the caller holds, to commit more alongside (CompleteMultipartUpload). */
export async function commitObjectIn(q: Queryable, write: ObjectWrite, source: BlobSource, reservation: Reservation | null, options: CommitOptions = {}): Promise<CommitResult> {
  await lockForCommit(q, write.accountId, write.bucketId);
  const unreferenced: string[] = [];
  let blobId: string;
  let deduplicated: boolean;
  if (source.kind === 'staged') {
    const blob = await linkOrRegisterBlob(q, { accountId: write.accountId, ...digestsOf(write), size: write.size, backendKey: source.backendKey });
    blobId = blob.id;
    deduplicated = blob.duplicate;
    if (blob.duplicate) unreferenced.push(source.backendKey);
  } else if (source.kind === 'unhashed') {
    blobId = await registerUnhashedBlob(q, write.accountId, write.size, source.backendKey);
    deduplicated = false;
  } else {
    const blob = await addBlobReference(q, write.accountId, digestsOf(write).sha256);
    if (!blob) throw Object.assign(new Error('the stored content vanished before the write committed'), { code: 'BLOB_GONE' });
    blobId = blob.id;
    deduplicated = true;
  }

  const values = [
    write.accountId, write.bucketId, write.key, blobId, write.key.split('/').pop() || write.key, write.size, write.sha256, write.etag,
    write.contentType, write.contentEncoding, write.contentDisposition, write.contentLanguage, write.cacheControl, write.expires,
    JSON.stringify(write.userMetadata), JSON.stringify(write.checksums), write.partsCount,
    write.cacheKey ?? null, write.pipelineId ?? null, write.expiresAt ?? null, write.uploadedVia ?? 's3',
    write.multipartUploadId ?? null, write.partSizes ?? null,
  ];
  const upserted = await q.query<{ id: string; last_modified: Date; replaced_blob_id: string | null; replaced_size: number | null }>(UPSERT_OBJECT, values);
  const row = upserted.rows[0];
  if (!row) throw new Error('the object row was neither inserted nor updated');
  const old = row.replaced_blob_id === null ? undefined : { blob_id: row.replaced_blob_id, size_bytes: Number(row.replaced_size) };
  if (old) {
    const gone = await releaseBlob(q, old.blob_id);
    if (gone) unreferenced.push(gone);
  }

  // A reserved upload already passed the quota check for its full size; a copy did not; a completed
  // multipart upload's parts were counted as they arrived, so it can only shrink usage.
  const delta = write.size - (old?.size_bytes ?? 0) - (options.countedBytes ?? 0);
  if (reservation) await settleReservation(q, reservation, delta);
  else await applyStorageDelta(q, write.accountId, delta, { checkQuota: options.countedBytes === undefined });
  return { object: { id: row.id, etag: write.etag, lastModified: new Date(row.last_modified) }, deduplicated, unreferenced };
}

/**
 * What every delete does after removing object rows, in its transaction: each row's blob reference is
 * released and the account's usage drops by the rows' logical sizes. Returns the backend objects no
 * row references any more, for the caller to delete once the transaction has committed.
 */
export async function releaseDeletedRows(q: Queryable, accountId: string, rows: ReadonlyArray<{ blob_id: string; size_bytes: number }>): Promise<string[]> {
  const unreferenced: string[] = [];
  let bytes = 0;
  for (const row of rows) {
    const gone = await releaseBlob(q, row.blob_id);
    if (gone) unreferenced.push(gone);
    bytes += Number(row.size_bytes);
  }
  await applyStorageDelta(q, accountId, -bytes, { checkQuota: false });
  return unreferenced;
}

/** Deletes an object row; returns whether it existed and the backend objects that became unreferenced. */
export async function deleteObject(db: Db, accountId: string, bucketId: string, key: string): Promise<{ deleted: boolean; unreferenced: string[] }> {
  return db.tx(async (q) => {
    await lockAccount(q, accountId);
    const { rows } = await q.query<{ blob_id: string; size_bytes: number }>(
      'DELETE FROM agentcache_assets WHERE account_id = $1 AND bucket_id = $2 AND object_key = $3 RETURNING blob_id, size_bytes',
      [accountId, bucketId, key],
    );
    if (rows.length === 0) return { deleted: false, unreferenced: [] };
    return { deleted: true, unreferenced: await releaseDeletedRows(q, accountId, rows) };
  });
}

/**
 * DeleteObjects' deletes: the keys that exist go in one transaction, with one statement, one usage
 * update, and their blobs released as deleteObject releases them. Keys that do not exist cost nothing.
 */
export async function deleteObjectsByKey(db: Db, accountId: string, bucketId: string, keys: readonly string[]): Promise<{ unreferenced: string[] }> {
  if (keys.length === 0) return { unreferenced: [] };
  return db.tx(async (q) => {
    await lockAccount(q, accountId);
    const { rows } = await q.query<{ blob_id: string; size_bytes: number }>(
      'DELETE FROM agentcache_assets WHERE account_id = $1 AND bucket_id = $2 AND object_key = ANY($3::text[]) RETURNING blob_id, size_bytes',
      [accountId, bucketId, keys],
    );
    const unreferenced = await releaseDeletedRows(q, accountId, rows);
    return { unreferenced };
  });
}

/**
 * Deletes up to `limit` of the bucket's objects whose TTL has passed (invisible already, see VISIBLE),
 * releasing their blobs and usage as deleteObject does. A row rewritten by a new PUT is no longer
 * expired and is left alone. Returns how many went and the backend objects now unreferenced.
 */
export async function deleteExpiredObjects(db: Db, accountId: string, bucketId: string, limit: number): Promise<{ count: number; unreferenced: string[] }> {
  return db.tx(async (q) => {
    await lockAccount(q, accountId);
    const { rows } = await q.query<{ blob_id: string; size_bytes: number }>(
      `DELETE FROM agentcache_assets WHERE id IN (
         SELECT o.id FROM agentcache_assets o
          WHERE o.account_id = $1 AND o.bucket_id = $2 AND NOT ${VISIBLE}
          LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING blob_id, size_bytes`,
      [accountId, bucketId, limit],
    );
    const unreferenced = await releaseDeletedRows(q, accountId, rows);
    return { count: rows.length, unreferenced };
  });
}
