import { randomBytes } from 'node:crypto';
import type { ChecksumAlgorithm } from '../auth/checksums.js';
import type { Backend } from '../backend/backend.js';
import type { Db, Queryable } from '../db/index.js';
import { applyStorageDelta } from '../quota/storage.js';
import { deleteUnreferenced, type WarnLogger } from './blobs.js';
import { commitObjectIn, objectHeadersFrom, type CommitResult, type ObjectHeaderColumns, type ObjectHeaders, type ObjectWrite } from './objects.js';
import { listUploadParts, type StoredPart } from './multipart-parts.js';

/**
 * Multipart uploads in Postgres (migrations 002 and 004). An upload's life:
 *
 *   open -- CompleteMultipartUpload --> completing -- object committed --> row deleted
 *     |                                    | (backend refused: back to open; process died: the collector)
 *     +-- AbortMultipartUpload / collector --> aborted -- backend parts gone, no writer left --> row deleted
 *
 * Parts are storage while the upload is open (their bytes count as the account's usage, as Ceph's
 * maintainers concluded: unfinished parts are stored and billed); completion turns them into the object's
 * usage and abort releases them. The object's backend key was chosen at creation and sits in
 * staged_writes until the completed object's blob row takes it over.
 */

export type UploadState = 'open' | 'completing' | 'completed' | 'aborted';
export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT';

export interface MultipartUpload {
  /** Our row id, which parts and writers reference. */
  id: string;
  /** The UploadId the client holds: opaque, random, never the backend's. */
  uploadId: string;
  accountId: string;
  bucketId: string;
  key: string;
  backendKey: string;
  backendUploadId: string;
  headers: ObjectHeaders;
  checksumAlgorithm: ChecksumAlgorithm | null;
  checksumType: ChecksumType | null;
  state: UploadState;
  initiated: Date;
}

interface UploadRow extends ObjectHeaderColumns {
  id: string;
  upload_id: string;
  account_id: string;
  bucket_id: string;
  object_key: string;
  backend_key: string;
  backend_upload_id: string;
  checksum_algorithm: ChecksumAlgorithm | null;
  checksum_type: ChecksumType | null;
  state: UploadState;
  created_at: Date;
}

const UPLOAD_COLUMNS = `id, upload_id, account_id, bucket_id, object_key, backend_key, backend_upload_id, content_type,
  content_encoding, content_disposition, content_language, cache_control, expires_header, user_metadata,
  checksum_algorithm, checksum_type, state, created_at`;

function toUpload(row: UploadRow): MultipartUpload {
  return {
    id: row.id,
    uploadId: row.upload_id,
    accountId: row.account_id,
    bucketId: row.bucket_id,
    key: row.object_key,
    backendKey: row.backend_key,
    backendUploadId: row.backend_upload_id,
    headers: objectHeadersFrom(row),
    checksumAlgorithm: row.checksum_algorithm,
    checksumType: row.checksum_type,
    state: row.state,
    initiated: new Date(row.created_at),
  };
}

/**
 * A new UploadId: 12 hex digits of milliseconds, then 24 random bytes. Ordered by time, so sorting one
 * key's uploads by UploadId lists them in the order they were initiated, as ListMultipartUploads does,
 * while `upload-id-marker` keeps its documented meaning ("lexicographically greater").
 */
export function newUploadId(now = Date.now()): string {
  return `${now.toString(16).padStart(12, '0')}${randomBytes(24).toString('base64url')}`;
}

export type NewUpload = Omit<MultipartUpload, 'id' | 'state' | 'initiated'>;

export async function countOpenUploads(q: Queryable, accountId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM multipart_uploads WHERE account_id = $1 AND state = 'open'`, [accountId]);
  return rows[0]!.n;
}

/**
 * Records a new open upload unless the account already has `maxOpen` of them (then null). The account row
 * is locked for the count and the insert, so racing creates cannot overshoot the cap.
 */
export async function insertUpload(db: Db, upload: NewUpload, maxOpen: number): Promise<MultipartUpload | null> {
  return db.tx(async (q) => {
    await q.query('SELECT 1 FROM agentcache_accounts WHERE id = $1 FOR UPDATE', [upload.accountId]);
    if ((await countOpenUploads(q, upload.accountId)) >= maxOpen) return null;
    const h = upload.headers;
    const { rows } = await q.query<UploadRow>(
      `INSERT INTO multipart_uploads (upload_id, account_id, bucket_id, object_key, backend_key, backend_upload_id,
          content_type, content_encoding, content_disposition, content_language, cache_control, expires_header,
          user_metadata, checksum_algorithm, checksum_type)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
       RETURNING ${UPLOAD_COLUMNS}`,
      [
        upload.uploadId, upload.accountId, upload.bucketId, upload.key, upload.backendKey, upload.backendUploadId,
        h.contentType, h.contentEncoding, h.contentDisposition, h.contentLanguage, h.cacheControl, h.expires,
        JSON.stringify(h.userMetadata), upload.checksumAlgorithm, upload.checksumType,
      ],
    );
    return toUpload(rows[0]!);
  });
}

/** The upload with this UploadId, only if it belongs to this account, bucket and key; any state. */
export async function findUpload(q: Queryable, where: { accountId: string; bucketId: string; key: string; uploadId: string }): Promise<MultipartUpload | null> {
  const { rows } = await q.query<UploadRow>(
    `SELECT ${UPLOAD_COLUMNS} FROM multipart_uploads WHERE upload_id = $1 AND account_id = $2 AND bucket_id = $3 AND object_key = $4`,
    [where.uploadId, where.accountId, where.bucketId, where.key],
  );
  return rows[0] ? toUpload(rows[0]) : null;
}

async function lockUpload(q: Queryable, id: string): Promise<MultipartUpload | null> {
  const { rows } = await q.query<UploadRow>(`SELECT ${UPLOAD_COLUMNS} FROM multipart_uploads WHERE id = $1 FOR UPDATE`, [id]);
  return rows[0] ? toUpload(rows[0]) : null;
}

export interface UploadListingRequest {
  bucketId: string;
  prefix: string;
  /** Uploads of keys after this one; with uploadIdMarker (not ''), also this key's uploads after that UploadId. */
  keyMarker: string;
  uploadIdMarker: string;
  limit: number;
}

/** Open uploads of a bucket in (key, UploadId) order, after the markers, under the prefix. */
export async function listOpenUploads(q: Queryable, request: UploadListingRequest): Promise<MultipartUpload[]> {
  const { rows } = await q.query<UploadRow>(
    `SELECT ${UPLOAD_COLUMNS} FROM multipart_uploads
      WHERE bucket_id = $1 AND state = 'open' AND starts_with(object_key, $2)
        AND (object_key > $3 OR (object_key = $3 AND $4 <> '' AND upload_id COLLATE "C" > $4))
      ORDER BY object_key, upload_id COLLATE "C"
      LIMIT $5`,
    [request.bucketId, request.prefix, request.keyMarker, request.uploadIdMarker, request.limit],
  );
  return rows.map(toUpload);
}

// ---------------------------------------------------------------------------------------- completion

export type CompletionStart<T> = { outcome: 'started'; value: T; parts: StoredPart[] } | { outcome: 'not-open'; state: UploadState | null } | { outcome: 'parts-in-flight' };

/**
 * Moves an open upload to 'completing' after `check` has approved its parts, read under the upload's row
 * lock so no part commit can slip between the check and the state change (a part commit needs 'open').
 * A part still streaming to a listed part number refuses the completion: its bytes could land on the
 * backend after the check and leave the object other than the parts it was checked against.
 */
export async function beginCompletion<T>(db: Db, id: string, listed: readonly number[], check: (parts: StoredPart[]) => T): Promise<CompletionStart<T>> {
  return db.tx(async (q) => {
    const upload = await lockUpload(q, id);
    if (!upload || upload.state !== 'open') return { outcome: 'not-open', state: upload?.state ?? null };
    const { rowCount } = await q.query(
      'SELECT 1 FROM multipart_part_writes WHERE upload_id = $1 AND part_number = ANY($2::int[]) AND expires_at > now()',
      [id, listed],
    );
    if (rowCount > 0) return { outcome: 'parts-in-flight' };
    const parts = await listUploadParts(q, id, { after: 0, limit: null });
    const value = check(parts);
    await q.query(`UPDATE multipart_uploads SET state = 'completing', state_changed_at = now() WHERE id = $1`, [id]);
    return { outcome: 'started', value, parts };
  });
}

/** A completion the backend refused: the upload is open again, parts untouched. */
export async function reopenUpload(q: Queryable, id: string): Promise<void> {
  await q.query(`UPDATE multipart_uploads SET state = 'open', state_changed_at = now() WHERE id = $1 AND state = 'completing'`, [id]);
}

/**
 * The completed object's commit: a new blob (content hash unknown until read back) under the upload's
 * backend key, the object row, and the upload's end. Every part, listed or not, was counted as usage
 * when stored; the object's commit takes all of them off again and adds the object's size.
 */
export async function commitCompletedUpload(db: Db, upload: MultipartUpload, write: ObjectWrite): Promise<CommitResult> {
  return db.tx(async (q) => {
    const locked = await lockUpload(q, upload.id);
    if (locked?.state !== 'completing') throw new Error(`multipart upload ${upload.uploadId} is ${locked?.state ?? 'gone'}, not completing`);
    const { rows } = await q.query<{ bytes: number }>('SELECT COALESCE(SUM(size_bytes), 0)::bigint AS bytes FROM multipart_parts WHERE upload_id = $1', [upload.id]);
    const result = await commitObjectIn(q, write, { kind: 'unhashed', backendKey: upload.backendKey }, null, { countedBytes: Number(rows[0]!.bytes) });
    await q.query('DELETE FROM multipart_uploads WHERE id = $1', [upload.id]);
    return result;
  });
}

/** The object a completed upload made, while it is still that upload's: for a retried Complete. */
export async function findCompletedObject(
  q: Queryable,
  where: { bucketId: string; key: string; uploadId: string },
): Promise<{ etag: string; checksums: Record<string, string> } | null> {
  const { rows } = await q.query<{ etag: string; checksums: Record<string, string> }>(
    `SELECT etag, checksums FROM agentcache_assets WHERE bucket_id = $1 AND object_key = $2 AND multipart_upload_id = $3`,
    [where.bucketId, where.key, where.uploadId],
  );
  return rows[0] ?? null;
}

// ----------------------------------------------------------------------------------------------- abort

export type AbortOutcome = 'aborted' | 'already-aborted' | 'completing' | 'gone';

/**
 * Ends an open upload (AbortMultipartUpload, or the collector with `expectedState` 'completing' for a
 * completion whose process died): its parts' rows go and their bytes leave the account's usage in the
 * same transaction. The backend's parts are removed afterwards by finishAbortedUpload.
 */
export async function markAborted(db: Db, id: string, expectedState: 'open' | 'completing' = 'open'): Promise<AbortOutcome> {
  return db.tx(async (q) => {
    const upload = await lockUpload(q, id);
    if (!upload) return 'gone';
    if (upload.state === 'aborted') return 'already-aborted';
    if (upload.state !== expectedState) return upload.state === 'completing' ? 'completing' : 'gone';
    const { rows } = await q.query<{ bytes: number }>(
      `WITH gone AS (DELETE FROM multipart_parts WHERE upload_id = $1 RETURNING size_bytes)
       SELECT COALESCE(SUM(size_bytes), 0)::bigint AS bytes FROM gone`,
      [id],
    );
    await applyStorageDelta(q, upload.accountId, -Number(rows[0]!.bytes), { checkQuota: false });
    await q.query(`UPDATE multipart_uploads SET state = 'aborted', state_changed_at = now() WHERE id = $1`, [id]);
    return 'aborted';
  });
}

/**
 * Forgets an aborted upload once no part writer is left (a writer still streaming may yet put a part on
 * the backend, so the backend's upload is aborted again after it). Returns whether the row went.
 */
export async function deleteAbortedUpload(q: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await q.query(
    `DELETE FROM multipart_uploads u WHERE id = $1 AND state = 'aborted'
        AND NOT EXISTS (SELECT 1 FROM multipart_part_writes w WHERE w.upload_id = u.id AND w.expires_at > now())`,
    [id],
  );
  return rowCount > 0;
}

/**
 * The backend side of an abort: removes the backend's parts, then forgets the upload and its object key
 * (nothing is stored there, unless a completion died after the backend assembled the object). Does
 * nothing while a writer still streams a part: that writer calls this again when it stops. Returns
 * whether the upload is gone. Aborting the backend's upload twice is harmless, and S3 itself advises it
 * ("it might be necessary to abort a given multipart upload multiple times", AbortMultipartUpload).
 */
export async function finishAbortedUpload(deps: { db: Queryable; backend: Backend; logger: WarnLogger }, id: string): Promise<boolean> {
  const upload = await findUploadById(deps.db, id);
  if (upload?.state !== 'aborted') return false;
  await deps.backend.abortMultipart({ key: upload.backendKey, uploadId: upload.backendUploadId });
  if (!(await deleteAbortedUpload(deps.db, id))) return false;
  await deleteUnreferenced(deps, [upload.backendKey]);
  return true;
}

export async function findUploadById(q: Queryable, id: string): Promise<MultipartUpload | null> {
  const { rows } = await q.query<UploadRow>(`SELECT ${UPLOAD_COLUMNS} FROM multipart_uploads WHERE id = $1`, [id]);
  return rows[0] ? toUpload(rows[0]) : null;
}

/**
 * Uploads the collector ends: open ones older than `maxAgeHours` with no part streaming, completions
 * stuck longer than `stuckCompletingMinutes` (their process died), and aborted ones still waiting for
 * their backend parts to go.
 */
export async function listUploadsToCollect(
  q: Queryable,
  options: { maxAgeHours: number; stuckCompletingMinutes: number; limit: number },
): Promise<MultipartUpload[]> {
  const { rows } = await q.query<UploadRow>(
    `SELECT ${UPLOAD_COLUMNS} FROM multipart_uploads u
      WHERE (state = 'open' AND created_at < now() - make_interval(hours => $1)
               AND NOT EXISTS (SELECT 1 FROM multipart_part_writes w WHERE w.upload_id = u.id AND w.expires_at > now()))
         OR (state = 'completing' AND state_changed_at < now() - make_interval(mins => $2))
         OR state = 'aborted'
      ORDER BY state_changed_at
      LIMIT $3`,
    [options.maxAgeHours, options.stuckCompletingMinutes, options.limit],
  );
  return rows.map(toUpload);
}

/**
 * Bytes of part `partNumber` of a completed multipart object, from the part sizes kept with it; null when
 * they were not kept or the number is past the last part.
 */
export async function objectPartRange(q: Queryable, objectId: string, partNumber: number): Promise<{ start: number; end: number } | null> {
  const { rows } = await q.query<{ start: number; size: number | null }>(
    `SELECT COALESCE((SELECT SUM(s) FROM unnest(part_sizes[1:$2 - 1]) AS s), 0)::bigint AS start, part_sizes[$2] AS size
       FROM agentcache_assets WHERE id = $1`,
    [objectId, partNumber],
  );
  const row = rows[0];
  if (!row || row.size === null || row.size === undefined || Number(row.size) === 0) return null;
  const start = Number(row.start);
  return { start, end: start + Number(row.size) - 1 };
}
