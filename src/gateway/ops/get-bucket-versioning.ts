import type { OperationHandler } from '../context.js';
import { versioningConfigurationXml } from '../xml.js';

/**
 * Buckets are never versioned here: the empty configuration S3 answers for a bucket that never was.
 * `aws s3` and rclone read it. https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketVersioning.html
 */
export const getBucketVersioning: OperationHandler<'GetBucketVersioning'> = async (op, ctx) => {
  await ctx.bucket(op.bucket);
  return { body: versioningConfigurationXml() };
};
