import type { OperationHandler } from '../context.js';
import { readObject } from './get-object.js';

/** GetObject's answer without the bytes. https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html */
export const headObject: OperationHandler<'HeadObject'> = async (op, ctx) => {
  const read = await readObject(op, ctx);
  return 'object' in read ? read.result : read;
};
