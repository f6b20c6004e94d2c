import { setTimeout as sleep } from 'node:timers/promises';
import { findUpload, type MultipartUpload } from '../store/multipart.js';
import type { RequestContext } from './context.js';
import { S3Error } from './errors.js';

/** What the multipart operations share: finding the upload a request names, and their query arguments. */

/** How long a request waits for a CompleteMultipartUpload of the same upload (a client's retry) to end. */
const COMPLETION_WAIT_MS = 30_000;

export function noSuchUpload(uploadId: string): S3Error {
  return new S3Error('NoSuchUpload', { extra: { UploadId: uploadId } });
}

export interface UploadAddress {
  bucket: string;
  key: string;
  uploadId: string;
}

async function findAddressed(ctx: RequestContext, op: UploadAddress): Promise<MultipartUpload | null> {
  const bucket = await ctx.bucket(op.bucket);
  return findUpload(ctx.deps.db, { accountId: ctx.account.accountId, bucketId: bucket.id, key: op.key, uploadId: op.uploadId });
}

/** The open upload a request names, or NoSuchUpload: also for an UploadId of another key, bucket or account. */
export async function findOpenUpload(ctx: RequestContext, op: UploadAddress): Promise<MultipartUpload> {
  const upload = await findAddressed(ctx, op);
  if (upload?.state !== 'open') throw noSuchUpload(op.uploadId);
  return upload;
}

/**
 * The upload a request names once no CompleteMultipartUpload of it is in progress (null when there is
 * none): a Complete retried by a client that gave up waiting, or an abort racing one, is answered after
 * the first Complete has ended, by what it ended in. SlowDown if it takes longer than COMPLETION_WAIT_MS.
 */
export async function findSettledUpload(ctx: RequestContext, op: UploadAddress): Promise<MultipartUpload | null> {
  const deadline = Date.now() + COMPLETION_WAIT_MS;
  for (;;) {
    const upload = await findAddressed(ctx, op);
    if (upload?.state !== 'completing') return upload;
    if (Date.now() > deadline) {
      throw new S3Error('SlowDown', { message: 'This upload is being completed by another request; retry shortly.', headers: { 'Retry-After': '5' } });
    }
    await sleep(200, undefined, { signal: ctx.signal });
  }
}

/**
 * A paging argument (`max-parts`, `part-number-marker`, `max-uploads`): absent gives `fallback`; S3 takes
 * a 32-bit signed integer and refuses anything else, negatives included, with this InvalidArgument.
 */
export function integerArgument(query: URLSearchParams, name: string, fallback: number): number {
  const text = query.get(name);
  if (text === null) return fallback;
  const value = /^[0-9]{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value <= 2 ** 31 - 1)) {
    throw new S3Error('InvalidArgument', {
      message: `Argument ${name} must be an integer between 0 and 2147483647`,
      extra: { ArgumentName: name, ArgumentValue: text },
    });
  }
  return value;
}
