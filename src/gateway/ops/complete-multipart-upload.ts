import type { TLSSocket } from 'node:tls';
import type { RequestHeaders } from '../../auth/canonical.js';
import { createPayloadVerifier } from '../../auth/payload.js';
import { BackendErrorCode } from '../../backend/backend.js';
import { scheduleBlobHashing } from '../../jobs/hash-pending.js';
import { deleteUnreferenced } from '../../store/blobs.js';
import { beginCompletion, commitCompletedUpload, findCompletedObject, reopenUpload, type MultipartUpload } from '../../store/multipart.js';
import type { StoredPart } from '../../store/multipart-parts.js';
import type { Bucket } from '../../store/buckets.js';
import type { OperationHandler, RequestContext, S3Result } from '../context.js';
import { S3Error } from '../errors.js';
import {
  assertDeclaredObjectChecksum,
  assertListedChecksums,
  multipartEtag,
  objectChecksum,
  toXmlChecksums,
} from '../multipart-checksums.js';
import { findSettledUpload, noSuchUpload } from '../multipart-upload.js';
import { MIN_PART_BYTES } from '../part-pipeline.js';
import { entityTooLarge } from '../put-pipeline.js';
import { readVerifiedBody } from '../request-body.js';
import { bucketFromHost } from '../router.js';
import { COMPLETE_MULTIPART_MAX_BODY_BYTES, parseCompleteMultipartUpload, type CompletedPart } from '../xml-input.js';
import { completeMultipartUploadResultXml, unquoteEtag } from '../xml.js';

const MAX_PART_NUMBER = 10_000;

/**
 * CompleteMultipartUpload: checks the listed parts (ascending: InvalidPartOrder; uploaded, with matching
 * ETags and checksums: InvalidPart; all but the last at least 5 MiB: EntityTooSmall), has the backend
 * assemble them, and commits the object. Parts not listed are discarded and their usage released with
 * the rest. The object joins the content-addressed store once jobs/hash-pending.ts has read it back.
 *
 * Completing twice: S3 answers a retried Complete (same UploadId, same parts) with the first answer. So
 * do we, as long as the object that upload made is still at the key; once it was overwritten or deleted,
 * the upload is simply gone: NoSuchUpload. A Complete arriving while another is in progress waits for it.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html
 */
export const completeMultipartUpload: OperationHandler<'CompleteMultipartUpload'> = async (op, ctx) => {
  const bucket = await ctx.bucket(op.bucket);
  // x-amz-checksum-* on this request describe the object being completed, not the XML body.
  const payload = createPayloadVerifier(ctx.auth, withoutObjectChecksumHeaders(ctx.headers));
  const listed = parseCompleteMultipartUpload(await readVerifiedBody(ctx.request, payload, COMPLETE_MULTIPART_MAX_BODY_BYTES));
  listed.forEach((part, index) => {
    if (index > 0 && part.partNumber <= listed[index - 1]!.partNumber) throw new S3Error('InvalidPartOrder', { extra: { UploadId: op.uploadId } });
  });

  const { db, backend } = ctx.deps;
  const claimed = await claimCompletion(ctx, bucket, op, listed);
  if (!('upload' in claimed)) return claimed;
  const { upload, parts } = claimed;
  const etag = multipartEtag(parts.map((part) => part.etag));
  const size = parts.reduce((total, part) => total + part.size, 0);
  let checksum: Awaited<ReturnType<typeof objectChecksum>>;
  try {
    checksum = await objectChecksum(upload, parts);
    assertDeclaredObjectChecksum(ctx.headers, upload, checksum);
    await assembleOnBackend(ctx, upload, parts, size);
  } catch (error) {
    await reopenUpload(db, upload.id);
    throw error;
  }

  let committed;
  try {
    committed = await commitCompletedUpload(db, upload, {
      ...upload.headers,
      accountId: ctx.account.accountId,
      bucketId: bucket.id,
      key: op.key,
      size,
      sha256: null,
      md5: null,
      etag,
      checksums: checksum ? { [checksum.algorithm]: checksum.value } : {},
      partsCount: parts.length,
      partSizes: parts.map((part) => part.size),
      multipartUploadId: upload.uploadId,
    });
  } catch (error) {
    // The backend holds the object; a retried Complete finds it there (assembleOnBackend) and commits it.
    // Should reopening fail too, the upload stays 'completing' until the collector ends it.
    await reopenUpload(db, upload.id).catch((reopenError: unknown) => ctx.log.warn({ err: reopenError }, 'could not reopen a multipart upload after a failed commit'));
    throw error;
  }
  await deleteUnreferenced({ db, backend, logger: ctx.log }, committed.unreferenced);
  scheduleBlobHashing({ db, backend, logger: ctx.deps.logger });
  return completionResult(ctx, op, etag, checksum ? { [checksum.algorithm]: checksum.value } : {});
};

/**
 * Takes the upload from 'open' to 'completing' with its checked parts, or answers for an upload that is
 * already completed (a retried Complete). A Complete racing another waits for that one's outcome.
 */
async function claimCompletion(
  ctx: RequestContext,
  bucket: Bucket,
  op: { bucket: string; key: string; uploadId: string },
  listed: readonly CompletedPart[],
): Promise<{ upload: MultipartUpload; parts: StoredPart[] } | S3Result> {
  const { maxFileSizeBytes } = ctx.account.limits;
  for (;;) {
    const upload = await findSettledUpload(ctx, op);
    if (!upload) return retriedCompletion(ctx, bucket, op, listed);
    if (upload.state !== 'open') throw noSuchUpload(op.uploadId);
    const started = await beginCompletion(ctx.deps.db, upload.id, listed.map((part) => part.partNumber), (parts) => partsToAssemble(upload, listed, parts, maxFileSizeBytes));
    if (started.outcome === 'started') return { upload, parts: started.value };
    if (started.outcome === 'parts-in-flight') {
      throw new S3Error('SlowDown', { message: 'A listed part is still being uploaded; retry once it has finished.', headers: { 'Retry-After': '1' } });
    }
    // Another Complete (or an abort) took the upload between our look and our lock: see how it ends.
  }
}

/** The parts to assemble, in order, once the listed ones are found valid against those stored. */
function partsToAssemble(upload: MultipartUpload, listed: readonly CompletedPart[], stored: readonly StoredPart[], maxObjectBytes: number): StoredPart[] {
  const byNumber = new Map(stored.map((part) => [part.partNumber, part]));
  const parts = listed.map((entry) => {
    const part = entry.partNumber >= 1 && entry.partNumber <= MAX_PART_NUMBER ? byNumber.get(entry.partNumber) : undefined;
    if (!part || unquoteEtag(entry.etag).toLowerCase() !== part.etag) {
      throw new S3Error('InvalidPart', { extra: { UploadId: upload.uploadId, PartNumber: entry.partNumber, ETag: entry.etag } });
    }
    return part;
  });
  parts.forEach((part, index) => {
    if (index < parts.length - 1 && part.size < MIN_PART_BYTES) {
      throw new S3Error('EntityTooSmall', { extra: { ProposedSize: part.size, MinSizeAllowed: MIN_PART_BYTES, PartNumber: part.partNumber, ETag: part.etag } });
    }
  });
  assertListedChecksums(upload, listed, byNumber);
  const size = parts.reduce((total, part) => total + part.size, 0);
  // The tier may have shrunk since the parts were accepted.
  if (size > maxObjectBytes) throw entityTooLarge(maxObjectBytes, size);
  return parts;
}

async function assembleOnBackend(ctx: RequestContext, upload: MultipartUpload, parts: readonly StoredPart[], size: number): Promise<void> {
  const { backend } = ctx.deps;
  try {
    await backend.completeMultipart({
      key: upload.backendKey,
      uploadId: upload.backendUploadId,
      parts: parts.map((part) => ({ partNumber: part.partNumber, etag: part.backendEtag })),
    });
  } catch (error) {
    // An earlier attempt may have assembled the object and died before committing it: the backend's
    // upload is then gone and the object stands at the key only this upload writes.
    if ((error as { code?: string }).code === BackendErrorCode.NotFound && (await backend.head({ key: upload.backendKey }))?.size === size) return;
    throw error;
  }
}

/** A Complete of an upload already completed: its first answer while its object stands, else NoSuchUpload. */
async function retriedCompletion(ctx: RequestContext, bucket: Bucket, op: { bucket: string; key: string; uploadId: string }, listed: readonly CompletedPart[]): Promise<S3Result> {
  const previous = await findCompletedObject(ctx.deps.db, { bucketId: bucket.id, key: op.key, uploadId: op.uploadId });
  const etag = multipartEtag(listed.map((part) => unquoteEtag(part.etag).toLowerCase()));
  if (!previous || previous.etag !== etag) throw noSuchUpload(op.uploadId);
  return completionResult(ctx, op, previous.etag, previous.checksums);
}

function completionResult(ctx: RequestContext, op: { bucket: string; key: string }, etag: string, checksums: Record<string, string>): S3Result {
  const composite = Object.values(checksums).some((value) => /-\d+$/.test(value));
  const hasChecksum = Object.keys(checksums).length > 0;
  return {
    body: completeMultipartUploadResultXml({
      location: objectLocation(ctx, op),
      bucket: op.bucket,
      key: op.key,
      etag,
      checksums: toXmlChecksums(checksums),
      ...(hasChecksum && { checksumType: composite ? 'COMPOSITE' : 'FULL_OBJECT' }),
    }),
  };
}

/** The object's URL as the client addressed the bucket: virtual-hosted or path-style. */
function objectLocation(ctx: RequestContext, op: { bucket: string; key: string }): string {
  const host = ctx.request.headers.host ?? 'localhost';
  const scheme = (ctx.request.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http';
  const key = op.key.split('/').map(encodeURIComponent).join('/');
  return bucketFromHost(host, ctx.deps.config.s3Domain) === undefined ? `${scheme}://${host}/${encodeURIComponent(op.bucket)}/${key}` : `${scheme}://${host}/${key}`;
}

/**
 * The request's headers without the whole-object checksum headers, for the body's own verifier. A
 * checksum of the body itself comes in a trailer, which stays.
 */
function withoutObjectChecksumHeaders(headers: RequestHeaders): RequestHeaders {
  const trailer = headers['x-amz-trailer'] !== undefined;
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !name.startsWith('x-amz-checksum-') && (trailer || name !== 'x-amz-sdk-checksum-algorithm')),
  );
}
