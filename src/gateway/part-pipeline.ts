import type { Readable, Transform } from 'node:stream';
import type { ChecksumAlgorithm } from '../auth/checksums.js';
import type { HashTap } from '../auth/hash-tap.js';
import { BackendErrorCode } from '../backend/backend.js';
import { formatBytes, QuotaError } from '../quota/errors.js';
import { releaseReservation, reserveStorage, type Reservation } from '../quota/storage.js';
import { finishAbortedUpload, type MultipartUpload } from '../store/multipart.js';
import { claimPartWriter, commitPart, releasePartWriter, renewPartWriter, WRITER_RENEW_SECONDS } from '../store/multipart-parts.js';
import type { RequestContext } from './context.js';
import { S3Error } from './errors.js';
import { noSuchUpload } from './multipart-upload.js';
import { streamThrough } from './put-pipeline.js';

/**
 * The path of one part, for UploadPart and UploadPartCopy alike:
 *   size limits -> claim the part number (one writer at a time) -> reserve quota
 *   -> stream once through the verifiers and hashes into the backend's multipart upload -> one commit.
 * Any failure releases the reservation and the claim; the backend's part slot is overwritten by the next
 * upload of that number or dropped with the upload. Nothing is held whole in memory or on local disk.
 */

/** S3's largest part (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
export const MAX_PART_BYTES = 5 * 1024 ** 3;
/** S3's smallest part, for every part but the last. */
export const MIN_PART_BYTES = 5 * 1024 ** 2;

export interface PartBody {
  /** The part's length, known before it streams (S3 requires Content-Length on UploadPart). */
  size: number;
  /** Called once the part may stream: its bytes and the chain that checks them, ending in a HashTap. */
  open(): Promise<{ source: Readable; transforms: Transform[]; tap: HashTap }>;
  /** Flexible checksums to keep with the part (the upload's algorithm, and any the client sent). */
  checksumAlgorithms: readonly ChecksumAlgorithm[];
}

export interface StoredPartResult {
  etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  lastModified: Date;
}

export async function storePart(ctx: RequestContext, upload: MultipartUpload, partNumber: number, body: PartBody): Promise<StoredPartResult> {
  const { db, backend } = ctx.deps;
  if (body.size > MAX_PART_BYTES) {
    throw new S3Error('EntityTooLarge', { extra: { ProposedSize: body.size, MaxSizeAllowed: MAX_PART_BYTES } });
  }
  // The key record's limits: every process refreshes them on every account change.
  const { limits } = ctx.account;
  const claim = await claimPartWriter(db, { uploadId: upload.id, partNumber, size: body.size, maxObjectBytes: limits.maxFileSizeBytes });
  if (claim.outcome === 'not-open') throw noSuchUpload(upload.uploadId);
  if (claim.outcome === 'busy') {
    // Two writers of one part number would race on the backend's slot for it; the client retries this
    // one once the other has finished, and the retry then replaces it (the last upload wins).
    throw new S3Error('SlowDown', { message: `Part ${partNumber} of this upload is being uploaded by another request; retry shortly.`, headers: { 'Retry-After': '1' } });
  }
  if (claim.outcome === 'too-large') {
    throw new QuotaError(
      'ENTITY_TOO_LARGE',
      `This part would bring the upload to ${formatBytes(claim.otherPartsBytes + body.size)}, over the maximum allowed object size of ${formatBytes(limits.maxFileSizeBytes)} for this account.`,
      { limit: limits.maxFileSizeBytes },
    );
  }

  const lease = holdWriterClaim(ctx, claim.writerId);
  let reservation: Reservation | null = null;
  let committed = false;
  try {
    reservation = await reserveStorage(db, ctx.account.accountId, body.size, ctx.deps.config.reservationTtlSeconds);
    lease.reservation = reservation;
    const { source, transforms, tap } = await body.open();
    let backendEtag: string;
    try {
      ({ etag: backendEtag } = await streamThrough(source, transforms, (stream) =>
        backend.uploadPart({
          key: upload.backendKey,
          uploadId: upload.backendUploadId,
          partNumber,
          body: stream,
          contentLength: body.size,
          signal: AbortSignal.any([ctx.signal, lease.signal]),
        }),
      ));
    } catch (error) {
      // The backend's upload is gone (aborted, collected) or our claim lapsed: the upload is no more.
      if ((error as { code?: string }).code === BackendErrorCode.NotFound || lease.signal.aborted) throw noSuchUpload(upload.uploadId);
      throw error;
    }
    const digests = tap.result;
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
    for (const algorithm of body.checksumAlgorithms) checksums[algorithm] = digests.checksums[algorithm]!;
    const outcome = await commitPart(
      db,
      {
        uploadId: upload.id,
        accountId: ctx.account.accountId,
        writerId: claim.writerId,
        partNumber,
        size: digests.bytes,
        etag: digests.md5Hex,
        backendEtag,
        sha256: digests.sha256Hex,
        checksums,
      },
      reservation,
    );
    if (outcome.outcome !== 'stored') throw noSuchUpload(upload.uploadId);
    committed = true;
    return { etag: digests.md5Hex, checksums, lastModified: outcome.lastModified };
  } finally {
    lease.stop();
    if (!committed) await abandonPart(ctx, upload, claim.writerId, reservation);
  }
}

async function abandonPart(ctx: RequestContext, upload: MultipartUpload, writerId: string, reservation: Reservation | null): Promise<void> {
  const { db } = ctx.deps;
  try {
    if (reservation) await releaseReservation(db, reservation);
    await releasePartWriter(db, writerId);
    // An abort that came while this part streamed left the upload for its last writer to finish.
    await finishAbortedUpload({ db, backend: ctx.deps.backend, logger: ctx.log }, upload.id);
  } catch (error) {
    ctx.log.warn({ err: error, uploadId: upload.uploadId }, 'could not release a failed part; its claim and reservation expire on their own');
  }
}

interface WriterLease {
  signal: AbortSignal;
  reservation: Reservation | null;
  stop(): void;
}

/**
 * Renews the writer's claim while the part streams. When a renewal fails or finds the upload no longer
 * open, the stream is stopped at once: a writer that cannot prove its claim must not keep writing into a
 * slot another writer may own by the time its claim has lapsed.
 */
function holdWriterClaim(ctx: RequestContext, writerId: string): WriterLease {
  const controller = new AbortController();
  const lease: WriterLease = {
    signal: controller.signal,
    reservation: null,
    stop: () => clearInterval(timer),
  };
  const timer = setInterval(() => {
    renewPartWriter(ctx.deps.db, writerId, lease.reservation).then(
      (open) => {
        if (!open) controller.abort(new Error('the multipart upload is no longer open'));
      },
      (error: unknown) => {
        ctx.log.warn({ err: error }, 'could not renew a part writer claim; stopping the part');
        controller.abort(error);
      },
    );
  }, WRITER_RENEW_SECONDS * 1000);
  timer.unref();
  return lease;
}
