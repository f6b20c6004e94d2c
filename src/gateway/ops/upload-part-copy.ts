import { HashTap } from '../../auth/hash-tap.js';
import type { Readable } from 'node:stream';
import { getObject as findObject } from '../../store/objects.js';
import { header, type OperationHandler } from '../context.js';
import { S3Error } from '../errors.js';
import { partChecksumAlgorithms, toXmlChecksums } from '../multipart-checksums.js';
import { assertCopySourcePreconditions, type ResolvedRange } from '../object-headers.js';
import { findOpenUpload } from '../multipart-upload.js';
import { storePart } from '../part-pipeline.js';
import { copyPartResultXml } from '../xml.js';
import { MAX_COPY_SOURCE_BYTES } from './copy-object.js';

/**
 * UploadPartCopy from one of the account's own objects (another account's bucket is NoSuchBucket, as
 * for CopyObject), whole or the `x-amz-copy-source-range` of it. A part is a byte range of the backend's
 * multipart upload, so these bytes do pass through the gateway: read from the source's blob and written
 * as the part, through the same part path as UploadPart, hashed on the way.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html
 */
export const uploadPartCopy: OperationHandler<'UploadPartCopy'> = async (op, ctx) => {
  const upload = await findOpenUpload(ctx, op);
  const { copySource } = op;
  const sourceBucket = await ctx.bucket(copySource.bucket);
  // Objects here have one version, which S3 calls "null" in a bucket that was never versioned.
  if (copySource.versionId !== undefined && copySource.versionId !== 'null') {
    throw new S3Error('InvalidArgument', { message: 'Invalid version id specified', extra: { ArgumentName: 'versionId', ArgumentValue: copySource.versionId } });
  }
  const source = await findObject(ctx.deps.db, sourceBucket.id, copySource.key);
  if (!source) throw new S3Error('NoSuchKey', { resource: `/${copySource.bucket}/${copySource.key}`, extra: { Key: copySource.key } });
  assertCopySourcePreconditions(ctx.headers, source);
  const range = parseCopySourceRange(header(ctx.headers, 'x-amz-copy-source-range'), source.size);
  if (range === null && source.size > MAX_COPY_SOURCE_BYTES) {
    throw new S3Error('InvalidRequest', { message: `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_COPY_SOURCE_BYTES}` });
  }

  const checksumAlgorithms = partChecksumAlgorithms(upload);
  let sourceBody: Readable | undefined;
  try {
    const stored = await storePart(ctx, upload, op.partNumber, {
      size: range ? range.end - range.start + 1 : source.size,
      checksumAlgorithms,
      open: async () => {
        const read = await ctx.deps.backend.get({ key: source.backendKey, signal: ctx.signal, ...(range && { range }) });
        sourceBody = read.body;
        const tap = new HashTap({ checksumAlgorithms });
        return { source: read.body, transforms: [tap], tap };
      },
    });
    return { body: copyPartResultXml({ lastModified: stored.lastModified, etag: stored.etag, checksums: toXmlChecksums(stored.checksums) }) };
  } finally {
    // The part path never destroys its source (a request must stay answerable); a backend read must go.
    sourceBody?.destroy();
  }
};

/**
 * `bytes=first-last`, both offsets required and inside the source: InvalidArgument for another form,
 * InvalidRange for offsets past its end (as ceph's s3-tests expect of S3: test_multipart_copy_invalid_range).
 */
export function parseCopySourceRange(value: string | undefined, size: number): ResolvedRange | null {
  if (value === undefined) return null;
  const match = /^bytes=(\d{1,16})-(\d{1,16})$/.exec(value.trim());
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || end < start) {
    throw new S3Error('InvalidArgument', {
      message: 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
      extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: value },
    });
  }
  if (end >= size) throw new S3Error('InvalidRange', { message: `Range specified is not valid for source object of size: ${size}` });
  return { start, end };
}
