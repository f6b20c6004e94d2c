import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Client, CopyDestinationOptions, CopySourceOptions } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount } from '../helpers/admin.js';
import { KEYS, MiB, REGION, createWorkspace, curlGet, fileSlice, printGatewayErrorsOnFailure, sha256File, uniqueBucket, type Workspace } from '../helpers/clients.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

/** The `minio` npm client (v8), path-style on plain HTTP, with a 64 MiB part size so 20 MiB is one PUT. */
describe('the minio npm client against the gateway', () => {
  let server: TestServer;
  let workspace: Workspace;
  let minio: Client;
  let sdk: S3Client;
  const bucket = uniqueBucket('minio');

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    const account = await provisionAccount(server);
    workspace = await createWorkspace('minio');
    const url = new URL(server.gatewayUrl);
    minio = new Client({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: false,
      accessKey: account.apiKey,
      secretKey: account.apiSecret,
      // Given, so the client never asks GetBucketLocation first.
      region: REGION,
      pathStyle: true,
      partSize: 64 * MiB,
    });
    sdk = s3Client(server, account);
  });
  afterAll(async () => {
    sdk?.destroy();
    await workspace?.cleanup();
    await server?.close();
  });

  it('makes a bucket, which bucketExists finds and listBuckets shows beside the default one', async () => {
    await minio.makeBucket(bucket, REGION);
    expect(await minio.bucketExists(bucket)).toBe(true);
    expect(await minio.bucketExists(`${bucket}-absent`)).toBe(false);
    expect((await minio.listBuckets()).map((b) => b.name)).toEqual(expect.arrayContaining(['default', bucket]));
  });

  it('puts a small object from a buffer and a 20 MiB one from a file, with the MD5 as ETag', async () => {
    const small = await readFile(workspace.small.path);
    expect((await minio.putObject(bucket, KEYS.small, small, small.length, { 'Content-Type': 'application/x-test' })).etag).toBe(workspace.small.md5);
    expect((await minio.fPutObject(bucket, KEYS.big, workspace.big.path, { 'Content-Type': 'application/x-test' })).etag).toBe(workspace.big.md5);
    await minio.putObject(bucket, KEYS.outside, small, small.length);
    for (const [key, file] of [[KEYS.small, workspace.small], [KEYS.big, workspace.big]] as const) {
      const stat = await minio.statObject(bucket, key);
      expect(stat.etag).toBe(file.md5);
      expect(stat.size).toBe(file.size);
      // minio strips the quotes; as the gateway sends it, the ETag is the quoted MD5 (no "-<parts>").
      expect((await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag).toBe(`"${file.md5}"`);
    }
  });

  it('lists with a prefix and a delimiter, with ListObjectsV2 and ListObjects', async () => {
    for (const listed of [await collect(minio.listObjectsV2(bucket, 'docs/', false)), await collect(minio.listObjects(bucket, 'docs/', false))]) {
      const objects = listed.filter((item) => item.name !== undefined).map((item) => [item.name, item.size, item.etag]);
      const prefixes = listed.filter((item) => item.prefix !== undefined).map((item) => item.prefix);
      expect(objects).toEqual([[KEYS.small, workspace.small.size, workspace.small.md5]]);
      expect(prefixes).toEqual(['docs/nested/']);
    }
  });

  it('gets both objects back byte for byte', async () => {
    const small = await minio.getObject(bucket, KEYS.small);
    expect((await readAll(small)).equals(await readFile(workspace.small.path))).toBe(true);
    const out = workspace.out('big.bin');
    await minio.fGetObject(bucket, KEYS.big, out);
    expect(await sha256File(out)).toBe(workspace.big.sha256);
  });

  it('gets a byte range of the 20 MiB object', async () => {
    const part = await minio.getPartialObject(bucket, KEYS.big, 5_000_000, 1_000_000);
    expect((await readAll(part as Readable)).equals(await fileSlice(workspace.big, 5_000_000, 1_000_000))).toBe(true);
  });

  it('copies an object within the bucket', async () => {
    await minio.copyObject(new CopySourceOptions({ Bucket: bucket, Object: KEYS.small }), new CopyDestinationOptions({ Bucket: bucket, Object: KEYS.copy }));
    const stat = await minio.statObject(bucket, KEYS.copy);
    expect(stat.etag).toBe(workspace.small.md5);
    expect(stat.metaData['content-type']).toBe('application/x-test');
    expect((await readAll(await minio.getObject(bucket, KEYS.copy))).equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('makes a presigned GET URL that curl fetches', async () => {
    const url = await minio.presignedGetObject(bucket, KEYS.small, 600);
    expect(url).toContain('X-Amz-Algorithm=AWS4-HMAC-SHA256');
    const fetched = await curlGet(url, workspace);
    expect(fetched.status).toBe(200);
    expect(fetched.body.equals(await readFile(workspace.small.path))).toBe(true);
  });

  it('removes one object, then several at once (DeleteObjects)', async () => {
    await minio.removeObject(bucket, KEYS.copy);
    await expect(minio.statObject(bucket, KEYS.copy)).rejects.toMatchObject({ code: 'NotFound' });

    const errors = await minio.removeObjects(bucket, [KEYS.small, KEYS.big]);
    expect(errors).toEqual([]);
    const left = await collect(minio.listObjectsV2(bucket, '', true));
    expect(left.map((item) => item.name)).toEqual([KEYS.outside]);
  });
});
