import { createPayloadVerifier } from '../../auth/payload.js';
import { deleteUnreferenced } from '../../store/blobs.js';
import { deleteObjectsByKey } from '../../store/objects.js';
import { assertValidObjectKey } from '../bucket-name.js';
import { header, type OperationHandler } from '../context.js';
import { S3Error, toS3Error } from '../errors.js';
import { readVerifiedBody } from '../request-body.js';
import { DELETE_OBJECTS_MAX_BODY_BYTES, parseDeleteRequest, type ObjectToDelete } from '../xml-input.js';
import { deleteResultXml, type DeleteOutcome } from '../xml.js';

/** Buckets are never versioned here; "null" is the version id S3 gives objects in such a bucket. */
const NULL_VERSION_ID = 'null';

/**
 * DeleteObjects: up to 1,000 keys in one XML body, each answered in request order. A key
 * that does not exist is reported Deleted, as S3 reports it; Quiet mode returns only the errors.
 *
 * S3 requires the body's integrity to be provable: Content-MD5 or an x-amz-checksum-* (header or
 * aws-chunked trailer; the current SDKs send x-amz-checksum-crc32). Without either, S3 answers
 * InvalidRequest "Missing required header for this request: Content-MD5 OR x-amz-checksum-*"
 * (measured: versity/versitygw#1040). The body goes through the same verifiers as a PUT body, so a
 * wrong digest is BadDigest and nothing is deleted.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
 */
export const deleteObjects: OperationHandler<'DeleteObjects'> = async (op, ctx) => {
  const bucket = await ctx.bucket(op.bucket);
  const payload = createPayloadVerifier(ctx.auth, ctx.headers);
  if (payload.checksumAlgorithm === undefined && header(ctx.headers, 'content-md5') === undefined) {
    throw new S3Error('InvalidRequest', { message: 'Missing required header for this request: Content-MD5 OR x-amz-checksum-*' });
  }
  const request = parseDeleteRequest(await readVerifiedBody(ctx.request, payload, DELETE_OBJECTS_MAX_BODY_BYTES));

  const outcomes: DeleteOutcome[] = request.objects.map((object) => {
    const outcome: DeleteOutcome = { key: object.key, ...(object.versionId !== undefined && { versionId: object.versionId }) };
    try {
      checkDeletable(object);
    } catch (error) {
      outcome.error = describe(error);
    }
    return outcome;
  });
  const keys = [...new Set(outcomes.filter((outcome) => outcome.error === undefined).map((outcome) => outcome.key))];
  // One transaction for the whole request: 1,000 keys cost one statement, not 1,000 round trips. A
  // failure answers for every key it covered, as S3's per-key InternalError does.
  let unreferenced: string[] = [];
  try {
    ({ unreferenced } = await deleteObjectsByKey(ctx.deps.db, ctx.account.accountId, bucket.id, keys));
  } catch (error) {
    ctx.log.error({ err: error }, 'DeleteObjects could not delete its keys');
    for (const outcome of outcomes) outcome.error ??= describe(error);
  }
  await deleteUnreferenced({ db: ctx.deps.db, backend: ctx.deps.backend, logger: ctx.log }, unreferenced);
  return { body: deleteResultXml({ quiet: request.quiet, outcomes }) };
};

function describe(error: unknown): { code: string; message: string } {
  const s3Error = toS3Error(error);
  return { code: s3Error.code, message: s3Error.message };
}

function checkDeletable(object: ObjectToDelete): void {
  assertValidObjectKey(object.key);
  if (object.versionId !== undefined && object.versionId !== NULL_VERSION_ID) {
    throw new S3Error('NoSuchVersion', { message: 'The specified version does not exist.' });
  }
}
