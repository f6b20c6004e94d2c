import { deleteUnreferenced } from '../../store/blobs.js';
import { deleteEmptyBucket } from '../../store/buckets.js';
import { listObjectPage } from '../../store/listing.js';
import { deleteExpiredObjects } from '../../store/objects.js';
import type { OperationHandler, RequestContext } from '../context.js';
import { S3Error } from '../errors.js';

const EXPIRED_BATCH = 500;

/**
 * DeleteBucket: 204 once empty, else BucketNotEmpty (409). Objects past their TTL are invisible to every
 * listing, so a bucket holding only those is empty to the tenant: they are released first rather than
 * answering BucketNotEmpty for a bucket that lists nothing.
 *
 * The `default` bucket every account is provisioned with is where the REST API stores; deleting it
 * would break that surface, so it answers AccessDenied.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucket.html
 */
export const deleteBucket: OperationHandler<'DeleteBucket'> = async (op, ctx) => {
  const bucket = await ctx.bucket(op.bucket);
  if (bucket.isDefault) {
    throw new S3Error('AccessDenied', { message: 'The default bucket holds the REST API\'s objects and cannot be deleted.' });
  }
  let outcome = await deleteEmptyBucket(ctx.deps.db, bucket.id);
  if (outcome === 'not-empty') {
    const visible = await listObjectPage(ctx.deps.db, { bucketId: bucket.id, prefix: '', delimiter: '', after: '', maxKeys: 1 });
    if (visible.contents.length === 0 && (await releaseExpiredObjects(ctx, bucket.id)) > 0) {
      outcome = await deleteEmptyBucket(ctx.deps.db, bucket.id);
    }
  }
  if (outcome === 'not-empty') throw new S3Error('BucketNotEmpty', { extra: { BucketName: op.bucket } });
  if (outcome === 'missing') throw new S3Error('NoSuchBucket', { extra: { BucketName: op.bucket } });
  return { status: 204 };
};

async function releaseExpiredObjects(ctx: RequestContext, bucketId: string): Promise<number> {
  let total = 0;
  for (;;) {
    const { count, unreferenced } = await deleteExpiredObjects(ctx.deps.db, ctx.account.accountId, bucketId, EXPIRED_BATCH);
    await deleteUnreferenced({ db: ctx.deps.db, backend: ctx.deps.backend, logger: ctx.log }, unreferenced);
    total += count;
    if (count < EXPIRED_BATCH) return total;
  }
}
