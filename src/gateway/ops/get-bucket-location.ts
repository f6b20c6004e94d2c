import type { OperationHandler } from '../context.js';
import { locationConstraintXml } from '../xml.js';

/**
 * The region the client addressed, which is every bucket's (create-bucket.ts, "Location"); us-east-1 is
 * the empty LocationConstraint S3 sends for it. Clients that look the region up before signing (the
 * minio client) keep signing for the region they asked with.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html
 */
export const getBucketLocation: OperationHandler<'GetBucketLocation'> = async (op, ctx) => {
  await ctx.bucket(op.bucket);
  return { body: locationConstraintXml(ctx.auth.region) };
};
