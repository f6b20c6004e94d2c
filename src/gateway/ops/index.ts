import type { OperationTable } from '../context.js';
import { deleteObject } from './delete-object.js';
import { getObject } from './get-object.js';
import { headObject } from './head-object.js';
import { putObject } from './put-object.js';

/** Every S3 operation the gateway serves, by its AWS name; each handler lives in its own module. */
export const operations: OperationTable = {
  PutObject: putObject,
  GetObject: getObject,
  HeadObject: headObject,
  DeleteObject: deleteObject,
};
