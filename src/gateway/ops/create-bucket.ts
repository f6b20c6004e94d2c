import { createPayloadVerifier } from '../../auth/payload.js';
import { createBucket as createAccountBucket } from '../../store/buckets.js';
import { assertValidBucketName } from '../bucket-name.js';
import type { OperationHandler } from '../context.js';
import { S3Error } from '../errors.js';
import { readVerifiedBody } from '../request-body.js';
import { CREATE_BUCKET_MAX_BODY_BYTES, parseCreateBucketConfiguration } from '../xml-input.js';

/**
 * Buckets per account. S3's default quota is 10,000 general purpose buckets per AWS account; a tenant
 * here is one user, and buckets are rows in a shared database, so the cap is lower.
 */
export const MAX_BUCKETS_PER_ACCOUNT = 1000;

/**
 * CreateBucket. Names follow S3's rules but are per account: two accounts may both own
 * `images`, so BucketAlreadyExists never happens and a second create of one's own bucket answers
 * BucketAlreadyOwnedByYou (409), as S3 answers in every region but us-east-1 (which answers 200 there
 * for legacy reasons; 409 tells the client the truth everywhere).
 *
 * Location: the gateway is one location, and the region a client signs with (any is accepted) is the
 * region it addressed, as a regional S3 endpoint is. As S3 documents, a LocationConstraint that names
 * another region is IllegalLocationConstraintException ("The <region> location constraint is
 * incompatible for the region specific endpoint this request was sent to."); one naming the request's
 * region is accepted. Unlike a regional S3 endpoint, no constraint at all is accepted in any region:
 * most S3-compatible clients (the JS SDK, boto3, rclone by default) never send the body, and there is
 * no other region the bucket could have meant. GetBucketLocation answers the request's region.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
 */
export const createBucket: OperationHandler<'CreateBucket'> = async (op, ctx) => {
  assertValidBucketName(op.bucket);
  const payload = createPayloadVerifier(ctx.auth, ctx.headers);
  const body = await readVerifiedBody(ctx.request, payload, CREATE_BUCKET_MAX_BODY_BYTES);
  const { locationConstraint } = parseCreateBucketConfiguration(body);
  if (locationConstraint !== undefined && locationConstraint !== '' && regionOfConstraint(locationConstraint) !== ctx.auth.region) {
    throw new S3Error('IllegalLocationConstraintException', {
      message: `The ${locationConstraint} location constraint is incompatible for the region specific endpoint this request was sent to.`,
    });
  }

  const outcome = await createAccountBucket(ctx.deps.db, ctx.account.accountId, op.bucket, MAX_BUCKETS_PER_ACCOUNT);
  if (outcome === 'exists') throw new S3Error('BucketAlreadyOwnedByYou', { extra: { BucketName: op.bucket } });
  if (outcome === 'too-many') {
    throw new S3Error('TooManyBuckets', { message: `You have attempted to create more buckets than allowed (${MAX_BUCKETS_PER_ACCOUNT}).` });
  }
  return { headers: { location: `/${op.bucket}` } };
};

/** `EU` is S3's legacy name for eu-west-1 (CreateBucketConfiguration, LocationConstraint values). */
function regionOfConstraint(constraint: string): string {
  return constraint === 'EU' ? 'eu-west-1' : constraint;
}
