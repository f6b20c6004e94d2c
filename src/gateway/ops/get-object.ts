import { header, type OperationHandler, type RequestContext, type S3Result } from '../context.js';
import { S3Error } from '../errors.js';
import { applyResponseOverrides, evaluatePreconditions, objectResponseHeaders, parseRange, type ResolvedRange } from '../object-headers.js';
import { quoteEtag } from '../xml.js';
import { objectPartRange } from '../../store/multipart.js';
import { getObjectInNamedBucket, type StoredObject } from '../../store/objects.js';

export interface ObjectRead {
  object: StoredObject;
  range: ResolvedRange | null;
  result: S3Result;
}

/**
 * What GetObject and HeadObject share: find the object, apply conditions and the range, build the headers.
 * Returns the answer without a body; GetObject adds the bytes.
 */
export async function readObject(op: { bucket: string; key: string; partNumber?: number }, ctx: RequestContext): Promise<ObjectRead | S3Result> {
  const object = await getObjectInNamedBucket(ctx.deps.db, ctx.account.accountId, op.bucket, op.key);
  if (!object) {
    // NoSuchBucket comes before NoSuchKey: only a miss pays for the bucket lookup that tells them apart.
    await ctx.bucket(op.bucket);
    throw new S3Error('NoSuchKey', { resource: `/${op.bucket}/${op.key}`, extra: { Key: op.key } });
  }

  // Preconditions come before the range (RFC 9110 section 13.2.2).
  if (evaluatePreconditions(ctx.headers, object) === 304) {
    return { status: 304, headers: { etag: quoteEtag(object.etag), 'last-modified': object.lastModified.toUTCString() } };
  }
  let range = parseRange(header(ctx.headers, 'range'), object.size);
  if (op.partNumber !== undefined) {
    if (header(ctx.headers, 'range') !== undefined) throw new S3Error('InvalidRequest', { message: 'Cannot specify both Range header and partNumber query parameter' });
    // A part of a multipart object is its byte range; a single-part object has only part 1, the whole.
    const part = object.partsCount === null ? null : await objectPartRange(ctx.deps.db, object.id, op.partNumber);
    if (op.partNumber > (object.partsCount ?? 1)) throw new S3Error('InvalidPartNumber');
    range = part;
  }
  // A checksum describes the whole object, so S3 returns none with a part of it (clients would reject it).
  const checksumMode = range === null && header(ctx.headers, 'x-amz-checksum-mode')?.toUpperCase() === 'ENABLED';
  const headers = objectResponseHeaders(object, { checksumMode });
  // A composite checksum ("<checksum of the parts' checksums>-<N>") is not one of the whole object's bytes.
  if (checksumMode && Object.keys(object.checksums).length > 0) {
    headers['x-amz-checksum-type'] = Object.values(object.checksums).some((value) => /-\d+$/.test(value)) ? 'COMPOSITE' : 'FULL_OBJECT';
  }
  if (range) {
    headers['content-length'] = range.end - range.start + 1;
    headers['content-range'] = `bytes ${range.start}-${range.end}/${object.size}`;
  }
  applyResponseOverrides(headers, ctx.query);
  return { object, range, result: { status: range ? 206 : 200, headers } };
}

/** https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html */
export const getObject: OperationHandler<'GetObject'> = async (op, ctx) => {
  const read = await readObject(op, ctx);
  if (!('object' in read)) return read;
  // The body's length is known before a byte is fetched, so the bandwidth quota is checked for all of it
  // first; only the bytes that then reach the client are charged.
  const length = read.range ? read.range.end - read.range.start + 1 : read.object.size;
  const grant = await ctx.deps.bandwidth.admit(ctx.account, length);
  try {
    const { body } = await ctx.deps.backend.get({ key: read.object.backendKey, signal: ctx.signal, ...(read.range && { range: read.range }) });
    return { ...read.result, body: grant.meter(body) };
  } catch (error) {
    grant.release();
    throw error;
  }
};
