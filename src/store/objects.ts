import type { Db, Queryable } from '../db/index.js';
import { applyStorageDelta, releaseReservation, type Reservation } from '../quota/storage.js';
import { addBlobReference, linkOrRegisterBlob, releaseBlob } from './blobs.js';

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
  sha256: string;
  etag: string;
  checksums: Record<string, string>;
  partsCount: number | null;
  lastModified: Date;
  cacheKey: string | null;
  expiresAt: Date | null;
}

interface ObjectRow {
  id: string;
  bucket_id: string;
  object_key: string;
  blob_id: string;
  backend_key: string;
  size_bytes: number;
  content_hash: string;
  etag: string;
  content_type: string | null;
  content_encoding: string | null;
  content_disposition: string | null;
  content_language: string | null;
  cache_control: string | null;
  expires_header: string | null;
  user_metadata: Record<string, string>;
  checksums: Record<string, string>;
  parts_count: number | null;
  last_modified: Date;
  cache_key: string | null;
  expires_at: Date | null;
}

export const OBJECT_COLUMNS = `o.id, o.bucket_id, o.object_key, o.blob_id, b.backend_key, o.size_bytes, o.content_hash, o.etag,
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
    etag: row.etag,
    contentType: row.content_type,
    contentEncoding: row.content_encoding,
    contentDisposition: row.content_disposition,
    contentLanguage: row.content_language,
    cacheControl: row.cache_control,
    expires: row.expires_header,
    userMetadata: row.user_metadata,
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

export interface ObjectWrite extends ObjectHeaders {
  accountId: string;
  bucketId: string;
  key: string;
  size: number;
  sha256: string;
  md5: string;
  etag: string;
  checksums: Record<string, string>;
  partsCount: number | null;
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
  | { kind: 'existing' };

/**
 * The one commit transaction of every write: link or register the blob, upsert the object row, release
 * the replaced version's blob, and turn the reservation into usage by the real delta.
 */
export async function commitObject(db: Db, write: ObjectWrite, source: BlobSource, reservation: Reservation | null): Promise<CommitResult> {
  return db.tx(async (q) => {
    const unreferenced: string[] = [];
    let blobId: string;
    let deduplicated: boolean;
    if (source.kind === 'staged') {
      const blob = await linkOrRegisterBlob(q, { accountId: write.accountId, sha256: write.sha256, md5: write.md5, size: write.size, backendKey: source.backendKey });
      blobId = blob.id;
      deduplicated = blob.duplicate;
      if (blob.duplicate) unreferenced.push(source.backendKey);
    } else {
      const blob = await addBlobReference(q, write.accountId, write.sha256);
      if (!blob) throw Object.assign(new Error('the stored content vanished before the write committed'), { code: 'BLOB_GONE' });
      blobId = blob.id;
      deduplicated = true;
    }

    const previous = await q.query<{ id: string; blob_id: string; size_bytes: number }>(
      'SELECT id, blob_id, size_bytes FROM agentcache_assets WHERE bucket_id = $1 AND object_key = $2 FOR UPDATE',
      [write.bucketId, write.key],
    );
    const old = previous.rows[0];
    const values = [
      write.accountId, write.bucketId, write.key, blobId, write.key.split('/').pop() || write.key, write.size, write.sha256, write.etag,
      write.contentType, write.contentEncoding, write.contentDisposition, write.contentLanguage, write.cacheControl, write.expires,
      JSON.stringify(write.userMetadata), JSON.stringify(write.checksums), write.partsCount,
      write.cacheKey ?? null, write.pipelineId ?? null, write.expiresAt ?? null, write.uploadedVia ?? 's3',
    ];
    let row: { id: string; last_modified: Date };
    if (old) {
      const updated = await q.query<{ id: string; last_modified: Date }>(
        `UPDATE agentcache_assets SET blob_id = $4, filename = $5, size_bytes = $6, content_hash = $7, etag = $8,
            content_type = $9, content_encoding = $10, content_disposition = $11, content_language = $12, cache_control = $13,
            expires_header = $14, user_metadata = $15, checksums = $16, parts_count = $17, cache_key = $18,
            agentcache_pipeline_id = $19, expires_at = $20, uploaded_via = $21, hit_count = 0, last_accessed = NULL,
            created_at = now(), last_modified = now()
          WHERE id = $22 AND account_id = $1 AND bucket_id = $2 AND object_key = $3
          RETURNING id, last_modified`,
        [...values, old.id],
      );
      row = updated.rows[0]!;
      const gone = await releaseBlob(q, old.blob_id);
      if (gone) unreferenced.push(gone);
    } else {
      const inserted = await q.query<{ id: string; last_modified: Date }>(
        `INSERT INTO agentcache_assets (account_id, bucket_id, object_key, blob_id, filename, size_bytes, content_hash, etag,
            content_type, content_encoding, content_disposition, content_language, cache_control, expires_header,
            user_metadata, checksums, parts_count, cache_key, agentcache_pipeline_id, expires_at, uploaded_via)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
         RETURNING id, last_modified`,
        values,
      );
      row = inserted.rows[0]!;
    }

    if (reservation) await releaseReservation(q, reservation);
    // A reserved upload already passed the quota check for its full size; a copy did not.
    await applyStorageDelta(q, write.accountId, write.size - (old?.size_bytes ?? 0), { checkQuota: reservation === null });
    return { object: { id: row.id, etag: write.etag, lastModified: new Date(row.last_modified) }, deduplicated, unreferenced };
  });
}

/** Deletes an object row; returns whether it existed and the backend objects that became unreferenced. */
export async function deleteObject(db: Db, accountId: string, bucketId: string, key: string): Promise<{ deleted: boolean; unreferenced: string[] }> {
  return db.tx(async (q) => {
    const { rows } = await q.query<{ blob_id: string; size_bytes: number }>(
      'DELETE FROM agentcache_assets WHERE account_id = $1 AND bucket_id = $2 AND object_key = $3 RETURNING blob_id, size_bytes',
      [accountId, bucketId, key],
    );
    const row = rows[0];
    if (!row) return { deleted: false, unreferenced: [] };
    const gone = await releaseBlob(q, row.blob_id);
    await applyStorageDelta(q, accountId, -row.size_bytes, { checkQuota: false });
    return { deleted: true, unreferenced: gone ? [gone] : [] };
  });
}
