import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FS_STAGING_DIR } from '../../src/backend/fs.js';
import { blobHashingSettled } from '../../src/jobs/hash-pending.js';
import { collectStaleUploads } from '../../src/jobs/multipart-gc.js';
import { createLogger } from '../../src/log.js';
import { generatedBytes, generatedStream } from '../fixtures/generated-data.js';
import { admin, provisionAccount, waitFor, type Provisioned } from '../helpers/admin.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startS3rver, type TestS3Server } from '../helpers/s3rver.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Quota accounting, abort, races, the collector and dedup of multipart uploads. */
describe('multipart uploads: usage, abort, races, collector, dedup', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ MAX_OPEN_UPLOADS_PER_ACCOUNT: '3' });
  });
  afterAll(async () => {
    if (server) await blobHashingSettled(server);
    await server?.close();
  });

  /** A fresh account with its own client, so each test's usage figures are its own. */
  async function tenant(): Promise<{ account: Provisioned; s3: S3Client; usage: () => Promise<{ used: number; reserved: number }> }> {
    const account = await provisionAccount(server);
    const usage = async () => {
      const { rows } = await server.db.query<{ used: number; reserved: number }>(
        'SELECT storage_used_bytes AS used, storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1',
        [account.id],
      );
      return { used: Number(rows[0]!.used), reserved: Number(rows[0]!.reserved) };
    };
    return { account, s3: s3Client(server, account), usage };
  }

  async function multipartRows(accountId: string) {
    const { rows } = await server.db.query<{ uploads: number; parts: number; writers: number; staged: number }>(
      `SELECT (SELECT count(*) FROM multipart_uploads WHERE account_id = $1)::int AS uploads,
              (SELECT count(*) FROM multipart_parts p JOIN multipart_uploads u ON u.id = p.upload_id WHERE u.account_id = $1)::int AS parts,
              (SELECT count(*) FROM multipart_part_writes w JOIN multipart_uploads u ON u.id = w.upload_id WHERE u.account_id = $1)::int AS writers,
              (SELECT count(*) FROM staged_writes WHERE account_id = $1)::int AS staged`,
      [accountId],
    );
    return rows[0]!;
  }

  const backendUploads = async () => readdir(path.join(server.dataDir, 'objects', server.config.bucketName, FS_STAGING_DIR, 'uploads')).catch(() => []);
  const partWriters = async () => Number((await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM multipart_part_writes')).rows[0]!.n);
  /** A 5 MiB part body that takes about a second to send. */
  const slowPart = (seed: string) => ({ Body: generatedStream(seed, 5 * MiB, { delayMs: 12 }), ContentLength: 5 * MiB });

  it("counts open parts as storage; a re-uploaded part replaces the old one; completion leaves the object's size", async () => {
    const { account, s3, usage } = await tenant();
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'k', Body: generatedBytes('old', 0, 1000) }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'k' }));
    const part = (PartNumber: number, Body: Uint8Array) => s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'k', UploadId, PartNumber, Body }));
    const one = await part(1, generatedBytes('p1', 0, 5 * MiB));
    const firstTwo = await part(2, generatedBytes('p2', 0, 100));
    await part(3, generatedBytes('p3', 0, 50));
    expect(await usage()).toEqual({ used: 1000 + 5 * MiB + 150, reserved: 0 });

    const lastTwo = await part(2, generatedBytes('p2 again', 0, 300));
    expect(await usage()).toEqual({ used: 1000 + 5 * MiB + 350, reserved: 0 });
    const listed = await s3.send(new ListPartsCommand({ Bucket: 'default', Key: 'k', UploadId }));
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([[1, 5 * MiB, one.ETag], [2, 300, lastTwo.ETag], [3, 50, expect.any(String)]]);

    const complete = (ETag: string | undefined) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: 'k', UploadId, MultipartUpload: { Parts: [{ ETag: one.ETag, PartNumber: 1 }, { ETag, PartNumber: 2 }] } }));
    await expect(complete(firstTwo.ETag)).rejects.toMatchObject({ name: 'InvalidPart' });
    await complete(lastTwo.ETag);
    // The replaced object's 1000 bytes and the unlisted part 3 are released.
    expect(await usage()).toEqual({ used: 5 * MiB + 300, reserved: 0 });
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'k' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).subarray(5 * MiB).equals(generatedBytes('p2 again', 0, 300))).toBe(true);
    expect(await multipartRows(account.id)).toEqual({ uploads: 0, parts: 0, writers: 0, staged: 0 });
    s3.destroy();
  });

  it('aborts: the parts stop counting and leave the backend', async () => {
    const { account, s3, usage } = await tenant();
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'gone' }));
    await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'gone', UploadId, PartNumber: 1, Body: generatedBytes('abort', 0, 2 * MiB) }));
    expect((await usage()).used).toBe(2 * MiB);
    expect((await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'gone', UploadId }))).$metadata.httpStatusCode).toBe(204);
    expect(await usage()).toEqual({ used: 0, reserved: 0 });
    expect(await multipartRows(account.id)).toEqual({ uploads: 0, parts: 0, writers: 0, staged: 0 });
    expect(await backendUploads()).toEqual([]);
    await expect(s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'gone', UploadId }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
    s3.destroy();
  });

  it('fails a part that is streaming when its upload is aborted, and leaves nothing behind', async () => {
    const { account, s3, usage } = await tenant();
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'racing' }));
    const streaming = s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'racing', UploadId, PartNumber: 1, ...slowPart('aborted') }));
    const outcome = streaming.then(() => 'stored', (error: { name?: string }) => error.name);
    await waitFor('the part to start streaming', async () => ((await partWriters()) > 0 ? true : undefined));
    expect((await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'racing', UploadId }))).$metadata.httpStatusCode).toBe(204);
    expect(await outcome).toBe('NoSuchUpload');
    await waitFor('the aborted upload to be forgotten', async () => ((await multipartRows(account.id)).uploads === 0 ? true : undefined));
    expect(await multipartRows(account.id)).toEqual({ uploads: 0, parts: 0, writers: 0, staged: 0 });
    expect(await usage()).toEqual({ used: 0, reserved: 0 });
    expect(await backendUploads()).toEqual([]);
    s3.destroy();
  });

  it('lets one request at a time stream a part number: the other retries, and the last one stored wins', async () => {
    const { s3 } = await tenant();
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'twice' }));
    const first = s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'twice', UploadId, PartNumber: 1, ...slowPart('first') }));
    await waitFor('the first part to start streaming', async () => ((await partWriters()) > 0 ? true : undefined));
    const second = generatedBytes('second', 0, 5 * MiB);
    await expect(s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'twice', UploadId, PartNumber: 1, Body: second }))).rejects.toMatchObject({
      name: 'SlowDown',
      $metadata: { httpStatusCode: 503 },
    });
    // Completing while a listed part still streams is refused the same way.
    await expect(
      s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: 'twice', UploadId, MultipartUpload: { Parts: [{ ETag: '"x"', PartNumber: 1 }] } })),
    ).rejects.toMatchObject({ name: 'SlowDown' });
    await first;
    const retried = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'twice', UploadId, PartNumber: 1, Body: second }));
    const listed = await s3.send(new ListPartsCommand({ Bucket: 'default', Key: 'twice', UploadId }));
    expect(listed.Parts?.map((part) => part.ETag)).toEqual([retried.ETag]);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: 'twice', UploadId, MultipartUpload: { Parts: [{ ETag: retried.ETag, PartNumber: 1 }] } }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'twice' }));
    expect(sha256(await readAll(got.Body as AsyncIterable<Uint8Array>))).toBe(sha256(second));
    s3.destroy();
  });

  it('refuses the part that would outgrow the largest object, or the storage quota', async () => {
    const { account, s3, usage } = await tenant();
    await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, max_file_size_bytes: 11 * MiB, storage_quota_bytes: 13 * MiB });
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'big' }));
    const part = (PartNumber: number, size: number) =>
      s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'big', UploadId, PartNumber, Body: generatedBytes(`big${PartNumber}`, 0, size) }));
    await part(1, 5 * MiB);
    await part(2, 5 * MiB);
    await expect(part(3, 2 * MiB)).rejects.toMatchObject({ name: 'EntityTooLarge' });
    await part(3, MiB);
    await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, max_file_size_bytes: 100 * MiB });
    await expect(part(4, 3 * MiB)).rejects.toMatchObject({ name: 'QuotaExceeded', $metadata: { httpStatusCode: 403 } });
    expect(await usage()).toEqual({ used: 11 * MiB, reserved: 0 });
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'big', UploadId }));
    expect((await usage()).used).toBe(0);
    s3.destroy();
  });

  it('caps open uploads per account with SlowDown', async () => {
    const { s3 } = await tenant();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: `cap/${i}` }))).UploadId);
    await expect(s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'cap/3' }))).rejects.toMatchObject({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'cap/0', UploadId: ids[0] }));
    await expect(s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'cap/3' }))).resolves.toBeDefined();
    s3.destroy();
  });

  it('collects uploads left open past the configured age, and completions whose process died', async () => {
    const { account, s3, usage } = await tenant();
    const stale = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'stale' }))).UploadId!;
    await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'stale', UploadId: stale, PartNumber: 1, Body: generatedBytes('stale', 0, MiB) }));
    const stuck = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'stuck' }))).UploadId!;
    await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'stuck', UploadId: stuck, PartNumber: 1, Body: generatedBytes('stuck', 0, 1000) }));
    const fresh = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'fresh' }))).UploadId!;
    await server.db.query(`UPDATE multipart_uploads SET created_at = now() - interval '8 days' WHERE upload_id = $1`, [stale]);
    await server.db.query(`UPDATE multipart_uploads SET state = 'completing', state_changed_at = now() - interval '2 hours' WHERE upload_id = $1`, [stuck]);
    expect((await usage()).used).toBe(MiB + 1000);

    const deps = { db: server.db, backend: server.backend, config: server.config, logger: createLogger('silent') };
    expect(await collectStaleUploads(deps)).toEqual({ aborted: 2, removed: 2, failed: 0 });
    expect(await usage()).toEqual({ used: 0, reserved: 0 });
    await expect(s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'stale', UploadId: stale, PartNumber: 2, Body: 'x' }))).rejects.toMatchObject({ name: 'NoSuchUpload' });
    expect(await multipartRows(account.id)).toMatchObject({ uploads: 1, staged: 1 });
    expect(await collectStaleUploads(deps)).toEqual({ aborted: 0, removed: 0, failed: 0 });
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'fresh', UploadId: fresh }));
    s3.destroy();
  });

  it('stores identical bytes once, whether they came by PUT or by multipart, in either order', async () => {
    const { account, s3 } = await tenant();
    const multipart = async (key: string, data: Buffer) => {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key }));
      const parts = [];
      for (let offset = 0, number = 1; offset < data.length; offset += 5 * MiB, number++) {
        const { ETag } = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: number, Body: data.subarray(offset, offset + 5 * MiB) }));
        parts.push({ ETag, PartNumber: number });
      }
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: key, UploadId, MultipartUpload: { Parts: parts } }));
      await blobHashingSettled(server);
    };
    const blobsOf = async (data: Buffer) =>
      (await server.db.query<{ refcount: number }>('SELECT refcount FROM blobs WHERE account_id = $1 AND sha256 = $2', [account.id, sha256(data)])).rows.map((row) => row.refcount);
    const backendBlobs = async () => (await server.backend.list({ prefix: `users/${account.agentcacheUserId}/blobs/` })).objects.length;

    const first = generatedBytes('dedup-a', 0, 6 * MiB);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'a/put', Body: first }));
    await multipart('a/multipart', first);
    expect(await blobsOf(first)).toEqual([2]);
    expect(await backendBlobs()).toBe(1);

    const second = generatedBytes('dedup-b', 0, 11 * MiB);
    await multipart('b/multipart-1', second);
    await multipart('b/multipart-2', second);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'b/put', Body: second }));
    expect(await blobsOf(second)).toEqual([3]);
    expect(await backendBlobs()).toBe(2);
    const unhashed = await server.db.query('SELECT 1 FROM blobs WHERE account_id = $1 AND sha256 IS NULL', [account.id]);
    expect(unhashed.rowCount).toBe(0);
    const hashes = await server.db.query<{ content_hash: string }>('SELECT content_hash FROM agentcache_assets WHERE account_id = $1 AND object_key LIKE $2', [account.id, 'b/%']);
    expect(hashes.rows.map((row) => row.content_hash.trim())).toEqual([sha256(second), sha256(second), sha256(second)]);

    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'b/multipart-2' }));
    expect(sha256(await readAll(got.Body as AsyncIterable<Uint8Array>))).toBe(sha256(second));
    s3.destroy();
  });
});

/** The same path with the s3 backend (s3rver): parts go to the upstream's own multipart upload. */
describe('multipart uploads over the s3 backend', () => {
  let upstream: TestS3Server;
  let server: TestServer;
  let s3: S3Client;

  beforeAll(async () => {
    upstream = await startS3rver();
    server = await startTestServer({
      STORAGE_BACKEND: 's3',
      LYVE_ENDPOINT: upstream.endpoint,
      LYVE_ACCESS_KEY_ID: upstream.accessKeyId,
      LYVE_SECRET_ACCESS_KEY: upstream.secretAccessKey,
      LYVE_BUCKET_NAME: upstream.bucket,
    });
    s3 = s3Client(server, await provisionAccount(server));
  });
  afterAll(async () => {
    s3?.destroy();
    if (server) await blobHashingSettled(server);
    await server?.close();
    await upstream?.close();
  });

  it('completes to the bytes, dedups against a PUT of them, and aborts', async () => {
    const data = generatedBytes('upstream', 0, 6 * MiB);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'put', Body: data }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'parts' }));
    const parts = [];
    for (const [index, body] of [data.subarray(0, 5 * MiB), data.subarray(5 * MiB)].entries()) {
      const { ETag } = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'parts', UploadId, PartNumber: index + 1, Body: body }));
      parts.push({ ETag, PartNumber: index + 1 });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: 'parts', UploadId, MultipartUpload: { Parts: parts } }));
    await blobHashingSettled(server);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'parts' }));
    expect(sha256(await readAll(got.Body as AsyncIterable<Uint8Array>))).toBe(sha256(data));
    const blobs = await server.db.query<{ refcount: number }>('SELECT refcount FROM blobs WHERE sha256 = $1', [sha256(data)]);
    expect(blobs.rows.map((row) => row.refcount)).toEqual([2]);

    const aborted = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'aborted' }));
    await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'aborted', UploadId: aborted.UploadId, PartNumber: 1, Body: 'x' }));
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'default', Key: 'aborted', UploadId: aborted.UploadId }));
    expect((await server.db.query('SELECT 1 FROM multipart_uploads')).rowCount).toBe(0);
  });
});

