import { deleteUnreferenced } from '../../store/blobs.js';
import { commitObject, getObject as findObject, type ObjectHeaders, type StoredObject } from '../../store/objects.js';
import { assertValidObjectKey } from '../bucket-name.js';
import { header, type OperationHandler } from '../context.js';
import { S3Error } from '../errors.js';
import { toXmlChecksums } from '../multipart-checksums.js';
import { assertCopySourcePreconditions, readObjectHeaders } from '../object-headers.js';
import { entityTooLarge } from '../put-pipeline.js';
import { copyObjectResultXml } from '../xml.js';

/** "You can store individual objects of up to 5 TB in Amazon S3. You create a copy of your object up to 5 GB in size in a single atomic action using this API." */
export const MAX_COPY_SOURCE_BYTES = 5 * 1024 ** 3;

type MetadataDirective = 'COPY' | 'REPLACE';

/**
 * CopyObject within the account. The source is looked up among the account's own buckets only, so
 * another account's bucket is NoSuchBucket whatever `x-amz-copy-source` says. No byte passes through the
 * gateway: the copy is a new object row on the same blob, committed by the one write transaction, which
 * adds the blob reference and checks the storage quota for the size delta (a copy is charged like a PUT).
 *
 * - `x-amz-metadata-directive` COPY (default) keeps the source's headers and metadata; REPLACE takes
 *   them from this request. Copying an object onto itself with COPY changes nothing, which S3 refuses.
 * - `x-amz-copy-source-if-*` are checked on the source: 412 PreconditionFailed.
 * - The tier's maximum object size applies to the copy as to a PUT (EntityTooLarge).
 * - The copy's ETag is the MD5 of its bytes, also for a multipart source, as S3's single-action copy
 *   gives; the source's checksums carry over only when they describe the whole object (single part).
 * - A TTL or AgentCache cache key belongs to the source row; the copy is a plain S3 object.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
 */
export const copyObject: OperationHandler<'CopyObject'> = async (op, ctx) => {
  assertValidObjectKey(op.key);
  const directive = parseMetadataDirective(header(ctx.headers, 'x-amz-metadata-directive'));
  const { copySource } = op;
  const bucket = await ctx.bucket(op.bucket);
  const sourceBucket = copySource.bucket === op.bucket ? bucket : await ctx.bucket(copySource.bucket);
  // Objects here have one version, which S3 calls "null" in a bucket that was never versioned.
  if (copySource.versionId !== undefined && copySource.versionId !== 'null') {
    throw new S3Error('InvalidArgument', { message: 'Invalid version id specified', extra: { ArgumentName: 'versionId', ArgumentValue: copySource.versionId } });
  }
  const source = await findObject(ctx.deps.db, sourceBucket.id, copySource.key);
  if (!source) throw noSuchSourceKey(copySource);
  assertCopySourcePreconditions(ctx.headers, source);
  if (directive === 'COPY' && sourceBucket.id === bucket.id && copySource.key === op.key) {
    throw new S3Error('InvalidRequest', {
      message:
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    });
  }
  if (source.size > MAX_COPY_SOURCE_BYTES) {
    throw new S3Error('InvalidRequest', { message: `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_COPY_SOURCE_BYTES}` });
  }
  const { limits } = ctx.account;
  if (source.size > limits.maxFileSizeBytes) throw entityTooLarge(limits.maxFileSizeBytes, source.size);

  // A multipart object just completed is read back once to compute its SHA-256 and MD5
  // (jobs/hash-pending.ts); until then there is no content address to link a copy to, nor an ETag to give it.
  if (source.sha256 === null || source.md5 === null) {
    throw new S3Error('SlowDown', { message: 'The copy source is still being processed. Please retry shortly.', headers: { 'Retry-After': '5' } });
  }
  const headers = directive === 'COPY' ? headersOf(source) : readObjectHeaders(ctx.headers);
  const checksums = source.partsCount === null ? source.checksums : {};
  let committed;
  try {
    committed = await commitObject(
      ctx.deps.db,
      {
        ...headers,
        accountId: ctx.account.accountId,
        bucketId: bucket.id,
        key: op.key,
        size: source.size,
        sha256: source.sha256,
        md5: source.md5,
        etag: source.md5,
        checksums,
        partsCount: null,
      },
      { kind: 'existing' },
      null,
    );
  } catch (error) {
    // The source's last reference went between the lookup and the commit: the source is gone.
    if ((error as { code?: string }).code === 'BLOB_GONE') throw noSuchSourceKey(copySource);
    throw error;
  }
  await deleteUnreferenced({ db: ctx.deps.db, backend: ctx.deps.backend, logger: ctx.log }, committed.unreferenced);
  return {
    body: copyObjectResultXml({
      lastModified: committed.object.lastModified,
      etag: committed.object.etag,
      checksums: toXmlChecksums(checksums),
    }),
  };
};

/** Absent means COPY; anything but COPY or REPLACE is refused, as S3 refuses it. */
function parseMetadataDirective(value: string | undefined): MetadataDirective {
  if (value === undefined) return 'COPY';
  const directive = value.trim().toUpperCase();
  if (directive === 'COPY' || directive === 'REPLACE') return directive;
  throw new S3Error('InvalidArgument', {
    message: 'Unknown metadata directive.',
    extra: { ArgumentName: 'x-amz-metadata-directive', ArgumentValue: value },
  });
}

function headersOf(object: StoredObject): ObjectHeaders {
  return {
    contentType: object.contentType,
    contentEncoding: object.contentEncoding,
    contentDisposition: object.contentDisposition,
    contentLanguage: object.contentLanguage,
    cacheControl: object.cacheControl,
    expires: object.expires,
    userMetadata: object.userMetadata,
  };
}

function noSuchSourceKey(copySource: { bucket: string; key: string }): S3Error {
  return new S3Error('NoSuchKey', { resource: `/${copySource.bucket}/${copySource.key}`, extra: { Key: copySource.key } });
}
