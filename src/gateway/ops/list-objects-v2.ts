import { listObjectPage } from '../../store/listing.js';
import type { OperationHandler } from '../context.js';
import { decodeContinuationToken, encodeContinuationToken, ownerOf, parseEncodingType, parseMaxKeys } from '../list-query.js';
import { listBucketResultV2Xml } from '../xml.js';

/**
 * ListObjectsV2. The position is the continuation token when one is sent (start-after is then ignored,
 * but echoed, as S3 does), else start-after. Owners are listed only with `fetch-owner=true`.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
 */
export const listObjectsV2: OperationHandler<'ListObjectsV2'> = async (op, ctx) => {
  const prefix = ctx.query.get('prefix') ?? '';
  const delimiter = ctx.query.get('delimiter') ?? '';
  const startAfter = ctx.query.get('start-after') ?? undefined;
  // An empty token is what a naive paginator sends on its first call: no position, not a bad one.
  const continuationToken = ctx.query.get('continuation-token') || undefined;
  const maxKeys = parseMaxKeys(ctx.query);
  const encodingType = parseEncodingType(ctx.query);
  const fetchOwner = ctx.query.get('fetch-owner')?.toLowerCase() === 'true';
  const after = continuationToken !== undefined ? decodeContinuationToken(continuationToken) : (startAfter ?? '');
  const bucket = await ctx.bucket(op.bucket);

  const page = await listObjectPage(ctx.deps.db, { bucketId: bucket.id, prefix, delimiter, after, maxKeys });
  const owner = fetchOwner ? ownerOf(ctx.account) : undefined;
  return {
    body: listBucketResultV2Xml({
      bucket: op.bucket,
      prefix,
      ...(startAfter !== undefined && { startAfter }),
      ...(continuationToken !== undefined && { continuationToken }),
      ...(page.isTruncated && page.lastEntry !== undefined && { nextContinuationToken: encodeContinuationToken(page.lastEntry) }),
      maxKeys,
      ...(delimiter !== '' && { delimiter }),
      isTruncated: page.isTruncated,
      ...(encodingType && { encodingType }),
      contents: owner ? page.contents.map((object) => ({ ...object, owner })) : page.contents,
      commonPrefixes: page.commonPrefixes,
    }),
  };
};
