import { checksumHeaderName, type ChecksumAlgorithm } from '../../auth/checksums.js';
import { createPayloadVerifier } from '../../auth/payload.js';
import type { OperationHandler } from '../context.js';
import { S3Error } from '../errors.js';
import { assertPartChecksum, partChecksumAlgorithms } from '../multipart-checksums.js';
import { findOpenUpload } from '../multipart-upload.js';
import { storePart } from '../part-pipeline.js';
import { quoteEtag } from '../xml.js';

/**
 * UploadPart in every payload mode the PUT path takes (signed or unsigned, aws-chunked with chunk
 * signatures and checksum trailers, Content-MD5): the part streams once through the same verifiers into
 * the backend's multipart upload. Uploading a part number again replaces the part.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html
 */
export const uploadPart: OperationHandler<'UploadPart'> = async (op, ctx) => {
  const upload = await findOpenUpload(ctx, op);
  const payload = createPayloadVerifier(ctx.auth, ctx.headers, upload.checksumAlgorithm ? { alsoCompute: [upload.checksumAlgorithm] } : {});
  assertPartChecksum(upload, payload.checksumAlgorithm);
  // "Content-Length: Required" for UploadPart: a part of unknown length could not be sent to an S3 backend
  // without spooling it.
  if (payload.declaredLength === undefined) throw new S3Error('MissingContentLength');

  const stored = await storePart(ctx, upload, op.partNumber, {
    size: payload.declaredLength,
    checksumAlgorithms: partChecksumAlgorithms(upload, payload.checksumAlgorithm),
    open: async () => ({ source: ctx.request, transforms: payload.transforms, tap: payload.tap }),
  });

  const headers: Record<string, string> = { etag: quoteEtag(stored.etag) };
  for (const [algorithm, value] of Object.entries(stored.checksums)) headers[checksumHeaderName(algorithm as ChecksumAlgorithm)] = value;
  return { headers };
};
