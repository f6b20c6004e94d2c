import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import { bucketFromHost, parseCopySource, route, type RouteRequest, type S3Operation } from './router.js';

const DOMAIN = 's3.example.com';

/** Splits a request line's target by hand: `new URL` would resolve `..` and re-encode the path. */
function request(method: string, target: string, options: { host?: string; headers?: Record<string, string> } = {}): RouteRequest {
  const queryStart = target.indexOf('?');
  return {
    method,
    path: queryStart === -1 ? target : target.slice(0, queryStart),
    query: new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1)),
    headers: options.headers ?? {},
    host: options.host ?? DOMAIN,
  };
}

function routed(method: string, target: string, options?: { host?: string; headers?: Record<string, string> }): S3Operation {
  return route(request(method, target, options), { s3Domain: DOMAIN });
}

function refusal(method: string, target: string, options?: { host?: string; headers?: Record<string, string> }): S3Error {
  try {
    routed(method, target, options);
  } catch (err) {
    if (err instanceof S3Error) return err;
    throw err;
  }
  throw new Error(`${method} ${target} was routed`);
}

const VHOST = { host: 'examplebucket.s3.example.com' };
const COPY = { 'x-amz-copy-source': '/source-bucket/sourceobject' };

/**
 * Requests as the Amazon S3 API reference shows them in each operation's examples (virtual-hosted
 * unless the example is path-style), and what each must route to.
 */
const DOC_EXAMPLES: [string, string, { host?: string; headers?: Record<string, string> }, S3Operation][] = [
  ['GET', '/', {}, { name: 'ListBuckets' }],
  ['PUT', '/', VHOST, { name: 'CreateBucket', bucket: 'examplebucket' }],
  ['PUT', '/examplebucket', {}, { name: 'CreateBucket', bucket: 'examplebucket' }],
  ['HEAD', '/', VHOST, { name: 'HeadBucket', bucket: 'examplebucket' }],
  ['DELETE', '/', VHOST, { name: 'DeleteBucket', bucket: 'examplebucket' }],
  ['GET', '/?location', VHOST, { name: 'GetBucketLocation', bucket: 'examplebucket' }],
  ['GET', '/?versioning', VHOST, { name: 'GetBucketVersioning', bucket: 'examplebucket' }],
  ['GET', '/?prefix=N&marker=Ned&max-keys=40', VHOST, { name: 'ListObjects', bucket: 'examplebucket' }],
  ['GET', '/examplebucket?delimiter=/&prefix=photos/2006/', {}, { name: 'ListObjects', bucket: 'examplebucket' }],
  ['GET', '/?list-type=2', VHOST, { name: 'ListObjectsV2', bucket: 'examplebucket' }],
  ['GET', '/?list-type=2&max-keys=3&prefix=E&start-after=ExampleGuide.pdf', VHOST, { name: 'ListObjectsV2', bucket: 'examplebucket' }],
  ['GET', '/?list-type=2&continuation-token=1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=', VHOST, { name: 'ListObjectsV2', bucket: 'examplebucket' }],
  ['POST', '/?delete', VHOST, { name: 'DeleteObjects', bucket: 'examplebucket' }],
  ['GET', '/?uploads&max-uploads=3', VHOST, { name: 'ListMultipartUploads', bucket: 'examplebucket' }],
  ['PUT', '/my-image.jpg', VHOST, { name: 'PutObject', bucket: 'examplebucket', key: 'my-image.jpg' }],
  ['GET', '/my-image.jpg', VHOST, { name: 'GetObject', bucket: 'examplebucket', key: 'my-image.jpg' }],
  ['GET', '/my-image.jpg?versionId=3/L4kqtJlcpXroDTDmpUMLUo', VHOST, { name: 'GetObject', bucket: 'examplebucket', key: 'my-image.jpg' }],
  ['GET', '/Junk3.txt?response-cache-control=No-cache&response-content-disposition=attachment%3B%20filename%3Dtesting.txt', VHOST, { name: 'GetObject', bucket: 'examplebucket', key: 'Junk3.txt' }],
  ['HEAD', '/my-image.jpg', VHOST, { name: 'HeadObject', bucket: 'examplebucket', key: 'my-image.jpg' }],
  ['DELETE', '/my-second-image.jpg', VHOST, { name: 'DeleteObject', bucket: 'examplebucket', key: 'my-second-image.jpg' }],
  ['PUT', '/my-second-image.jpg', { ...VHOST, headers: { 'x-amz-copy-source': '/bucket/my-image.jpg' } },
    { name: 'CopyObject', bucket: 'examplebucket', key: 'my-second-image.jpg', copySource: { bucket: 'bucket', key: 'my-image.jpg' } }],
  ['POST', '/example-object?uploads', VHOST, { name: 'CreateMultipartUpload', bucket: 'examplebucket', key: 'example-object' }],
  ['PUT', '/my-movie.m2ts?partNumber=1&uploadId=VCVsb2FkIElEIGZvciBlbZZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZR', VHOST,
    { name: 'UploadPart', bucket: 'examplebucket', key: 'my-movie.m2ts', uploadId: 'VCVsb2FkIElEIGZvciBlbZZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZR', partNumber: 1 }],
  ['PUT', '/newobject?partNumber=2&uploadId=VCVsb2FkIElEIGZvciBlbZZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZR', { ...VHOST, headers: COPY },
    { name: 'UploadPartCopy', bucket: 'examplebucket', key: 'newobject', uploadId: 'VCVsb2FkIElEIGZvciBlbZZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZR', partNumber: 2,
      copySource: { bucket: 'source-bucket', key: 'sourceobject' } }],
  ['POST', '/example-object?uploadId=AAAsb2FkIElEIGZvciBlbHZpbmcncyWeeS1tb3ZpZS5tMnRzIRRwbG9hZA', VHOST,
    { name: 'CompleteMultipartUpload', bucket: 'examplebucket', key: 'example-object', uploadId: 'AAAsb2FkIElEIGZvciBlbHZpbmcncyWeeS1tb3ZpZS5tMnRzIRRwbG9hZA' }],
  ['DELETE', '/example-object?uploadId=VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZ', VHOST,
    { name: 'AbortMultipartUpload', bucket: 'examplebucket', key: 'example-object', uploadId: 'VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZ' }],
  ['GET', '/example-object?uploadId=XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&max-parts=2&part-number-marker=1', VHOST,
    { name: 'ListParts', bucket: 'examplebucket', key: 'example-object', uploadId: 'XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA' }],

  // Known but not served: 501 under the AWS name.
  ['PUT', '/?versioning', VHOST, { name: 'NotImplemented', operation: 'PutBucketVersioning', bucket: 'examplebucket' }],
  ['GET', '/?acl', VHOST, { name: 'NotImplemented', operation: 'GetBucketAcl', bucket: 'examplebucket' }],
  ['GET', '/?versions', VHOST, { name: 'NotImplemented', operation: 'ListObjectVersions', bucket: 'examplebucket' }],
  ['GET', '/?cors', VHOST, { name: 'NotImplemented', operation: 'GetBucketCors', bucket: 'examplebucket' }],
  ['PUT', '/?lifecycle', VHOST, { name: 'NotImplemented', operation: 'PutBucketLifecycleConfiguration', bucket: 'examplebucket' }],
  ['DELETE', '/?policy', VHOST, { name: 'NotImplemented', operation: 'DeleteBucketPolicy', bucket: 'examplebucket' }],
  ['GET', '/?website', VHOST, { name: 'NotImplemented', operation: 'GetBucketWebsite', bucket: 'examplebucket' }],
  ['PUT', '/?encryption', VHOST, { name: 'NotImplemented', operation: 'PutBucketEncryption', bucket: 'examplebucket' }],
  ['GET', '/?object-lock', VHOST, { name: 'NotImplemented', operation: 'GetObjectLockConfiguration', bucket: 'examplebucket' }],
  ['GET', '/my-image.jpg?acl', VHOST, { name: 'NotImplemented', operation: 'GetObjectAcl', bucket: 'examplebucket', key: 'my-image.jpg' }],
  ['PUT', '/example-object?tagging', VHOST, { name: 'NotImplemented', operation: 'PutObjectTagging', bucket: 'examplebucket', key: 'example-object' }],
  ['POST', '/object-one.csv?select&select-type=2', VHOST,
    { name: 'NotImplemented', operation: 'SelectObjectContent', bucket: 'examplebucket', key: 'object-one.csv' }],
  ['POST', '/ObjectName?restore&versionId=VersionID', VHOST,
    { name: 'NotImplemented', operation: 'RestoreObject', bucket: 'examplebucket', key: 'ObjectName' }],
  ['GET', '/quotes/nelson?torrent', VHOST, { name: 'NotImplemented', operation: 'GetObjectTorrent', bucket: 'examplebucket', key: 'quotes/nelson' }],
  ['POST', '/', VHOST, { name: 'NotImplemented', operation: 'PostObject', bucket: 'examplebucket' }],
  ['OPTIONS', '/key', VHOST, { name: 'NotImplemented', operation: 'OptionsObject', bucket: 'examplebucket', key: 'key' }],

  // What @aws-sdk/client-s3 v3 and presigned URLs add to the query: ignored.
  ['GET', '/b/k?x-id=GetObject', {}, { name: 'GetObject', bucket: 'b', key: 'k' }],
  ['PUT', '/b/k?x-id=PutObject', {}, { name: 'PutObject', bucket: 'b', key: 'k' }],
  ['GET', '/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=jt%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
    {}, { name: 'GetObject', bucket: 'b', key: 'k' }],
  ['GET', '/b/k?partNumber=2', {}, { name: 'GetObject', bucket: 'b', key: 'k', partNumber: 2 }],
  ['HEAD', '/b/k?partNumber=1', {}, { name: 'HeadObject', bucket: 'b', key: 'k', partNumber: 1 }],
  ['GET', '/b?list-type=2&fetch-owner=true&encoding-type=url', {}, { name: 'ListObjectsV2', bucket: 'b' }],
];

describe('route: AWS documentation examples', () => {
  it.each(DOC_EXAMPLES)('%s %s', (method, target, options, expected) => {
    expect(routed(method, target, options)).toEqual(expected);
  });

  it('routes_the_same_whatever_the_order_of_query_parameters', () => {
    expect(routed('PUT', '/b/k?uploadId=u&partNumber=3')).toEqual(routed('PUT', '/b/k?partNumber=3&uploadId=u'));
    expect(routed('GET', '/b?prefix=p&list-type=2')).toEqual(routed('GET', '/b?list-type=2&prefix=p'));
  });
});

describe('route: bucket and key', () => {
  it.each([
    ['/b/a', 'a'],
    ['/b//a', '/a'],
    ['/b/a//b/../c', 'a//b/../c'],
    ['/b/%2e%2e/x', '../x'],
    ['/b/../etc/passwd', '../etc/passwd'],
    ['/b/a%2Fb', 'a/b'],
    ['/b/a+b', 'a+b'],
    ['/b/a%20b', 'a b'],
    ['/b/%25', '%'],
    ['/b/%E6%97%A5%E6%9C%AC', '日本'],
    ['/b/users/other-id/blobs/x', 'users/other-id/blobs/x'],
    ['/b/trailing/', 'trailing/'],
  ])('path_style_%s_is_key_%j', (target, key) => {
    expect(routed('GET', target)).toEqual({ name: 'GetObject', bucket: 'b', key });
  });

  it('addresses_the_bucket_with_or_without_a_trailing_slash', () => {
    expect(routed('GET', '/b')).toEqual({ name: 'ListObjects', bucket: 'b' });
    expect(routed('GET', '/b/')).toEqual({ name: 'ListObjects', bucket: 'b' });
  });

  it.each([
    ['examplebucket.s3.example.com', 'examplebucket'],
    ['examplebucket.s3.example.com:9000', 'examplebucket'],
    ['my.photos.s3.example.com', 'my.photos'],
    ['ExampleBucket.S3.Example.COM', 'examplebucket'],
    ['examplebucket.s3.example.com.', 'examplebucket'],
  ])('virtual_hosted_%s_is_bucket_%s', (host, bucket) => {
    expect(routed('GET', '//a', { host })).toEqual({ name: 'GetObject', bucket, key: '/a' });
  });

  it.each([['s3.example.com'], ['s3.example.com:9000'], ['localhost:9000'], ['127.0.0.1:9000'], ['[::1]:9000'], ['evils3.example.com']])(
    'host_%s_means_path_style',
    (host) => {
      expect(routed('GET', '/b/k', { host })).toEqual({ name: 'GetObject', bucket: 'b', key: 'k' });
    },
  );

  it('is_path_style_only_without_a_configured_domain', () => {
    const op = route(request('GET', '/b/k', { host: 'examplebucket.s3.example.com' }), { s3Domain: null });
    expect(op).toEqual({ name: 'GetObject', bucket: 'b', key: 'k' });
    expect(bucketFromHost(undefined, DOMAIN)).toBeUndefined();
  });

  it.each([['/api'], ['/api/'], ['/api/v1/files/report.pdf'], ['/%61pi/x']])('leaves_%s_to_the_rest_api', (target) => {
    expect(routed('GET', target)).toEqual({ name: 'NotS3' });
    expect(routed('DELETE', target)).toEqual({ name: 'NotS3' });
  });

  it('treats_api_as_an_ordinary_key_on_a_virtual_hosted_bucket', () => {
    expect(routed('GET', '/api/x', VHOST)).toEqual({ name: 'GetObject', bucket: 'examplebucket', key: 'api/x' });
  });

  it.each([['/b/%ff'], ['/b/%zz'], ['/b/%'], ['/b/%C0%AF'], ['/b/%ED%A0%80'], ['/%ff/k'], ['//k'], ['b/k']])(
    'refuses_%s_with_invalid_uri',
    (target) => {
      expect(refusal('GET', target)).toMatchObject({ code: 'InvalidURI', status: 400 });
    },
  );

  it('accepts_a_key_of_1024_bytes_and_refuses_1025', () => {
    expect(routed('PUT', `/b/${'a'.repeat(1024)}`)).toMatchObject({ name: 'PutObject' });
    expect(refusal('PUT', `/b/${'a'.repeat(1025)}`)).toMatchObject({ code: 'KeyTooLongError', status: 400 });
    // 341 three-byte characters are 1,023 bytes; 342 are 1,026.
    expect(routed('PUT', `/b/${'%E6%97%A5'.repeat(341)}`)).toMatchObject({ name: 'PutObject' });
    expect(refusal('PUT', `/b/${'%E6%97%A5'.repeat(342)}`)).toMatchObject({ code: 'KeyTooLongError', extra: { Size: 1026 } });
  });
});

describe('route: refusals', () => {
  it.each([
    ['PATCH', '/b/k'],
    ['PATCH', '/b'],
    ['PUT', '/'],
    ['DELETE', '/'],
    ['POST', '/b/k'],
    ['GET', '/b/k?uploads'],
    ['HEAD', '/b/k?uploadId=u'],
    ['POST', '/b?uploads'],
    ['DELETE', '/b?location'],
    ['GET', '/b?delete'],
    ['POST', '/b/k?acl'],
    ['PUT', '/b/k?cors'],
    ['GET', '/b/k?location'],
    ['DELETE', '/b/k?versioning'],
  ])('%s_%s_is_method_not_allowed', (method, target) => {
    expect(refusal(method, target)).toMatchObject({ code: 'MethodNotAllowed', status: 405 });
  });

  it('refuses_two_selectors_as_s3_does', () => {
    expect(refusal('GET', '/b?versioning&acl')).toMatchObject({
      code: 'InvalidArgument',
      message: 'Conflicting query string parameters: acl, versioning',
      extra: { ArgumentName: 'ResourceType', ArgumentValue: 'acl' },
    });
    expect(refusal('POST', '/b/k?uploads&uploadId=u')).toMatchObject({
      code: 'InvalidArgument',
      message: 'Conflicting query string parameters: uploadId, uploads',
    });
  });

  it.each([[''], ['0'], ['10001'], ['abc'], ['1.5'], ['-1'], ['000001']])('refuses_part_number_%j', (partNumber) => {
    const target = partNumber === '' ? '/b/k?uploadId=u' : `/b/k?uploadId=u&partNumber=${partNumber}`;
    expect(refusal('PUT', target)).toMatchObject({
      code: 'InvalidArgument',
      message: 'Part number must be an integer between 1 and 10000, inclusive',
      extra: { ArgumentName: 'partNumber', ArgumentValue: partNumber },
    });
  });

  it('accepts_part_numbers_1_and_10000', () => {
    expect(routed('PUT', '/b/k?uploadId=u&partNumber=10000')).toMatchObject({ name: 'UploadPart', partNumber: 10000 });
    expect(routed('GET', '/b/k?partNumber=10000')).toMatchObject({ name: 'GetObject', partNumber: 10000 });
    expect(refusal('GET', '/b/k?partNumber=0')).toMatchObject({ code: 'InvalidArgument' });
  });

  it('refuses_an_unknown_list_type', () => {
    expect(refusal('GET', '/b?list-type=3')).toMatchObject({ code: 'InvalidArgument', extra: { ArgumentName: 'list-type' } });
  });
});

describe('parseCopySource', () => {
  it.each([
    ['source-bucket/sourceobject', { bucket: 'source-bucket', key: 'sourceobject' }],
    ['/source-bucket/sourceobject', { bucket: 'source-bucket', key: 'sourceobject' }],
    ['b/dir/my%20file%2B1.txt', { bucket: 'b', key: 'dir/my file+1.txt' }],
    ['b/a+b', { bucket: 'b', key: 'a+b' }],
    ['b//leading', { bucket: 'b', key: '/leading' }],
    ['b/k?versionId=3/L4kqtJlcpXroDTDmpUMLUo', { bucket: 'b', key: 'k', versionId: '3/L4kqtJlcpXroDTDmpUMLUo' }],
    ['b/%3F?versionId=null', { bucket: 'b', key: '?', versionId: 'null' }],
    ['%2Fb%2Fk', { bucket: 'b', key: 'k' }],
  ])('parses_%j', (value, expected) => {
    expect(parseCopySource(value)).toEqual(expected);
  });

  it.each([['bucket'], ['/bucket/'], ['/bucket'], ['/'], [''], ['b/%ff']])('refuses_%j', (value) => {
    expect(() => parseCopySource(value)).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', extra: { ArgumentName: 'x-amz-copy-source', ArgumentValue: value } }),
    );
  });

  it('refuses_a_source_key_that_is_too_long', () => {
    expect(() => parseCopySource(`b/${'k'.repeat(1025)}`)).toThrow(expect.objectContaining({ code: 'KeyTooLongError' }));
  });

  it('reads_the_header_for_upload_part_copy_and_copy_object', () => {
    const headers = { 'x-amz-copy-source': 'src/a%20b?versionId=v1' };
    expect(routed('PUT', '/b/k', { headers })).toEqual({
      name: 'CopyObject',
      bucket: 'b',
      key: 'k',
      copySource: { bucket: 'src', key: 'a b', versionId: 'v1' },
    });
  });
});
