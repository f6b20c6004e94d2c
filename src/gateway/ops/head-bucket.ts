import type { OperationHandler } from '../context.js';

/**
 * 200 for the account's own bucket; NoSuchBucket (404, no body on HEAD) for any other name, including
 * a bucket another account owns. https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
 */
export const headBucket: OperationHandler<'HeadBucket'> = async (op, ctx) => {
  await ctx.bucket(op.bucket);
  // The bucket's region is the one the client addressed (create-bucket.ts, "Location").
  return { headers: { 'x-amz-bucket-region': ctx.auth.region } };
};
