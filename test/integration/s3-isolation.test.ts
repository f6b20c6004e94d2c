import { createHash, randomBytes } from 'node:crypto';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Two accounts that both own `shared-name`. Alice tries every way we know to read, list, overwrite, copy
 * from or delete Bob's buckets and objects; Bob's rows, blobs and bytes must come out exactly as they went in.
 */
describe('isolation between accounts', () => {
  let server: TestServer;
  let alice: Provisioned;
  let bob: Provisioned;
  let aliceS3: S3Client;
  let bobS3: S3Client;
  const bobSecret = randomBytes(4096);
  const bobPrivate = `bob-private-${randomBytes(3).toString('hex')}`;
  let bobBackendKey: string;
  let bobBefore: string;

  /** Everything of Bob's that Alice must not be able to change: buckets, object rows, blobs, usage, backend bytes. */
  async function bobState(): Promise<string> {
    const q = async (sql: string) => (await server.db.query(sql, [bob.id])).rows;
    const buckets = await q('SELECT id, name, created_at FROM buckets WHERE account_id = $1 ORDER BY name');
    const objects = await q('SELECT bucket_id, object_key, blob_id, etag, size_bytes, user_metadata, last_modified FROM agentcache_assets WHERE account_id = $1 ORDER BY bucket_id, object_key');
    const blobs = await q('SELECT id, backend_key, refcount FROM blobs WHERE account_id = $1 ORDER BY id');
    const usage = await q('SELECT storage_used_bytes, storage_reserved_bytes FROM agentcache_accounts WHERE id = $1');
    const bytes: string[] = [];
    for (const blob of blobs as { backend_key: string }[]) {
      const { body } = await server.backend.get({ key: blob.backend_key });
      bytes.push(sha256(await readAll(body as AsyncIterable<Uint8Array>)));
    }
    return JSON.stringify({ buckets, objects, blobs, usage, bytes });
  }

  beforeAll(async () => {
    server = await startTestServer({ S3_DOMAIN: 's3.test' });
    alice = await provisionAccount(server);
    bob = await provisionAccount(server);
    aliceS3 = s3Client(server, alice);
    bobS3 = s3Client(server, bob);
    await aliceS3.send(new CreateBucketCommand({ Bucket: 'shared-name' }));
    await bobS3.send(new CreateBucketCommand({ Bucket: 'shared-name' }));
    await bobS3.send(new CreateBucketCommand({ Bucket: bobPrivate }));
    for (const bucket of ['shared-name', 'default', bobPrivate]) {
      await bobS3.send(new PutObjectCommand({ Bucket: bucket, Key: 'secret.txt', Body: bobSecret, Metadata: { owner: 'bob' } }));
    }
    await bobS3.send(new PutObjectCommand({ Bucket: 'shared-name', Key: `users/${alice.agentcacheUserId}/planted`, Body: 'bob' }));
    const { rows } = await server.db.query<{ backend_key: string }>('SELECT backend_key FROM blobs WHERE account_id = $1 AND sha256 = $2', [bob.id, sha256(bobSecret)]);
    bobBackendKey = rows[0]!.backend_key;
    expect(bobBackendKey.startsWith(`users/${bob.agentcacheUserId}/`)).toBe(true);
    bobBefore = await bobState();
  });
  afterAll(async () => {
    aliceS3?.destroy();
    bobS3?.destroy();
    await server?.close();
  });

  it("answers NoSuchBucket for every operation on a bucket only the other account owns", async () => {
    const noSuchBucket = { name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } };
    const B = bobPrivate;
    await expect(aliceS3.send(new GetObjectCommand({ Bucket: B, Key: 'secret.txt' }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new HeadObjectCommand({ Bucket: B, Key: 'secret.txt' }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    await expect(aliceS3.send(new PutObjectCommand({ Bucket: B, Key: 'secret.txt', Body: 'overwritten' }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new DeleteObjectCommand({ Bucket: B, Key: 'secret.txt' }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new DeleteObjectsCommand({ Bucket: B, Delete: { Objects: [{ Key: 'secret.txt' }] } }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new ListObjectsV2Command({ Bucket: B }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new ListObjectsCommand({ Bucket: B }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new HeadBucketCommand({ Bucket: B }))).rejects.toMatchObject({ name: 'NotFound', $metadata: { httpStatusCode: 404 } });
    await expect(aliceS3.send(new GetBucketLocationCommand({ Bucket: B }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new DeleteBucketCommand({ Bucket: B }))).rejects.toMatchObject(noSuchBucket);
    await expect(aliceS3.send(new CopyObjectCommand({ Bucket: B, Key: 'x', CopySource: 'default/anything' }))).rejects.toMatchObject(noSuchBucket);
    const listed = (await aliceS3.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name);
    expect(listed.sort()).toEqual(['default', 'shared-name']);
    expect(await bobState()).toBe(bobBefore);
  });

  it('sees only its own contents in a bucket name both accounts own', async () => {
    await expect(aliceS3.send(new GetObjectCommand({ Bucket: 'shared-name', Key: 'secret.txt' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(aliceS3.send(new GetObjectCommand({ Bucket: 'default', Key: 'secret.txt' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    const listed = await aliceS3.send(new ListObjectsV2Command({ Bucket: 'shared-name' }));
    expect(listed.KeyCount).toBe(0);
    expect((await aliceS3.send(new DeleteObjectCommand({ Bucket: 'shared-name', Key: 'secret.txt' }))).$metadata.httpStatusCode).toBe(204);
    const bulk = await aliceS3.send(new DeleteObjectsCommand({ Bucket: 'shared-name', Delete: { Objects: [{ Key: 'secret.txt' }, { Key: `users/${alice.agentcacheUserId}/planted` }] } }));
    expect(bulk.Deleted).toHaveLength(2); // S3 reports absent keys as deleted; nothing of Bob's went
    expect(await bobState()).toBe(bobBefore);
  });

  it.each([
    ['/shared-name/../' + 'BOB/secret.txt', 'NoSuchKey'],
    ['/shared-name/%2e%2e/BOB/secret.txt', 'NoSuchKey'],
    ['/shared-name/..%2FBOB%2Fsecret.txt', 'NoSuchKey'],
    ['/shared-name//secret.txt', 'NoSuchKey'],
    ['/shared-name/%2Fsecret.txt', 'NoSuchKey'],
    ['/shared-name/./secret.txt', 'NoSuchKey'],
    ['/shared-name/users/BOBID/blobs/x', 'NoSuchKey'],
    ['/shared-name/BACKENDKEY', 'NoSuchKey'],
    ['/BOB/../shared-name/secret.txt', 'NoSuchBucket'],
    ['/%2e%2e/BOB/secret.txt', 'NoSuchBucket'],
    ['/shared-name%2F..%2FBOB/secret.txt', 'NoSuchBucket'],
    ['/users/BOBID/blobs/x', 'NoSuchBucket'],
    ['//BOB/secret.txt', 'InvalidURI'],
  ])('keeps the raw path %s inside the account (%s)', async (template, code) => {
    const path = template.replaceAll('BOBID', bob.agentcacheUserId).replaceAll('BACKENDKEY', bobBackendKey).replaceAll('BOB', bobPrivate);
    const got = await signedRequest(server, alice, { method: 'GET', path });
    expect(got.status).toBeGreaterThanOrEqual(400);
    expect(xmlText(got.body, 'Code')).toBe(code);
    expect(got.body).not.toContain(bobSecret.toString('base64').slice(0, 16));
    const deleted = await signedRequest(server, alice, { method: 'DELETE', path });
    expect([204, 400, 404]).toContain(deleted.status);
    expect(await bobState()).toBe(bobBefore);
  });

  it('writes a dot-segment key as a literal key of its own bucket, on a blob of its own', async () => {
    const path = `/shared-name/../${bobPrivate}/secret.txt`;
    const put = await signedRequest(server, alice, { method: 'PUT', path, body: 'alice was here' });
    expect(put.status).toBe(200);
    const { rows } = await server.db.query<{ account_id: string; name: string; object_key: string; backend_key: string }>(
      `SELECT o.account_id, k.name, o.object_key, b.backend_key FROM agentcache_assets o JOIN buckets k ON k.id = o.bucket_id JOIN blobs b ON b.id = o.blob_id
        WHERE o.object_key = $1`,
      [`../${bobPrivate}/secret.txt`],
    );
    expect(rows).toEqual([{ account_id: alice.id, name: 'shared-name', object_key: `../${bobPrivate}/secret.txt`, backend_key: expect.stringMatching(new RegExp(`^users/${alice.agentcacheUserId}/`)) }]);
    const got = await aliceS3.send(new GetObjectCommand({ Bucket: 'shared-name', Key: `../${bobPrivate}/secret.txt` }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).toString()).toBe('alice was here');
    expect((await signedRequest(server, alice, { method: 'DELETE', path })).status).toBe(204);
    expect(await bobState()).toBe(bobBefore);
  });

  it.each([
    'BOB/secret.txt',
    '/BOB/secret.txt',
    'BOB%2Fsecret.txt',
    '%2FBOB%2Fsecret.txt',
    'BOB/secret.txt?versionId=null',
    'BOB/secret.txt?versionId=3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY',
    'shared-name/../BOB/secret.txt',
    'shared-name/secret.txt',
    'default/secret.txt',
    'users/BOBID/blobs/secret.txt',
    'BACKENDKEY',
    'shared-name/BACKENDKEY',
  ])('cannot copy from the other account with x-amz-copy-source %s', async (template) => {
    const source = template.replaceAll('BOBID', bob.agentcacheUserId).replaceAll('BACKENDKEY', bobBackendKey).replaceAll('BOB', bobPrivate);
    const error = await aliceS3.send(new CopyObjectCommand({ Bucket: 'shared-name', Key: 'stolen', CopySource: source })).catch((e: unknown) => e);
    expect(error).toMatchObject({ $metadata: { httpStatusCode: 404 } });
    expect(['NoSuchBucket', 'NoSuchKey']).toContain((error as Error).name);
    // The same header sent raw, unaltered by any client.
    const raw = await signedRequest(server, alice, { method: 'PUT', path: '/shared-name/stolen', headers: { 'x-amz-copy-source': source } });
    expect(raw.status).toBe(404);
    const stolen = await server.db.query(`SELECT 1 FROM agentcache_assets WHERE account_id = $1 AND object_key = 'stolen'`, [alice.id]);
    expect(stolen.rowCount).toBe(0);
    expect(await bobState()).toBe(bobBefore);
  });

  it('stores identical bytes as a blob of its own, and cannot link to the other account\'s by claiming its hash', async () => {
    const claimed = await signedRequest(server, alice, {
      method: 'PUT',
      path: '/shared-name/claimed',
      body: 'not the secret',
      headers: { 'x-amz-content-sha256': sha256(bobSecret) },
    });
    expect(xmlText(claimed.body, 'Code')).toBe('XAmzContentSHA256Mismatch');
    await expect(aliceS3.send(new HeadObjectCommand({ Bucket: 'shared-name', Key: 'claimed' }))).rejects.toMatchObject({ name: 'NotFound' });

    await aliceS3.send(new PutObjectCommand({ Bucket: 'shared-name', Key: 'same-bytes', Body: bobSecret }));
    const blobs = await server.db.query<{ account_id: string; backend_key: string }>('SELECT account_id, backend_key FROM blobs WHERE sha256 = $1 ORDER BY account_id', [sha256(bobSecret)]);
    expect(blobs.rows.map((b) => b.account_id).sort()).toEqual([alice.id, bob.id].sort());
    expect(blobs.rows.find((b) => b.account_id === alice.id)!.backend_key.startsWith(`users/${alice.agentcacheUserId}/`)).toBe(true);
    await aliceS3.send(new DeleteObjectCommand({ Bucket: 'shared-name', Key: 'same-bytes' }));
    expect(await bobState()).toBe(bobBefore);
  });

  it('resolves a virtual-hosted bucket among its own buckets only', async () => {
    const port = new URL(server.gatewayUrl).port;
    const other = await signedRequest(server, alice, { method: 'GET', path: '/secret.txt', host: `${bobPrivate}.s3.test:${port}` });
    expect(xmlText(other.body, 'Code')).toBe('NoSuchBucket');
    const shared = await signedRequest(server, alice, { method: 'GET', path: '/secret.txt', host: `shared-name.s3.test:${port}` });
    expect(xmlText(shared.body, 'Code')).toBe('NoSuchKey');
    const listing = await signedRequest(server, alice, { method: 'GET', path: '/?list-type=2', host: `shared-name.s3.test:${port}` });
    expect(listing.status).toBe(200);
    expect(xmlText(listing.body, 'KeyCount')).toBe('0');
    const sanity = await signedRequest(server, bob, { method: 'GET', path: '/secret.txt', host: `${bobPrivate}.s3.test:${port}` });
    expect(sanity.status).toBe(200);
    expect(await bobState()).toBe(bobBefore);
  });

  it("refuses the other account's access key signed with its own secret", async () => {
    const forged = await signedRequest(server, { apiKey: bob.apiKey, apiSecret: alice.apiSecret }, { method: 'GET', path: `/${bobPrivate}/secret.txt` });
    expect(forged.status).toBe(403);
    expect(xmlText(forged.body, 'Code')).toBe('SignatureDoesNotMatch');
  });

  it("leaves the other account's objects readable and unchanged", async () => {
    for (const bucket of ['shared-name', 'default', bobPrivate]) {
      const got = await bobS3.send(new GetObjectCommand({ Bucket: bucket, Key: 'secret.txt' }));
      expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(bobSecret)).toBe(true);
      expect(got.Metadata).toEqual({ owner: 'bob' });
    }
    const planted = await bobS3.send(new GetObjectCommand({ Bucket: 'shared-name', Key: `users/${alice.agentcacheUserId}/planted` }));
    expect((await readAll(planted.Body as AsyncIterable<Uint8Array>)).toString()).toBe('bob');
    expect(await bobState()).toBe(bobBefore);
  });
});
