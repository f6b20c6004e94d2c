import { listBuckets as listAccountBuckets } from '../../store/buckets.js';
import type { OperationHandler } from '../context.js';
import { ownerOf } from '../list-query.js';
import { listAllMyBucketsResultXml } from '../xml.js';

/**
 * The account's own buckets, by name in byte order; never another account's, whatever names they share.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html
 */
export const listBuckets: OperationHandler<'ListBuckets'> = async (_op, ctx) => {
  const buckets = await listAccountBuckets(ctx.deps.db, ctx.account.accountId);
  return {
    body: listAllMyBucketsResultXml({
      owner: ownerOf(ctx.account),
      buckets: buckets.map((bucket) => ({ name: bucket.name, creationDate: bucket.createdAt })),
    }),
  };
};
