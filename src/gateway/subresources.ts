/**
 * The query-string keywords that select an S3 sub-resource ("selectors"), as data for the router.
 * Each maps, per HTTP method, to the AWS operation it names. Operations we serve are routed by
 * router.ts; every other one answers 501 NotImplemented under its AWS name (for logs and metrics).
 * Sources: the Amazon S3 API reference, one page per operation.
 */

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';

type OperationsByMethod = Partial<Readonly<Record<Method, string>>>;

/** Selectors on a bucket (`/bucket?acl`) that name operations we do not serve. */
export const UNSUPPORTED_BUCKET_SELECTORS: Readonly<Record<string, OperationsByMethod>> = {
  accelerate: { GET: 'GetBucketAccelerateConfiguration', PUT: 'PutBucketAccelerateConfiguration' },
  acl: { GET: 'GetBucketAcl', PUT: 'PutBucketAcl' },
  analytics: {
    GET: 'GetBucketAnalyticsConfiguration',
    PUT: 'PutBucketAnalyticsConfiguration',
    DELETE: 'DeleteBucketAnalyticsConfiguration',
  },
  cors: { GET: 'GetBucketCors', PUT: 'PutBucketCors', DELETE: 'DeleteBucketCors' },
  encryption: { GET: 'GetBucketEncryption', PUT: 'PutBucketEncryption', DELETE: 'DeleteBucketEncryption' },
  'intelligent-tiering': {
    GET: 'GetBucketIntelligentTieringConfiguration',
    PUT: 'PutBucketIntelligentTieringConfiguration',
    DELETE: 'DeleteBucketIntelligentTieringConfiguration',
  },
  inventory: {
    GET: 'GetBucketInventoryConfiguration',
    PUT: 'PutBucketInventoryConfiguration',
    DELETE: 'DeleteBucketInventoryConfiguration',
  },
  lifecycle: {
    GET: 'GetBucketLifecycleConfiguration',
    PUT: 'PutBucketLifecycleConfiguration',
    DELETE: 'DeleteBucketLifecycle',
  },
  logging: { GET: 'GetBucketLogging', PUT: 'PutBucketLogging' },
  metadataTable: {
    GET: 'GetBucketMetadataTableConfiguration',
    POST: 'CreateBucketMetadataTableConfiguration',
    DELETE: 'DeleteBucketMetadataTableConfiguration',
  },
  metrics: {
    GET: 'GetBucketMetricsConfiguration',
    PUT: 'PutBucketMetricsConfiguration',
    DELETE: 'DeleteBucketMetricsConfiguration',
  },
  notification: { GET: 'GetBucketNotificationConfiguration', PUT: 'PutBucketNotificationConfiguration' },
  'object-lock': { GET: 'GetObjectLockConfiguration', PUT: 'PutObjectLockConfiguration' },
  ownershipControls: {
    GET: 'GetBucketOwnershipControls',
    PUT: 'PutBucketOwnershipControls',
    DELETE: 'DeleteBucketOwnershipControls',
  },
  policy: { GET: 'GetBucketPolicy', PUT: 'PutBucketPolicy', DELETE: 'DeleteBucketPolicy' },
  policyStatus: { GET: 'GetBucketPolicyStatus' },
  publicAccessBlock: { GET: 'GetPublicAccessBlock', PUT: 'PutPublicAccessBlock', DELETE: 'DeletePublicAccessBlock' },
  replication: { GET: 'GetBucketReplication', PUT: 'PutBucketReplication', DELETE: 'DeleteBucketReplication' },
  requestPayment: { GET: 'GetBucketRequestPayment', PUT: 'PutBucketRequestPayment' },
  tagging: { GET: 'GetBucketTagging', PUT: 'PutBucketTagging', DELETE: 'DeleteBucketTagging' },
  // GET ?versioning is served (router.ts); turning versioning on is not.
  versioning: { PUT: 'PutBucketVersioning' },
  versions: { GET: 'ListObjectVersions' },
  website: { GET: 'GetBucketWebsite', PUT: 'PutBucketWebsite', DELETE: 'DeleteBucketWebsite' },
};

/** Selectors on a bucket that name operations we serve. */
export const SUPPORTED_BUCKET_SELECTORS = ['location', 'uploads', 'delete', 'versioning'] as const;

/** Selectors on an object (`/bucket/key?tagging`) that name operations we do not serve. */
export const UNSUPPORTED_OBJECT_SELECTORS: Readonly<Record<string, OperationsByMethod>> = {
  acl: { GET: 'GetObjectAcl', PUT: 'PutObjectAcl' },
  attributes: { GET: 'GetObjectAttributes' },
  'legal-hold': { GET: 'GetObjectLegalHold', PUT: 'PutObjectLegalHold' },
  restore: { POST: 'RestoreObject' },
  retention: { GET: 'GetObjectRetention', PUT: 'PutObjectRetention' },
  select: { POST: 'SelectObjectContent' },
  tagging: { GET: 'GetObjectTagging', PUT: 'PutObjectTagging', DELETE: 'DeleteObjectTagging' },
  torrent: { GET: 'GetObjectTorrent' },
};

/** Selectors on an object that name operations we serve. */
export const SUPPORTED_OBJECT_SELECTORS = ['uploads', 'uploadId'] as const;

const BUCKET_SELECTORS: ReadonlySet<string> = new Set([
  ...SUPPORTED_BUCKET_SELECTORS,
  ...Object.keys(UNSUPPORTED_BUCKET_SELECTORS),
]);
const OBJECT_SELECTORS: ReadonlySet<string> = new Set([
  ...SUPPORTED_OBJECT_SELECTORS,
  ...Object.keys(UNSUPPORTED_OBJECT_SELECTORS),
]);

/** Every selector present in the query for this kind of resource, sorted as S3 lists them in errors. */
export function selectorsIn(query: URLSearchParams, target: 'bucket' | 'object'): string[] {
  const known = target === 'bucket' ? BUCKET_SELECTORS : OBJECT_SELECTORS;
  return [...new Set(query.keys())].filter((name) => known.has(name)).sort();
}

/** Bucket selectors sent to an object, such as `/bucket/key?cors`: not a thing S3 has. */
export function bucketOnlySelectorsIn(query: URLSearchParams): string[] {
  return [...new Set(query.keys())].filter((name) => BUCKET_SELECTORS.has(name) && !OBJECT_SELECTORS.has(name));
}
