import { getAccountLimits } from '../../quota/limits.js';
import { QuotaError } from '../../quota/errors.js';
import { deleteUnreferenced, newBlobKey, stageWrite } from '../../store/blobs.js';
import { countOpenUploads, insertUpload, newUploadId } from '../../store/multipart.js';
import { assertValidObjectKey } from '../bucket-name.js';
import type { OperationHandler, RequestContext } from '../context.js';
import { S3Error } from '../errors.js';
import { parseUploadChecksum } from '../multipart-checksums.js';
import { readObjectHeaders } from '../object-headers.js';
import { initiateMultipartUploadResultXml } from '../xml.js';

/**
 * CreateMultipartUpload: keeps the object's headers and metadata for the completed object, and opens the
 * backend's own multipart upload under a new blob key of the account (registered in staged_writes first,
 * so a crash leaves a row naming it). The UploadId handed out is ours, random, never the backend's.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html
 */
export const createMultipartUpload: OperationHandler<'CreateMultipartUpload'> = async (op, ctx) => {
  assertValidObjectKey(op.key);
  const bucket = await ctx.bucket(op.bucket);
  const headers = readObjectHeaders(ctx.headers);
  const checksum = parseUploadChecksum(ctx.headers);
  const { db, backend } = ctx.deps;
  const maxOpen = ctx.deps.config.multipart.maxOpenUploadsPerAccount;

  // A tier without storage refuses every upload at its start rather than at its first part.
  if (ctx.account.limits.storageQuotaBytes === 0) {
    // Only the refusal's message needs the usage: read it on this path alone.
    const current = await getAccountLimits(db, ctx.account.accountId);
    throw new QuotaError('QUOTA_STORAGE_EXCEEDED', `Storage quota exceeded: the ${current.tier} tier has no storage (0 bytes).`, { used: current.storageUsedBytes, quota: 0 });
  }
  // Checked before the backend is asked, and again under a lock when the upload is recorded.
  if ((await countOpenUploads(db, ctx.account.accountId)) >= maxOpen) throw tooManyUploads(maxOpen);

  const backendKey = newBlobKey(ctx.account.agentcacheUserId);
  await stageWrite(db, ctx.account.accountId, backendKey);
  let backendUploadId: string | undefined;
  try {
    ({ uploadId: backendUploadId } = await backend.createMultipart({ key: backendKey, ...(headers.contentType !== null && { contentType: headers.contentType }) }));
    const upload = await insertUpload(
      db,
      {
        uploadId: newUploadId(),
        accountId: ctx.account.accountId,
        bucketId: bucket.id,
        key: op.key,
        backendKey,
        backendUploadId,
        headers,
        checksumAlgorithm: checksum?.algorithm ?? null,
        checksumType: checksum?.type ?? null,
      },
      maxOpen,
    );
    if (!upload) throw tooManyUploads(maxOpen);
    return {
      headers: {
        ...(checksum && { 'x-amz-checksum-algorithm': checksum.algorithm, 'x-amz-checksum-type': checksum.type }),
      },
      body: initiateMultipartUploadResultXml({ bucket: op.bucket, key: op.key, uploadId: upload.uploadId }),
    };
  } catch (error) {
    await undoCreate(ctx, backendKey, backendUploadId);
    throw error;
  }
};

function tooManyUploads(maxOpen: number): S3Error {
  return new S3Error('SlowDown', {
    message: `This account has ${maxOpen} multipart uploads in progress, the most allowed; complete or abort some first.`,
    headers: { 'Retry-After': '60' },
  });
}

async function undoCreate(ctx: RequestContext, backendKey: string, backendUploadId: string | undefined): Promise<void> {
  try {
    if (backendUploadId !== undefined) await ctx.deps.backend.abortMultipart({ key: backendKey, uploadId: backendUploadId });
    await deleteUnreferenced({ db: ctx.deps.db, backend: ctx.deps.backend, logger: ctx.log }, [backendKey]);
  } catch (error) {
    ctx.log.warn({ err: error, backendKey }, 'could not undo a refused CreateMultipartUpload; the staged key stays for the collector');
  }
}
