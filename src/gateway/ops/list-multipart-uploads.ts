import { listOpenUploads, type MultipartUpload } from '../../store/multipart.js';
import { commonPrefixOf } from '../../store/listing.js';
import type { OperationHandler, RequestContext } from '../context.js';
import { ownerOf, parseEncodingType } from '../list-query.js';
import { integerArgument } from '../multipart-upload.js';
import { listMultipartUploadsResultXml } from '../xml.js';

/** "Sets the maximum number of multipart uploads, from 1 to 1,000": larger values are served as 1,000. */
const MAX_UPLOADS_PER_PAGE = 1000;
const SCAN_ROWS = 1000;

interface UploadsPage {
  uploads: MultipartUpload[];
  commonPrefixes: string[];
  isTruncated: boolean;
  next?: { key: string; uploadId: string };
}

/**
 * ListMultipartUploads: the bucket's open uploads by key (UTF-8 byte order), a key's uploads in the order
 * they were initiated (UploadIds sort that way), with prefix, delimiter (CommonPrefixes count toward
 * max-uploads), key-marker and upload-id-marker (ignored without key-marker, as documented).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html
 */
export const listMultipartUploads: OperationHandler<'ListMultipartUploads'> = async (op, ctx) => {
  const bucket = await ctx.bucket(op.bucket);
  const query = ctx.query;
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  const keyMarker = query.get('key-marker') ?? '';
  const uploadIdMarker = keyMarker === '' ? '' : (query.get('upload-id-marker') ?? '');
  const maxUploads = Math.min(integerArgument(query, 'max-uploads', MAX_UPLOADS_PER_PAGE), MAX_UPLOADS_PER_PAGE);
  const encodingType = parseEncodingType(query);

  const page = await listPage(ctx, { bucketId: bucket.id, prefix, delimiter, keyMarker, uploadIdMarker, maxUploads });
  const owner = ownerOf(ctx.account);
  return {
    body: listMultipartUploadsResultXml({
      bucket: op.bucket,
      keyMarker,
      uploadIdMarker,
      ...(page.next && { nextKeyMarker: page.next.key, nextUploadIdMarker: page.next.uploadId }),
      ...(delimiter !== '' && { delimiter }),
      prefix,
      maxUploads,
      isTruncated: page.isTruncated,
      ...(encodingType && { encodingType }),
      uploads: page.uploads.map((upload) => ({ key: upload.key, uploadId: upload.uploadId, initiator: owner, owner, initiated: upload.initiated })),
      commonPrefixes: page.commonPrefixes,
    }),
  };
};

async function listPage(
  ctx: RequestContext,
  request: { bucketId: string; prefix: string; delimiter: string; keyMarker: string; uploadIdMarker: string; maxUploads: number },
): Promise<UploadsPage> {
  const { prefix, delimiter, maxUploads } = request;
  const page: UploadsPage = { uploads: [], commonPrefixes: [], isTruncated: false };
  if (maxUploads === 0) return page;
  // A key-marker that is a common prefix (NextKeyMarker after a page that ended on one) skips all under it.
  let group = delimiter !== '' && request.keyMarker.startsWith(prefix) && commonPrefixOf(request.keyMarker, prefix, delimiter) === request.keyMarker ? request.keyMarker : null;
  let after = { key: request.keyMarker, uploadId: request.uploadIdMarker };
  for (;;) {
    const rows = await listOpenUploads(ctx.deps.db, { bucketId: request.bucketId, prefix, keyMarker: after.key, uploadIdMarker: after.uploadId, limit: SCAN_ROWS });
    for (const upload of rows) {
      if (group !== null && upload.key.startsWith(group)) continue;
      if (page.uploads.length + page.commonPrefixes.length === maxUploads) {
        page.isTruncated = true;
        return page;
      }
      const common = delimiter === '' ? null : commonPrefixOf(upload.key, prefix, delimiter);
      if (common !== null) {
        group = common;
        page.commonPrefixes.push(common);
        page.next = { key: common, uploadId: '' };
      } else {
        page.uploads.push(upload);
        page.next = { key: upload.key, uploadId: upload.uploadId };
      }
    }
    if (rows.length < SCAN_ROWS) {
      delete page.next; // S3 names the next markers only for a truncated listing
      return page;
    }
    const last = rows[rows.length - 1]!;
    after = { key: last.key, uploadId: last.uploadId };
  }
}
