import { listObjectPage } from '../../store/listing.js';
import type { OperationHandler } from '../context.js';
import { ownerOf, parseEncodingType, parseMaxKeys } from '../list-query.js';
import { listBucketResultV1Xml } from '../xml.js';

/**
 * ListObjects (v1): `marker` is the position. NextMarker is sent only for a truncated listing with a
 * delimiter; without one, clients continue from the last Key, as the API reference tells them to.
 * Version 1 always lists owners. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjects.html
 */
export const listObjects: OperationHandler<'ListObjects'> = async (op, ctx) => {
  const prefix = ctx.query.get('prefix') ?? '';
  const delimiter = ctx.query.get('delimiter') ?? '';
  const marker = ctx.query.get('marker') ?? '';
  const maxKeys = parseMaxKeys(ctx.query);
  const encodingType = parseEncodingType(ctx.query);
  const bucket = await ctx.bucket(op.bucket);

  const page = await listObjectPage(ctx.deps.db, { bucketId: bucket.id, prefix, delimiter, after: marker, maxKeys });
  const owner = ownerOf(ctx.account);
  return {
    body: listBucketResultV1Xml({
      bucket: op.bucket,
      prefix,
      marker,
      ...(page.isTruncated && delimiter !== '' && { nextMarker: page.lastEntry }),
      maxKeys,
      ...(delimiter !== '' && { delimiter }),
      isTruncated: page.isTruncated,
      ...(encodingType && { encodingType }),
      contents: page.contents.map((object) => ({ ...object, owner })),
      commonPrefixes: page.commonPrefixes,
    }),
  };
};
