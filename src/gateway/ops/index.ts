import type { OperationTable } from '../context.js';
import { copyObject } from './copy-object.js';
import { createBucket } from './create-bucket.js';
import { deleteBucket } from './delete-bucket.js';
import { deleteObject } from './delete-object.js';
import { deleteObjects } from './delete-objects.js';
import { getBucketLocation } from './get-bucket-location.js';
import { getBucketVersioning } from './get-bucket-versioning.js';
import { getObject } from './get-object.js';
import { headBucket } from './head-bucket.js';
import { headObject } from './head-object.js';
import { listBuckets } from './list-buckets.js';
import { listObjects } from './list-objects.js';
import { listObjectsV2 } from './list-objects-v2.js';
import { putObject } from './put-object.js';
import { createMultipartUpload } from './create-multipart-upload.js';
import { uploadPart } from './upload-part.js';
import { uploadPartCopy } from './upload-part-copy.js';
import { completeMultipartUpload } from './complete-multipart-upload.js';
import { abortMultipartUpload } from './abort-multipart-upload.js';
import { listParts } from './list-parts.js';
import { listMultipartUploads } from './list-multipart-uploads.js';

/** Every S3 operation the gateway serves, by its AWS name; each handler lives in its own module. */
export const operations: OperationTable = {
  ListBuckets: listBuckets,
  CreateBucket: createBucket,
  HeadBucket: headBucket,
  DeleteBucket: deleteBucket,
  GetBucketLocation: getBucketLocation,
  GetBucketVersioning: getBucketVersioning,
  ListObjects: listObjects,
  ListObjectsV2: listObjectsV2,
  PutObject: putObject,
  GetObject: getObject,
  HeadObject: headObject,
  CopyObject: copyObject,
  DeleteObject: deleteObject,
  DeleteObjects: deleteObjects,
  CreateMultipartUpload: createMultipartUpload,
  UploadPart: uploadPart,
  UploadPartCopy: uploadPartCopy,
  CompleteMultipartUpload: completeMultipartUpload,
  AbortMultipartUpload: abortMultipartUpload,
  ListParts: listParts,
  ListMultipartUploads: listMultipartUploads,
};
