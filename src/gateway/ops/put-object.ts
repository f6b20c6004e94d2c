import { createPayloadVerifier } from '../../auth/payload.js';
import { assertValidObjectKey } from '../bucket-name.js';
import type { OperationHandler } from '../context.js';
import { readObjectHeaders } from '../object-headers.js';
import { putObjectStream } from '../put-pipeline.js';
import { quoteEtag } from '../xml.js';

/**
 * PutObject: the body streams once through signature/checksum verification and hashing to the backend,
 * then one transaction links it into the account's content-addressed store.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
 */
export const putObject: OperationHandler<'PutObject'> = async (op, ctx) => {
  assertValidObjectKey(op.key);
  const bucket = await ctx.bucket(op.bucket);
  const objectHeaders = readObjectHeaders(ctx.headers);
  const payload = createPayloadVerifier(ctx.auth, ctx.headers);
  const algorithm = payload.checksumAlgorithm;

  const stored = await putObjectStream({
    deps: ctx.deps,
    log: ctx.log,
    signal: ctx.signal,
    account: ctx.account,
    source: ctx.request,
    transforms: payload.transforms,
    tap: payload.tap,
    declaredLength: payload.declaredLength,
    ...(ctx.auth.payloadSha256 !== undefined && { claimedSha256: ctx.auth.payloadSha256 }),
    describe: (digests) => ({
      ...objectHeaders,
      bucketId: bucket.id,
      key: op.key,
      etag: digests.md5Hex,
      checksums: algorithm ? { [algorithm]: digests.checksums[algorithm]! } : {},
      partsCount: null,
    }),
  });

  return {
    headers: {
      etag: quoteEtag(stored.object.etag),
      ...(algorithm && { [`x-amz-checksum-${algorithm.toLowerCase()}`]: stored.digests.checksums[algorithm] }),
    },
  };
};
