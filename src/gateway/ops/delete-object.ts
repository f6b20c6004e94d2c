import { deleteUnreferenced } from '../../store/blobs.js';
import { deleteObject as deleteObjectRow } from '../../store/objects.js';
import type { OperationHandler } from '../context.js';

/** 204 whether or not the key existed, as S3 answers. https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html */
export const deleteObject: OperationHandler<'DeleteObject'> = async (op, ctx) => {
  const bucket = await ctx.bucket(op.bucket);
  const { unreferenced } = await deleteObjectRow(ctx.deps.db, ctx.account.accountId, bucket.id, op.key);
  await deleteUnreferenced({ db: ctx.deps.db, backend: ctx.deps.backend, logger: ctx.log }, unreferenced);
  return { status: 204 };
};
