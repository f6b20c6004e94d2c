import type { ChecksumAlgorithm } from '../auth/checksums.js';
import type { Db, Queryable } from '../db/index.js';
import { settleReservation, type Reservation } from '../quota/storage.js';

/**
 * The parts of a multipart upload and the writers streaming them. A part number has at most one writer at
 * a time (multipart_part_writes, migration 004): the writer claims it before its first byte goes to the
 * backend and gives it up in the transaction that records the part, so the part row always describes the
 * bytes that last landed in the backend's slot for that number.
 */

export interface StoredPart {
  partNumber: number;
  size: number;
  /** MD5 hex: the part's ETag as the client sees it. */
  etag: string;
  /** The backend's ETag for the part, which its CompleteMultipartUpload needs. */
  backendEtag: string;
  /** Flexible checksums of the part, base64 by algorithm. */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  lastModified: Date;
}

interface PartRow {
  part_number: number;
  size_bytes: number;
  etag: string;
  backend_etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  created_at: Date;
}

function toPart(row: PartRow): StoredPart {
  return {
    partNumber: row.part_number,
    size: Number(row.size_bytes),
    etag: row.etag,
    backendEtag: row.backend_etag,
    checksums: row.checksums,
    lastModified: new Date(row.created_at),
  };
}

/** Parts in part-number order after `after`; `limit` null for all of them. */
export async function listUploadParts(q: Queryable, uploadId: string, page: { after: number; limit: number | null }): Promise<StoredPart[]> {
  const { rows } = await q.query<PartRow>(
    `SELECT part_number, size_bytes, etag, backend_etag, checksums, created_at FROM multipart_parts
      WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number ${page.limit === null ? '' : 'LIMIT $3'}`,
    page.limit === null ? [uploadId, page.after] : [uploadId, page.after, page.limit],
  );
  return rows.map(toPart);
}

/** How long a writer's claim lasts without renewal; renewed every WRITER_RENEW_SECONDS while it streams. */
export const WRITER_LEASE_SECONDS = 120;
export const WRITER_RENEW_SECONDS = 20;

export type WriterClaim =
  | { outcome: 'claimed'; writerId: string }
  /** The upload is not open (completed, completing, aborted) or does not exist. */
  | { outcome: 'not-open' }
  /** Another request is streaming this part number now. */
  | { outcome: 'busy' }
  /** The upload's parts and parts in flight would exceed the largest object allowed. */
  | { outcome: 'too-large'; otherPartsBytes: number };

/**
 * Claims a part number for one writer. Checked under the upload's row lock, with the other parts and the
 * other writers' declared sizes, so parallel parts cannot together push the object past `maxObjectBytes`.
 */
export async function claimPartWriter(db: Db, request: { uploadId: string; partNumber: number; size: number; maxObjectBytes: number }): Promise<WriterClaim> {
  return db.tx(async (q) => {
    const locked = await q.query<{ state: string }>('SELECT state FROM multipart_uploads WHERE id = $1 FOR UPDATE', [request.uploadId]);
    if (locked.rows[0]?.state !== 'open') return { outcome: 'not-open' };
    // A claim whose writer stopped renewing it (its process died) no longer holds the part number.
    await q.query('DELETE FROM multipart_part_writes WHERE upload_id = $1 AND part_number = $2 AND expires_at <= now()', [request.uploadId, request.partNumber]);
    const { rows } = await q.query<{ bytes: number }>(
      `SELECT (SELECT COALESCE(SUM(size_bytes), 0) FROM multipart_parts WHERE upload_id = $1 AND part_number <> $2)
            + (SELECT COALESCE(SUM(size_bytes), 0) FROM multipart_part_writes WHERE upload_id = $1 AND part_number <> $2 AND expires_at > now())
              AS bytes`,
      [request.uploadId, request.partNumber],
    );
    const otherPartsBytes = Number(rows[0]!.bytes);
    if (otherPartsBytes + request.size > request.maxObjectBytes) return { outcome: 'too-large', otherPartsBytes };
    const inserted = await q.query<{ writer_id: string }>(
      `INSERT INTO multipart_part_writes (upload_id, part_number, size_bytes, expires_at)
       VALUES ($1, $2, $3, now() + make_interval(secs => $4))
       ON CONFLICT (upload_id, part_number) DO NOTHING RETURNING writer_id`,
      [request.uploadId, request.partNumber, request.size, WRITER_LEASE_SECONDS],
    );
    const writer = inserted.rows[0];
    return writer ? { outcome: 'claimed', writerId: writer.writer_id } : { outcome: 'busy' };
  });
}

/**
 * Extends a writer's claim, and its storage reservation with it (a 5 GiB part on a slow link outlives the
 * reservation's default lifetime). False when the claim is gone or the upload is no longer open.
 */
export async function renewPartWriter(q: Queryable, writerId: string, reservation: Reservation | null): Promise<boolean> {
  const { rows } = await q.query<{ state: string }>(
    `UPDATE multipart_part_writes w SET expires_at = now() + make_interval(secs => $2)
       FROM multipart_uploads u WHERE w.writer_id = $1 AND u.id = w.upload_id RETURNING u.state`,
    [writerId, WRITER_LEASE_SECONDS],
  );
  if (reservation) {
    await q.query('UPDATE storage_reservations SET expires_at = now() + make_interval(secs => $2) WHERE id = $1', [reservation.id, reservation.ttlSeconds]);
  }
  return rows[0]?.state === 'open';
}

export async function releasePartWriter(q: Queryable, writerId: string): Promise<void> {
  await q.query('DELETE FROM multipart_part_writes WHERE writer_id = $1', [writerId]);
}

export interface PartWrite {
  uploadId: string;
  accountId: string;
  writerId: string;
  partNumber: number;
  size: number;
  etag: string;
  backendEtag: string;
  sha256: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

export type PartCommit = { outcome: 'stored'; lastModified: Date } | { outcome: 'not-open' } | { outcome: 'claim-lost' };

/**
 * Records a part whose bytes the backend holds: the row replaces any earlier part of that number (last
 * one wins), the writer's claim ends, and the reservation becomes usage by new minus old size.
 */
export async function commitPart(db: Db, part: PartWrite, reservation: Reservation): Promise<PartCommit> {
  return db.tx(async (q) => {
    const locked = await q.query<{ state: string }>('SELECT state FROM multipart_uploads WHERE id = $1 FOR UPDATE', [part.uploadId]);
    if (locked.rows[0]?.state !== 'open') return { outcome: 'not-open' };
    const claim = await q.query('DELETE FROM multipart_part_writes WHERE writer_id = $1', [part.writerId]);
    if (claim.rowCount === 0) return { outcome: 'claim-lost' };
    const previous = await q.query<{ size_bytes: number }>('SELECT size_bytes FROM multipart_parts WHERE upload_id = $1 AND part_number = $2 FOR UPDATE', [
      part.uploadId,
      part.partNumber,
    ]);
    const { rows } = await q.query<{ created_at: Date }>(
      `INSERT INTO multipart_parts (upload_id, part_number, size_bytes, etag, backend_etag, checksums, sha256)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (upload_id, part_number) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, etag = EXCLUDED.etag,
         backend_etag = EXCLUDED.backend_etag, checksums = EXCLUDED.checksums, sha256 = EXCLUDED.sha256, created_at = now()
       RETURNING created_at`,
      [part.uploadId, part.partNumber, part.size, part.etag, part.backendEtag, JSON.stringify(part.checksums), part.sha256],
    );
    await settleReservation(q, reservation, part.size - Number(previous.rows[0]?.size_bytes ?? 0));
    return { outcome: 'stored', lastModified: new Date(rows[0]!.created_at) };
  });
}
