/**
 * Decides which S3 operation a request is, from the method, the bucket and key (path-style or
 * virtual-hosted addressing), the query's sub-resource selectors and one deciding header
 * (`x-amz-copy-source`). Every decision is explicit below or in subresources.ts; nothing depends on
 * the order anything was registered in.
 *
 * Decisions:
 * - `/api` and `/api/...` (path-style) answer `{ name: 'NotS3' }`: that path is the tenant REST API, and
 *   the bucket name is reserved. The caller normally dispatches `/api/` before routing; this is the
 *   second line. On a virtual-hosted bucket, `/api/x` is just the key `api/x`.
 * - Two selectors in one query (`?uploads&uploadId=1`, `?acl&tagging`) answer InvalidArgument
 *   "Conflicting query string parameters", as S3 does.
 * - A bucket-only selector sent to an object (`/bucket/key?cors`) answers MethodNotAllowed rather than
 *   being ignored, so `PUT /bucket/key?cors` can never overwrite an object with a CORS document.
 * - Known selectors we do not serve answer `{ name: 'NotImplemented', operation }` with the AWS name.
 *   The one default we serve is GetBucketVersioning (an empty configuration): `aws s3` and rclone read it.
 *   Bucket and object ACLs stay NotImplemented for now.
 * - The key is the rest of the path after the bucket, percent-decoded once and kept exactly (`//`, a
 *   leading `/`, `..`, `%2F`). A malformed escape or invalid UTF-8 answers InvalidURI, as S3 does for a
 *   URI it cannot parse. Keys longer than 1,024 bytes answer KeyTooLongError.
 * - Bucket names are not validated here: CreateBucket validates the new name, and any other operation
 *   on a name that cannot exist answers NoSuchBucket.
 */
import { assertValidObjectKey } from './bucket-name.js';
import { S3Error } from './errors.js';
import {
  UNSUPPORTED_BUCKET_SELECTORS,
  UNSUPPORTED_OBJECT_SELECTORS,
  bucketOnlySelectorsIn,
  selectorsIn,
  type Method,
} from './subresources.js';

export interface RouteRequest {
  method: string;
  /** The request-target's path as received: percent-encoded, without the query string. */
  path: string;
  query: URLSearchParams;
  /** Header names in lower case, as Node gives them. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The Host header, with or without a port. */
  host: string | undefined;
}

export interface RouteOptions {
  /** Base domain for virtual-hosted addressing (`<bucket>.<s3Domain>`); null for path-style only. */
  s3Domain: string | null;
}

export interface CopySource {
  bucket: string;
  key: string;
  versionId?: string;
}

type BucketOperation<Name extends string> = { name: Name; bucket: string };
type ObjectOperation<Name extends string> = { name: Name; bucket: string; key: string };
type UploadOperation<Name extends string> = ObjectOperation<Name> & { uploadId: string };

export type S3Operation =
  | { name: 'NotS3' }
  | { name: 'ListBuckets' }
  | BucketOperation<'CreateBucket'>
  | BucketOperation<'HeadBucket'>
  | BucketOperation<'DeleteBucket'>
  | BucketOperation<'GetBucketLocation'>
  | BucketOperation<'GetBucketVersioning'>
  | BucketOperation<'ListObjects'>
  | BucketOperation<'ListObjectsV2'>
  | BucketOperation<'DeleteObjects'>
  | BucketOperation<'ListMultipartUploads'>
  | ObjectOperation<'PutObject'>
  /** `partNumber` (GET ?partNumber=N) is given when asked; for a single-part object S3 treats 1 as the whole. */
  | (ObjectOperation<'GetObject'> & { partNumber?: number })
  | (ObjectOperation<'HeadObject'> & { partNumber?: number })
  | ObjectOperation<'DeleteObject'>
  | (ObjectOperation<'CopyObject'> & { copySource: CopySource })
  | ObjectOperation<'CreateMultipartUpload'>
  | (UploadOperation<'UploadPart'> & { partNumber: number })
  | (UploadOperation<'UploadPartCopy'> & { partNumber: number; copySource: CopySource })
  | UploadOperation<'CompleteMultipartUpload'>
  | UploadOperation<'AbortMultipartUpload'>
  | UploadOperation<'ListParts'>
  /** `operation` is the AWS name (GetBucketAcl, SelectObjectContent...), for the log line and metrics. */
  | { name: 'NotImplemented'; operation: string; bucket?: string; key?: string };

export type S3OperationName = S3Operation['name'];

type BucketOperationName = Extract<S3Operation, { bucket: string; key?: never }>['name'];

/** Bucket selectors we serve, by method. */
const SUPPORTED_BUCKET_SELECTORS: Readonly<Record<string, Partial<Record<Method, BucketOperationName>>>> = {
  location: { GET: 'GetBucketLocation' },
  uploads: { GET: 'ListMultipartUploads' },
  delete: { POST: 'DeleteObjects' },
  versioning: { GET: 'GetBucketVersioning' },
};

const METHODS: ReadonlySet<string> = new Set<Method>(['GET', 'HEAD', 'PUT', 'POST', 'DELETE']);

/** The first path segment the tenant REST API owns on the gateway listener. */
const REST_API_SEGMENT = 'api';

const MAX_PART_NUMBER = 10_000;

interface Target {
  bucket?: string;
  key?: string;
}

export function route(req: RouteRequest, opts: RouteOptions): S3Operation {
  const target = resolveTarget(req, opts);
  if (target === 'NotS3') return { name: 'NotS3' };
  const method = req.method.toUpperCase();
  if (!isMethod(method)) {
    // A CORS preflight: S3 answers it from the bucket's CORS configuration, which we do not keep.
    if (method === 'OPTIONS') return { name: 'NotImplemented', operation: 'OptionsObject', ...target };
    throw new S3Error('MethodNotAllowed');
  }
  if (target.bucket === undefined) {
    if (method === 'GET') return { name: 'ListBuckets' };
    throw new S3Error('MethodNotAllowed');
  }
  if (target.key === undefined) return routeBucket(method, target.bucket, req);
  return routeObject(method, target.bucket, target.key, req);
}

function isMethod(method: string): method is Method {
  return METHODS.has(method);
}

function routeBucket(method: Method, bucket: string, req: RouteRequest): S3Operation {
  const selectors = selectorsIn(req.query, 'bucket');
  if (selectors.length > 1) throw conflictingSelectors(selectors);
  const selector = selectors[0];
  if (selector === undefined) {
    switch (method) {
      case 'GET':
        return listObjects(bucket, req.query);
      case 'HEAD':
        return { name: 'HeadBucket', bucket };
      case 'PUT':
        return { name: 'CreateBucket', bucket };
      case 'DELETE':
        return { name: 'DeleteBucket', bucket };
      case 'POST':
        // Browser-form uploads (POST Object) with a signed policy document.
        return { name: 'NotImplemented', operation: 'PostObject', bucket };
    }
  }
  const served = SUPPORTED_BUCKET_SELECTORS[selector]?.[method];
  if (served !== undefined) return { name: served, bucket };
  const unserved = UNSUPPORTED_BUCKET_SELECTORS[selector]?.[method];
  if (unserved !== undefined) return { name: 'NotImplemented', operation: unserved, bucket };
  throw new S3Error('MethodNotAllowed');
}

function listObjects(bucket: string, query: URLSearchParams): S3Operation {
  const listType = query.get('list-type');
  if (listType === null) return { name: 'ListObjects', bucket };
  if (listType === '2') return { name: 'ListObjectsV2', bucket };
  throw new S3Error('InvalidArgument', {
    message: 'Invalid List Type specified',
    extra: { ArgumentName: 'list-type', ArgumentValue: listType },
  });
}

function routeObject(method: Method, bucket: string, key: string, req: RouteRequest): S3Operation {
  assertValidObjectKey(key);
  if (bucketOnlySelectorsIn(req.query).length > 0) throw new S3Error('MethodNotAllowed');
  const selectors = selectorsIn(req.query, 'object');
  if (selectors.length > 1) throw conflictingSelectors(selectors);
  const selector = selectors[0];

  if (selector === undefined) {
    switch (method) {
      case 'GET':
      case 'HEAD': {
        const name = method === 'GET' ? 'GetObject' : 'HeadObject';
        const partNumber = req.query.get('partNumber');
        if (partNumber === null) return { name, bucket, key };
        return { name, bucket, key, partNumber: parsePartNumber(partNumber) };
      }
      case 'PUT': {
        const copySource = headerValue(req, 'x-amz-copy-source');
        if (copySource === undefined) return { name: 'PutObject', bucket, key };
        return { name: 'CopyObject', bucket, key, copySource: parseCopySource(copySource) };
      }
      case 'DELETE':
        return { name: 'DeleteObject', bucket, key };
      case 'POST':
        throw new S3Error('MethodNotAllowed');
    }
  }

  if (selector === 'uploads') {
    if (method === 'POST') return { name: 'CreateMultipartUpload', bucket, key };
    throw new S3Error('MethodNotAllowed');
  }

  if (selector === 'uploadId') {
    const uploadId = req.query.get('uploadId') ?? '';
    switch (method) {
      case 'PUT': {
        const partNumber = parsePartNumber(req.query.get('partNumber') ?? '');
        const copySource = headerValue(req, 'x-amz-copy-source');
        if (copySource === undefined) return { name: 'UploadPart', bucket, key, uploadId, partNumber };
        return { name: 'UploadPartCopy', bucket, key, uploadId, partNumber, copySource: parseCopySource(copySource) };
      }
      case 'GET':
        return { name: 'ListParts', bucket, key, uploadId };
      case 'POST':
        return { name: 'CompleteMultipartUpload', bucket, key, uploadId };
      case 'DELETE':
        return { name: 'AbortMultipartUpload', bucket, key, uploadId };
      case 'HEAD':
        throw new S3Error('MethodNotAllowed');
    }
  }

  const unserved = UNSUPPORTED_OBJECT_SELECTORS[selector]?.[method];
  if (unserved !== undefined) return { name: 'NotImplemented', operation: unserved, bucket, key };
  throw new S3Error('MethodNotAllowed');
}

function conflictingSelectors(selectors: readonly string[]): S3Error {
  return new S3Error('InvalidArgument', {
    message: `Conflicting query string parameters: ${selectors.join(', ')}`,
    extra: { ArgumentName: 'ResourceType', ArgumentValue: selectors[0] ?? '' },
  });
}

/** S3's answer to a part number outside 1..10,000, for UploadPart and for GetObject's `partNumber`. */
function parsePartNumber(text: string): number {
  const partNumber = /^[0-9]{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (partNumber >= 1 && partNumber <= MAX_PART_NUMBER) return partNumber;
  throw new S3Error('InvalidArgument', {
    message: `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
    extra: { ArgumentName: 'partNumber', ArgumentValue: text },
  });
}

function headerValue(req: RouteRequest, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : value?.[0];
}

// ------------------------------------------------------------------------------------- bucket and key

function resolveTarget(req: RouteRequest, opts: RouteOptions): Target | 'NotS3' {
  const queryStart = req.path.indexOf('?');
  const path = queryStart === -1 ? req.path : req.path.slice(0, queryStart);
  if (path === '' || path === '/') {
    const bucket = bucketFromHost(req.host, opts.s3Domain);
    return bucket === undefined ? {} : { bucket };
  }
  if (!path.startsWith('/')) throw new S3Error('InvalidURI');

  const hostBucket = bucketFromHost(req.host, opts.s3Domain);
  if (hostBucket !== undefined) return { bucket: hostBucket, key: percentDecode(path.slice(1)) };

  const rest = path.slice(1);
  const slash = rest.indexOf('/');
  const bucket = percentDecode(slash === -1 ? rest : rest.slice(0, slash));
  if (bucket === '') throw new S3Error('InvalidURI'); // `//key`: a key with no bucket before it
  if (bucket === REST_API_SEGMENT) return 'NotS3';
  // `/bucket` and `/bucket/` both address the bucket itself.
  const rawKey = slash === -1 ? '' : rest.slice(slash + 1);
  return rawKey === '' ? { bucket } : { bucket, key: percentDecode(rawKey) };
}

/**
 * The bucket of a virtual-hosted request: `photos.s3.example.com[:port]` with s3Domain `s3.example.com`
 * gives `photos` (dots allowed: `my.photos.s3.example.com` gives `my.photos`). Any other host, including
 * the bare domain, an IP address or localhost, means path-style.
 */
export function bucketFromHost(host: string | undefined, s3Domain: string | null): string | undefined {
  if (host === undefined || s3Domain === null || s3Domain === '') return undefined;
  let hostname = host.trim().toLowerCase();
  if (hostname.startsWith('[')) return undefined; // an IPv6 literal
  const portStart = hostname.lastIndexOf(':');
  if (portStart !== -1) hostname = hostname.slice(0, portStart);
  hostname = hostname.replace(/\.$/, ''); // a fully qualified name's trailing dot
  const suffix = `.${s3Domain.toLowerCase().replace(/\.$/, '')}`;
  if (hostname.length <= suffix.length || !hostname.endsWith(suffix)) return undefined;
  return hostname.slice(0, -suffix.length);
}

/** Percent-decodes once; `+` stays `+` in a path. decodeURIComponent rejects invalid UTF-8 (and overlongs). */
function percentDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new S3Error('InvalidURI');
  }
}

/**
 * `x-amz-copy-source`: `[/]bucket/key[?versionId=id]`, URL-encoded ("The value must be URL-encoded",
 * CopyObject API reference).
 */
export function parseCopySource(value: string): CopySource {
  const queryStart = value.indexOf('?');
  const encodedPath = queryStart === -1 ? value : value.slice(0, queryStart);
  let path: string;
  try {
    path = decodeURIComponent(encodedPath);
  } catch {
    throw invalidCopySource(value);
  }
  if (path.startsWith('/')) path = path.slice(1);
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1) throw invalidCopySource(value);
  const bucket = path.slice(0, slash);
  const key = path.slice(slash + 1);
  assertValidObjectKey(key);
  const versionId = queryStart === -1 ? null : new URLSearchParams(value.slice(queryStart + 1)).get('versionId');
  return versionId === null ? { bucket, key } : { bucket, key, versionId };
}

function invalidCopySource(value: string): S3Error {
  return new S3Error('InvalidArgument', {
    message: 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
    extra: { ArgumentName: 'x-amz-copy-source', ArgumentValue: value },
  });
}
