import { listUploadParts } from '../../store/multipart-parts.js';
import type { OperationHandler } from '../context.js';
import { ownerOf } from '../list-query.js';
import { toXmlChecksums } from '../multipart-checksums.js';
import { findOpenUpload, integerArgument } from '../multipart-upload.js';
import { listPartsResultXml } from '../xml.js';

/** "Returns up to 1,000 parts": a larger max-parts is served as 1,000. */
const MAX_PARTS_PER_PAGE = 1000;

/**
 * ListParts of an open upload, in part-number order, after `part-number-marker`, `max-parts` at a time.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html
 */
export const listParts: OperationHandler<'ListParts'> = async (op, ctx) => {
  const upload = await findOpenUpload(ctx, op);
  const maxParts = Math.min(integerArgument(ctx.query, 'max-parts', MAX_PARTS_PER_PAGE), MAX_PARTS_PER_PAGE);
  const marker = integerArgument(ctx.query, 'part-number-marker', 0);
  const found = await listUploadParts(ctx.deps.db, upload.id, { after: marker, limit: maxParts + 1 });
  const parts = found.slice(0, maxParts);
  const owner = ownerOf(ctx.account);
  const last = parts.at(-1);
  return {
    body: listPartsResultXml({
      bucket: op.bucket,
      key: op.key,
      uploadId: op.uploadId,
      initiator: owner,
      owner,
      partNumberMarker: marker,
      ...(last && { nextPartNumberMarker: last.partNumber }),
      maxParts,
      isTruncated: found.length > maxParts,
      parts: parts.map((part) => ({
        partNumber: part.partNumber,
        lastModified: part.lastModified,
        etag: part.etag,
        size: part.size,
        checksums: toXmlChecksums(part.checksums),
      })),
    }),
  };
};
