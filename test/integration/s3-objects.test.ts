import { createHash, randomBytes } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

describe('objects through the SDK at its defaults', () => {
  let server: TestServer;
  let account: Provisioned;
  let s3: S3Client;

  beforeAll(async () => {
    server = await startTestServer();
    account = await provisionAccount(server);
    s3 = s3Client(server, account);
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });

  it('puts an object and gets the same bytes, ETag and metadata back', async () => {
    const body = randomBytes(300_000);
    const put = await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'dir/a b+c.bin', Body: body, ContentType: 'image/png', Metadata: { model: 'dall-e' } }));
    expect(put.ETag).toBe(`"${md5(body)}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'dir/a b+c.bin' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    expect(got.ETag).toBe(`"${md5(body)}"`);
    expect(got.ContentType).toBe('image/png');
    expect(got.Metadata).toEqual({ model: 'dall-e' });
    expect(got.ContentLength).toBe(body.length);
  });

  it('serves ranges, suffix ranges and refuses an unsatisfiable one', async () => {
    const body = randomBytes(10_000);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'ranged', Body: body }));
    const middle = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'ranged', Range: 'bytes=100-199' }));
    expect(middle.ContentRange).toBe('bytes 100-199/10000');
    expect((await readAll(middle.Body as AsyncIterable<Uint8Array>)).equals(body.subarray(100, 200))).toBe(true);
    const suffix = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'ranged', Range: 'bytes=-10' }));
    expect((await readAll(suffix.Body as AsyncIterable<Uint8Array>)).equals(body.subarray(9990))).toBe(true);
    await expect(s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'ranged', Range: 'bytes=20000-' }))).rejects.toMatchObject({ name: 'InvalidRange' });
  });

  it('heads, deletes, and answers NoSuchKey after', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'gone', Body: 'x' }));
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'gone' }));
    expect(head.ContentLength).toBe(1);
    const deleted = await s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: 'gone' }));
    expect(deleted.$metadata.httpStatusCode).toBe(204);
    await expect(s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'gone' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: 'gone' }))).resolves.toBeDefined();
  });

  it('stores identical content once, and removes the blob when its last object goes', async () => {
    const body = randomBytes(50_000);
    for (const key of ['dup/1', 'dup/2', 'dup/3']) await s3.send(new PutObjectCommand({ Bucket: 'default', Key: key, Body: body }));
    const sha = createHash('sha256').update(body).digest('hex');
    const blobs = await server.db.query<{ refcount: number; backend_key: string }>('SELECT refcount, backend_key FROM blobs WHERE sha256 = $1', [sha]);
    expect(blobs.rows).toHaveLength(1);
    expect(blobs.rows[0]!.refcount).toBe(3);
    const backendKey = blobs.rows[0]!.backend_key;
    expect(await server.backend.head({ key: backendKey })).not.toBeNull();
    const listed = await server.backend.list({ prefix: `users/${account.agentcacheUserId}/blobs/` });
    expect(listed.objects.filter((o) => o.size === body.length)).toHaveLength(1);

    for (const key of ['dup/1', 'dup/2', 'dup/3']) await s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: key }));
    expect((await server.db.query('SELECT 1 FROM blobs WHERE sha256 = $1', [sha])).rowCount).toBe(0);
    expect(await server.backend.head({ key: backendKey })).toBeNull();
    expect((await server.db.query('SELECT 1 FROM staged_writes')).rowCount).toBe(0);
  });

  it('charges logical bytes: usage follows puts, overwrites and deletes', async () => {
    const usage = async () =>
      (await server.db.query<{ used: number; reserved: number }>('SELECT storage_used_bytes AS used, storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1', [account.id])).rows[0]!;
    const before = await usage();
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'usage', Body: randomBytes(1000) }));
    expect((await usage()).used).toBe(before.used + 1000);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'usage', Body: randomBytes(400) }));
    expect((await usage()).used).toBe(before.used + 400);
    await s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: 'usage' }));
    expect(await usage()).toEqual({ used: before.used, reserved: 0 });
  });

  it('takes 24 concurrent writes and deletes of one account, shared content included, without a failure', async () => {
    const shared = randomBytes(4096);
    const writes = Array.from({ length: 24 }, (_, i) =>
      s3.send(new PutObjectCommand({ Bucket: 'default', Key: `burst/${i % 8}`, Body: i % 2 === 0 ? shared : randomBytes(4096) })),
    );
    const deletes = Array.from({ length: 8 }, (_, i) => s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: `burst/${i}` })));
    const outcomes = await Promise.allSettled([...writes, ...deletes]);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    const blobs = await server.db.query<{ refs: number; counted: number }>(
      `SELECT b.refcount AS refs, (SELECT COUNT(*) FROM agentcache_assets o WHERE o.blob_id = b.id)::INT AS counted
         FROM blobs b WHERE b.account_id = $1`,
      [account.id],
    );
    for (const blob of blobs.rows) expect(blob.refs).toBe(blob.counted);
    const usage = await server.db.query<{ used: number; summed: number; reserved: number }>(
      `SELECT a.storage_used_bytes AS used, a.storage_reserved_bytes AS reserved,
              (SELECT COALESCE(SUM(size_bytes), 0) FROM agentcache_assets o WHERE o.account_id = a.id)::BIGINT AS summed
         FROM agentcache_accounts a WHERE a.id = $1`,
      [account.id],
    );
    expect(usage.rows[0]!.used).toBe(usage.rows[0]!.summed);
    expect(usage.rows[0]!.reserved).toBe(0);
  });

  it('answers NoSuchBucket for a bucket the account does not own', async () => {
    await expect(s3.send(new GetObjectCommand({ Bucket: 'nope', Key: 'k' }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
  });
});

describe('tier limits on the PUT path', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('refuses every upload on the free tier (0 GB) with QuotaExceeded, storing nothing', async () => {
    const account = await provisionAccount(server, undefined, 'free');
    const s3 = s3Client(server, account);
    await expect(s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'empty', Body: '' }))).rejects.toMatchObject({ name: 'QuotaExceeded', $metadata: { httpStatusCode: 403 } });
    await expect(s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'small', Body: 'x' }))).rejects.toMatchObject({ name: 'QuotaExceeded' });
    const rows = await server.db.query('SELECT 1 FROM agentcache_assets WHERE account_id = $1', [account.id]);
    expect(rows.rowCount).toBe(0);
    s3.destroy();
  });

  it('refuses an object over the tier maximum before any byte streams (EntityTooLarge)', async () => {
    const account = await provisionAccount(server, undefined, 'free');
    const s3 = s3Client(server, account);
    // The free tier's largest object is 10 MB; the quota check would refuse it too, but size comes first.
    await expect(s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'big', Body: Buffer.alloc(10 * 1024 * 1024 + 1) }))).rejects.toMatchObject({
      name: 'EntityTooLarge',
      $metadata: { httpStatusCode: 400 },
    });
    s3.destroy();
  });
});
