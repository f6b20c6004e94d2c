/**
 * The builders' documents as the real @aws-sdk/client-s3 reads them: element names, nesting and types
 * must come out as the SDK's own model says: the real SDK, not our idea of it.
 */
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3Error } from './errors.js';
import {
  completeMultipartUploadResultXml,
  copyObjectResultXml,
  copyPartResultXml,
  deleteResultXml,
  errorXml,
  initiateMultipartUploadResultXml,
  listAllMyBucketsResultXml,
  listBucketResultV1Xml,
  listBucketResultV2Xml,
  listMultipartUploadsResultXml,
  listPartsResultXml,
  locationConstraintXml,
  versioningConfigurationXml,
  type XmlDoc,
} from './xml.js';

const T1 = new Date('2026-01-02T03:04:05.678Z');
const OWNER = { id: 'acct-1', displayName: 'alice' };

/** A client whose every request is answered with `doc` and `status`, never touching the network. */
function clientAnswering(doc: XmlDoc, status = 200, options: { maxAttempts?: number; onRequest?: () => void } = {}): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint: 'http://s3.example.com',
    forcePathStyle: true,
    credentials: { accessKeyId: 'jt_test', secretAccessKey: 'jts_test' },
    maxAttempts: options.maxAttempts ?? 1,
    requestHandler: {
      handle: async () => {
        options.onRequest?.();
        return {
          response: {
            statusCode: status,
            headers: { 'content-type': doc.contentType, 'x-amz-request-id': 'REQ1' },
            body: Readable.from([Buffer.from(doc.body, 'utf8')]),
          },
        };
      },
    },
  });
}

describe('documents as @aws-sdk/client-s3 reads them', () => {
  it('list_buckets', async () => {
    const doc = listAllMyBucketsResultXml({ owner: OWNER, buckets: [{ name: 'images', creationDate: T1 }] });
    const out = await clientAnswering(doc).send(new ListBucketsCommand({}));
    expect(out.Owner).toEqual({ ID: 'acct-1', DisplayName: 'alice' });
    expect(out.Buckets).toEqual([{ Name: 'images', CreationDate: T1 }]);
  });

  it('list_objects_v2', async () => {
    const doc = listBucketResultV2Xml({
      bucket: 'b',
      prefix: 'p/',
      delimiter: '/',
      maxKeys: 2,
      isTruncated: true,
      nextContinuationToken: 'next+/=',
      contents: [{ key: 'p/a&b "c"', lastModified: T1, etag: 'abc', size: 5 }],
      commonPrefixes: ['p/d/'],
    });
    const out = await clientAnswering(doc).send(new ListObjectsV2Command({ Bucket: 'b' }));
    expect(out).toMatchObject({
      Name: 'b',
      Prefix: 'p/',
      Delimiter: '/',
      MaxKeys: 2,
      KeyCount: 2,
      IsTruncated: true,
      NextContinuationToken: 'next+/=',
      Contents: [{ Key: 'p/a&b "c"', LastModified: T1, ETag: '"abc"', Size: 5, StorageClass: 'STANDARD' }],
      CommonPrefixes: [{ Prefix: 'p/d/' }],
    });
  });

  it('list_objects_v1_with_owner_and_next_marker', async () => {
    const doc = listBucketResultV1Xml({
      bucket: 'b',
      prefix: '',
      delimiter: '/',
      marker: '',
      nextMarker: 'k',
      maxKeys: 1,
      isTruncated: true,
      contents: [{ key: 'k', lastModified: T1, etag: 'e', size: 1, owner: OWNER }],
      commonPrefixes: [],
    });
    const out = await clientAnswering(doc).send(new ListObjectsCommand({ Bucket: 'b' }));
    expect(out).toMatchObject({ Marker: '', NextMarker: 'k', IsTruncated: true, Contents: [{ Key: 'k', Owner: { ID: 'acct-1' } }] });
  });

  it('error_with_code_message_and_status', async () => {
    const doc = errorXml(new S3Error('NoSuchKey', { extra: { Key: 'k' } }), { requestId: 'REQ1', resource: '/b/k' });
    const failure = await clientAnswering(doc, 404)
      .send(new GetObjectCommand({ Bucket: 'b', Key: 'k' }))
      .catch((err: unknown) => err);
    expect(failure).toMatchObject({ name: 'NoSuchKey', message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
  });

  it('slow_down_is_retried_by_the_sdk', async () => {
    const doc = errorXml(new S3Error('SlowDown'), { requestId: 'REQ1' });
    let requests = 0;
    const client = clientAnswering(doc, 503, { maxAttempts: 2, onRequest: () => (requests += 1) });
    const failure = await client.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' })).catch((err: unknown) => err);
    expect(failure).toMatchObject({ name: 'SlowDown', $metadata: { httpStatusCode: 503, attempts: 2 } });
    expect(requests).toBe(2);
  }, 20_000);

  it('delete_objects', async () => {
    const doc = deleteResultXml({
      quiet: false,
      outcomes: [{ key: 'a' }, { key: 'b', error: { code: 'AccessDenied', message: 'Access Denied' } }],
    });
    const out = await clientAnswering(doc).send(
      new DeleteObjectsCommand({ Bucket: 'b', Delete: { Objects: [{ Key: 'a' }, { Key: 'b' }] } }),
    );
    expect(out.Deleted).toEqual([{ Key: 'a' }]);
    expect(out.Errors).toEqual([{ Key: 'b', Code: 'AccessDenied', Message: 'Access Denied' }]);
  });

  it('create_and_complete_multipart_upload', async () => {
    const created = await clientAnswering(initiateMultipartUploadResultXml({ bucket: 'b', key: 'k', uploadId: 'u1' })).send(
      new CreateMultipartUploadCommand({ Bucket: 'b', Key: 'k' }),
    );
    expect(created).toMatchObject({ Bucket: 'b', Key: 'k', UploadId: 'u1' });

    const doc = completeMultipartUploadResultXml({
      location: 'http://s3.example.com/b/k',
      bucket: 'b',
      key: 'k',
      etag: 'abc-2',
      checksums: { crc32: 'AAAAAA==' },
      checksumType: 'COMPOSITE',
    });
    const completed = await clientAnswering(doc).send(
      new CompleteMultipartUploadCommand({ Bucket: 'b', Key: 'k', UploadId: 'u1', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"e"' }] } }),
    );
    expect(completed).toMatchObject({
      Location: 'http://s3.example.com/b/k',
      Bucket: 'b',
      Key: 'k',
      ETag: '"abc-2"',
      ChecksumCRC32: 'AAAAAA==',
      ChecksumType: 'COMPOSITE',
    });
  });

  it('list_parts', async () => {
    const doc = listPartsResultXml({
      bucket: 'b',
      key: 'k',
      uploadId: 'u1',
      initiator: OWNER,
      owner: OWNER,
      partNumberMarker: 0,
      nextPartNumberMarker: 2,
      maxParts: 2,
      isTruncated: true,
      parts: [{ partNumber: 2, lastModified: T1, etag: 'e2', size: 5242880, checksums: { crc32c: 'K==' } }],
    });
    const out = await clientAnswering(doc).send(new ListPartsCommand({ Bucket: 'b', Key: 'k', UploadId: 'u1' }));
    expect(out).toMatchObject({
      UploadId: 'u1',
      Initiator: { ID: 'acct-1' },
      StorageClass: 'STANDARD',
      MaxParts: 2,
      IsTruncated: true,
      Parts: [{ PartNumber: 2, LastModified: T1, ETag: '"e2"', Size: 5242880, ChecksumCRC32C: 'K==' }],
    });
    expect(String(out.NextPartNumberMarker)).toBe('2');
  });

  it('list_multipart_uploads', async () => {
    const doc = listMultipartUploadsResultXml({
      bucket: 'b',
      keyMarker: '',
      uploadIdMarker: '',
      prefix: '',
      delimiter: '/',
      maxUploads: 1000,
      isTruncated: false,
      uploads: [{ key: 'k', uploadId: 'u1', initiator: OWNER, owner: OWNER, initiated: T1 }],
      commonPrefixes: ['d/'],
    });
    const out = await clientAnswering(doc).send(new ListMultipartUploadsCommand({ Bucket: 'b' }));
    expect(out).toMatchObject({
      Bucket: 'b',
      MaxUploads: 1000,
      IsTruncated: false,
      Uploads: [{ Key: 'k', UploadId: 'u1', Initiated: T1, StorageClass: 'STANDARD', Owner: { ID: 'acct-1' } }],
      CommonPrefixes: [{ Prefix: 'd/' }],
    });
  });

  it('copy_object_and_upload_part_copy', async () => {
    const copied = await clientAnswering(copyObjectResultXml({ lastModified: T1, etag: 'e' })).send(
      new CopyObjectCommand({ Bucket: 'b', Key: 'k2', CopySource: 'b/k' }),
    );
    expect(copied.CopyObjectResult).toMatchObject({ ETag: '"e"', LastModified: T1 });
    const partCopied = await clientAnswering(copyPartResultXml({ lastModified: T1, etag: 'p' })).send(
      new UploadPartCopyCommand({ Bucket: 'b', Key: 'k2', CopySource: 'b/k', UploadId: 'u1', PartNumber: 1 }),
    );
    expect(partCopied.CopyPartResult).toMatchObject({ ETag: '"p"', LastModified: T1 });
  });

  it('bucket_location_and_versioning', async () => {
    const located = await clientAnswering(locationConstraintXml('eu-west-1')).send(new GetBucketLocationCommand({ Bucket: 'b' }));
    expect(located.LocationConstraint).toBe('eu-west-1');
    const usEast = await clientAnswering(locationConstraintXml('us-east-1')).send(new GetBucketLocationCommand({ Bucket: 'b' }));
    expect(usEast.LocationConstraint ?? '').toBe('');
    const versioning = await clientAnswering(versioningConfigurationXml()).send(new GetBucketVersioningCommand({ Bucket: 'b' }));
    expect(versioning.Status).toBeUndefined();
  });
});
