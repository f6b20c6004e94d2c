import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount } from '../helpers/admin.js';
import { KEYS, createWorkspace, curlGet, fileSlice, printGatewayErrorsOnFailure, sha256File, uniqueBucket, type Workspace } from '../helpers/clients.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** A copy source as the SDK wants it: URL-encoded, `/` kept between segments. */
const copySource = (bucket: string, key: string) => `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

/**
 * @aws-sdk/client-s3 at its latest version and default settings: bodies go aws-chunked with a CRC32
 * trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER) and responses' checksums are validated when present.
 */
describe('@aws-sdk/client-s3 at its defaults against the gateway', () => {
  let server: TestServer;
  let workspace: Workspace;
  let s3: S3Client;
  const bucket = uniqueBucket('sdk');
  const crc32s = new Map<string, string | undefined>();

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    workspace = await createWorkspace('sdk');
    s3 = s3Client(server, account);
  });
  afterAll(async () => {
    s3?.destroy();
    await workspace?.cleanup();
    await server?.close();
  });

  it('creates a bucket, which HeadBucket finds and ListBuckets shows beside the default one', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    expect((await s3.send(new HeadBucketCommand({ Bucket: bucket }))).$metadata.httpStatusCode).toBe(200);
    const listed = await s3.send(new ListBucketsCommand({}));
    expect(listed.Buckets?.map((b) => b.Name)).toEqual(expect.arrayContaining(['default', bucket]));
  });

  it('puts a small object from a buffer and a 20 MiB one from a file stream, with the quoted MD5 as ETag', async () => {
    const uploads = [
      { key: KEYS.small, file: workspace.small, body: await readFile(workspace.small.path) },
      { key: KEYS.big, file: workspace.big, body: createReadStream(workspace.big.path) },
      { key: KEYS.outside, file: workspace.small, body: await readFile(workspace.small.path) },
    ];
    for (const { key, file, body } of uploads) {
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: file.size, ContentType: 'application/x-test' }));
      expect(put.ETag).toBe(`"${file.md5}"`);
      // The SDK's default CRC32 trailer, verified and echoed back.
      expect(put.ChecksumCRC32).toMatch(/^[A-Za-z0-9+/]{6}==$/);
      crc32s.set(key, put.ChecksumCRC32);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ETag).toBe(`"${file.md5}"`);
      expect(head.ContentLength).toBe(file.size);
    }
  });

  it('lists with a prefix and a delimiter', async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'docs/', Delimiter: '/' }));
    expect(listed.Contents?.map((o) => [o.Key, o.Size, o.ETag])).toEqual([[KEYS.small, workspace.small.size, `"${workspace.small.md5}"`]]);
    expect(listed.CommonPrefixes).toEqual([{ Prefix: 'docs/nested/' }]);
    expect(listed.KeyCount).toBe(2);
  });

  it('gets both objects back byte for byte, with the ETag and the stored CRC32', async () => {
    for (const [key, file] of [[KEYS.small, workspace.small], [KEYS.big, workspace.big]] as const) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      expect(got.ETag).toBe(`"${file.md5}"`);
      expect(got.ChecksumCRC32).toBe(crc32s.get(key));
      const out = workspace.out('get.bin');
      await pipeline(got.Body as Readable, createWriteStream(out));
      expect(await sha256File(out)).toBe(file.sha256);
    }
  });

  it('gets a byte range of the 20 MiB object', async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: KEYS.big, Range: 'bytes=5000000-5999999' }));
    expect(got.$metadata.httpStatusCode).toBe(206);
    expect(got.ContentRange).toBe(`bytes 5000000-5999999/${workspace.big.size}`);
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(await fileSlice(workspace.big, 5_000_000, 1_000_000))).toBe(true);
  });

  it('copies an object within the bucket', async () => {
    const copied = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: KEYS.copy, CopySource: copySource(bucket, KEYS.small) }));
    expect(copied.CopyObjectResult?.ETag).toBe(`"${workspace.small.md5}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: KEYS.copy }));
    expect(got.ContentType).toBe('application/x-test');
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('makes a presigned GET URL that curl fetches', async () => {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: KEYS.small }), { expiresIn: 600 });
    expect(url).toContain('X-Amz-Algorithm=AWS4-HMAC-SHA256');
    const fetched = await curlGet(url, workspace);
    expect(fetched.status).toBe(200);
    expect(fetched.body.equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('deletes one object, then several at once (DeleteObjects, integrity by the default CRC32 header)', async () => {
    expect((await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: KEYS.copy }))).$metadata.httpStatusCode).toBe(204);
    await expect(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: KEYS.copy }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });

    const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: KEYS.small }, { Key: KEYS.big }] } }));
    expect(deleted.Deleted?.map((d) => d.Key).sort()).toEqual([KEYS.big, KEYS.small]);
    expect(deleted.Errors ?? []).toEqual([]);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(left.Contents?.map((o) => o.Key)).toEqual([KEYS.outside]);
  });
});
