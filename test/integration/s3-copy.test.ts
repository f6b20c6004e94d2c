import { createHash, randomBytes } from 'node:crypto';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type CopyObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Changes an account's limits the way AgentCache does: through the admin API, which every process hears. */
async function setOverrides(server: TestServer, account: Provisioned, overrides: Record<string, number | null>): Promise<void> {
  const response = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, ...overrides });
  expect(response.status).toBe(200);
}

describe('CopyObject', () => {
  let server: TestServer;
  let account: Provisioned;
  let s3: S3Client;
  const other = `copy-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    server = await startTestServer();
    account = await provisionAccount(server);
    s3 = s3Client(server, account);
    await s3.send(new CreateBucketCommand({ Bucket: other }));
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });

  async function putSource(key: string, body = randomBytes(20_000)): Promise<Buffer> {
    await s3.send(
      new PutObjectCommand({
        Bucket: 'default',
        Key: key,
        Body: body,
        ContentType: 'image/png',
        CacheControl: 'max-age=60',
        ContentDisposition: 'inline',
        ContentLanguage: 'en',
        Metadata: { model: 'dall-e', seed: '42' },
      }),
    );
    return body;
  }
  const copy = (input: Omit<CopyObjectCommandInput, 'Bucket'> & { Bucket?: string }) => s3.send(new CopyObjectCommand({ Bucket: 'default', ...input }));
  const blobOf = async (body: Buffer) =>
    (await server.db.query<{ id: string; refcount: number; backend_key: string }>('SELECT id, refcount, backend_key FROM blobs WHERE sha256 = $1', [sha256(body)])).rows;
  const usage = async () => Number((await server.db.query<{ used: number }>('SELECT storage_used_bytes AS used FROM agentcache_accounts WHERE id = $1', [account.id])).rows[0]!.used);

  it('copies the bytes, headers and metadata onto a new key of the same blob, and charges the size', async () => {
    const body = await putSource('src/photo.png');
    const blobsBefore = await blobOf(body);
    const backendBefore = (await server.backend.list({ prefix: `users/${account.agentcacheUserId}/` })).objects.length;
    const usedBefore = await usage();

    const copied = await copy({ Bucket: other, Key: 'dst/photo.png', CopySource: 'default/src/photo.png' });
    expect(copied.CopyObjectResult!.ETag).toBe(`"${md5(body)}"`);
    expect(copied.CopyObjectResult!.LastModified).toBeInstanceOf(Date);

    const got = await s3.send(new GetObjectCommand({ Bucket: other, Key: 'dst/photo.png' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    expect(got).toMatchObject({
      ETag: `"${md5(body)}"`,
      ContentType: 'image/png',
      CacheControl: 'max-age=60',
      ContentDisposition: 'inline',
      ContentLanguage: 'en',
      Metadata: { model: 'dall-e', seed: '42' },
    });

    const blobsAfter = await blobOf(body);
    expect(blobsAfter).toHaveLength(1);
    expect(blobsAfter[0]!.id).toBe(blobsBefore[0]!.id);
    expect(blobsAfter[0]!.refcount).toBe(blobsBefore[0]!.refcount + 1);
    expect((await server.backend.list({ prefix: `users/${account.agentcacheUserId}/` })).objects.length).toBe(backendBefore);
    expect(await usage()).toBe(usedBefore + body.length);
  });

  it('takes headers and metadata from the request with REPLACE', async () => {
    const body = await putSource('src/replace');
    await copy({ Key: 'dst/replaced', CopySource: 'default/src/replace', MetadataDirective: 'REPLACE', ContentType: 'text/plain', Metadata: { fresh: 'yes' } });
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'dst/replaced' }));
    expect(head).toMatchObject({ ContentType: 'text/plain', Metadata: { fresh: 'yes' }, ContentLength: body.length, ETag: `"${md5(body)}"` });
    expect(head.CacheControl).toBeUndefined();
    expect(head.ContentDisposition).toBeUndefined();
  });

  it('ignores the request headers with COPY, the default', async () => {
    await putSource('src/keep');
    await copy({ Key: 'dst/kept', CopySource: 'default/src/keep', ContentType: 'text/plain', Metadata: { ignored: 'yes' } });
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'dst/kept' }));
    expect(head).toMatchObject({ ContentType: 'image/png', Metadata: { model: 'dall-e', seed: '42' } });
  });

  it('refuses to copy an object onto itself unchanged, and updates its metadata in place with REPLACE', async () => {
    const body = await putSource('src/self');
    const error = await copy({ Key: 'src/self', CopySource: 'default/src/self' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'InvalidRequest', $metadata: { httpStatusCode: 400 } });
    expect((error as Error).message).toContain('copy an object to itself without changing the object');

    const refcount = (await blobOf(body))[0]!.refcount;
    const usedBefore = await usage();
    await copy({ Key: 'src/self', CopySource: '/default/src/self', MetadataDirective: 'REPLACE', Metadata: { edited: 'true' } });
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'src/self' }))).Metadata).toEqual({ edited: 'true' });
    expect((await blobOf(body))[0]!.refcount).toBe(refcount);
    expect(await usage()).toBe(usedBefore);
  });

  it('replaces an existing destination and releases the blob it held', async () => {
    const oldBody = randomBytes(3000);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'dst/overwritten', Body: oldBody }));
    const oldBlob = (await blobOf(oldBody))[0]!;
    const body = await putSource('src/over');
    const usedBefore = await usage();
    await copy({ Key: 'dst/overwritten', CopySource: 'default/src/over' });
    expect(await blobOf(oldBody)).toHaveLength(0);
    expect(await server.backend.head({ key: oldBlob.backend_key })).toBeNull();
    expect(await usage()).toBe(usedBefore + body.length - oldBody.length);
  });

  it('reads a URL-encoded source and a versionId of "null"', async () => {
    const body = await putSource('src/ä b+c.bin');
    await copy({ Key: 'dst/encoded', CopySource: `default/${encodeURIComponent('src/ä b+c.bin')}?versionId=null` });
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'dst/encoded' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    await expect(copy({ Key: 'dst/v', CopySource: 'default/src/ä b+c.bin?versionId=abc' })).rejects.toMatchObject({ name: 'InvalidArgument' });
  });

  it('applies x-amz-copy-source-if-* to the source: 412 when a condition fails', async () => {
    await putSource('src/cond');
    // Modified two hours ago, so that "since then" can be a date in the past.
    await server.db.query(`UPDATE agentcache_assets SET last_modified = now() - interval '2 hours' WHERE object_key = 'src/cond'`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'src/cond' }));
    const etag = head.ETag!;
    const modified = head.LastModified!;
    const past = new Date(modified.getTime() - 3_600_000);
    const future = new Date(Date.now() + 3_600_000);
    const attempt = (conditions: Partial<CopyObjectCommandInput>) => copy({ Key: 'dst/cond', CopySource: 'default/src/cond', ...conditions });
    const failed = { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } };

    await expect(attempt({ CopySourceIfMatch: '"0123456789abcdef0123456789abcdef"' })).rejects.toMatchObject(failed);
    await expect(attempt({ CopySourceIfNoneMatch: etag })).rejects.toMatchObject(failed);
    await expect(attempt({ CopySourceIfUnmodifiedSince: past })).rejects.toMatchObject(failed);
    await expect(attempt({ CopySourceIfModifiedSince: new Date(modified.getTime() + 3_600_000) })).rejects.toMatchObject(failed);
    await expect(server.db.query(`SELECT 1 FROM agentcache_assets WHERE object_key = 'dst/cond'`)).resolves.toMatchObject({ rowCount: 0 });

    // if-match true decides over if-unmodified-since false; if-none-match false decides over if-modified-since true.
    await expect(attempt({ CopySourceIfMatch: etag, CopySourceIfUnmodifiedSince: past })).resolves.toBeDefined();
    await expect(attempt({ CopySourceIfNoneMatch: etag, CopySourceIfModifiedSince: past })).rejects.toMatchObject(failed);
    await expect(attempt({ CopySourceIfNoneMatch: '"other"', CopySourceIfModifiedSince: future })).resolves.toBeDefined();
    await expect(attempt({ CopySourceIfMatch: '*', CopySourceIfModifiedSince: past })).resolves.toBeDefined();
    // A date in the future is not a valid if-modified-since (RFC 9110): ignored, so the copy happens.
    await expect(attempt({ CopySourceIfModifiedSince: future })).resolves.toBeDefined();
  });

  it('answers NoSuchKey, NoSuchBucket and InvalidArgument for a source that cannot be copied', async () => {
    await expect(copy({ Key: 'dst/x', CopySource: 'default/src/none' })).rejects.toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    await expect(copy({ Key: 'dst/x', CopySource: 'no-such-bucket-x/src/none' })).rejects.toMatchObject({ name: 'NoSuchBucket' });
    await putSource('src/ok');
    await expect(copy({ Bucket: 'no-such-bucket-x', Key: 'dst/x', CopySource: 'default/src/ok' })).rejects.toMatchObject({ name: 'NoSuchBucket' });
    await expect(copy({ Key: 'dst/x', CopySource: 'default' })).rejects.toMatchObject({ name: 'InvalidArgument' });
    await expect(copy({ Key: 'dst/x', CopySource: 'default/src/ok', MetadataDirective: 'MERGE' as never })).rejects.toMatchObject({ name: 'InvalidArgument' });
  });

  it('checks the storage quota for the copy, and leaves nothing behind when it does not fit', async () => {
    const small = await provisionAccount(server);
    const client = s3Client(server, small);
    try {
      const body = randomBytes(600);
      await client.send(new PutObjectCommand({ Bucket: 'default', Key: 'a', Body: body }));
      await setOverrides(server, small, { storage_quota_bytes: 1000 });
      const error = await client.send(new CopyObjectCommand({ Bucket: 'default', Key: 'b', CopySource: 'default/a' })).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'QuotaExceeded', $metadata: { httpStatusCode: 403 } });
      const rows = await server.db.query<{ object_key: string }>('SELECT object_key FROM agentcache_assets WHERE account_id = $1', [small.id]);
      expect(rows.rows.map((r) => r.object_key)).toEqual(['a']);
      const account = (await server.db.query<{ used: number }>('SELECT storage_used_bytes AS used FROM agentcache_accounts WHERE id = $1', [small.id])).rows[0]!;
      expect(Number(account.used)).toBe(600);
      expect((await server.db.query<{ refcount: number }>('SELECT refcount FROM blobs WHERE sha256 = $1', [sha256(body)])).rows[0]!.refcount).toBe(1);
      // Overwriting a larger object with a copy shrinks usage, so it fits.
      await client.send(new PutObjectCommand({ Bucket: 'default', Key: 'c', Body: randomBytes(300) }));
      await setOverrides(server, small, { storage_quota_bytes: 900 });
      await expect(client.send(new CopyObjectCommand({ Bucket: 'default', Key: 'a', CopySource: 'default/c' }))).resolves.toBeDefined();
    } finally {
      client.destroy();
    }
  });

  it('applies the maximum object size to a copy', async () => {
    await putSource('src/big', randomBytes(5000));
    await setOverrides(server, account, { max_file_size_bytes: 4000 });
    try {
      await expect(copy({ Key: 'dst/big', CopySource: 'default/src/big' })).rejects.toMatchObject({ name: 'EntityTooLarge', $metadata: { httpStatusCode: 400 } });
    } finally {
      await setOverrides(server, account, { max_file_size_bytes: null });
    }
  });

  it('answers with the CopyObjectResult document, carrying the checksum the source was stored with', async () => {
    const body = await putSource('src/raw');
    const source = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'src/raw', ChecksumMode: 'ENABLED' }));
    expect(source.ChecksumCRC32).toBeTruthy(); // the SDK sends a CRC32 trailer by default

    const response = await signedRequest(server, account, { method: 'PUT', path: '/default/dst/raw', headers: { 'x-amz-copy-source': '/default/src/raw' } });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/xml');
    expect(response.body).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<CopyObjectResult xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/"><LastModified>[^<]+<\/LastModified><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag><ChecksumCRC32>[^<]+<\/ChecksumCRC32><\/CopyObjectResult>$/,
    );
    expect(xmlText(response.body, 'ETag')).toBe(`&quot;${md5(body)}&quot;`);
    expect(xmlText(response.body, 'ChecksumCRC32')).toBe(source.ChecksumCRC32);
    const copied = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'dst/raw', ChecksumMode: 'ENABLED' }));
    expect(copied.ChecksumCRC32).toBe(source.ChecksumCRC32);
  });
});
