import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  ListBucketsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BUCKETS_PER_ACCOUNT } from '../../src/gateway/ops/create-bucket.js';
import { CREATE_BUCKET_MAX_BODY_BYTES } from '../../src/gateway/xml-input.js';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const bucketName = (label: string) => `${label}-${randomBytes(4).toString('hex')}`;

describe('buckets through the SDK', () => {
  let server: TestServer;
  let account: Provisioned;
  let other: Provisioned;
  let s3: S3Client;
  let otherS3: S3Client;

  beforeAll(async () => {
    server = await startTestServer();
    account = await provisionAccount(server);
    other = await provisionAccount(server);
    s3 = s3Client(server, account);
    otherS3 = s3Client(server, other);
  });
  afterAll(async () => {
    s3?.destroy();
    otherS3?.destroy();
    await server?.close();
  });

  it('lists the provisioned default bucket with the account as owner', async () => {
    const listed = await s3.send(new ListBucketsCommand({}));
    expect(listed.Owner).toEqual({ ID: account.id, DisplayName: account.agentcacheUserId });
    expect(listed.Buckets?.map((b) => b.Name)).toContain('default');
    expect(listed.Buckets?.every((b) => b.CreationDate instanceof Date)).toBe(true);
  });

  it('creates a bucket that heads, lists in byte order and reports an empty configuration', async () => {
    const names = [bucketName('zeta'), bucketName('alpha'), bucketName('0-digits')];
    for (const name of names) {
      const created = await s3.send(new CreateBucketCommand({ Bucket: name }));
      expect(created.Location).toBe(`/${name}`);
    }
    const listed = (await s3.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name!);
    expect(listed).toEqual([...listed].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(listed).toEqual(expect.arrayContaining(names));

    const head = await s3.send(new HeadBucketCommand({ Bucket: names[0] }));
    expect(head.$metadata.httpStatusCode).toBe(200);
    expect(head.BucketRegion).toBe('us-east-1');
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: names[0] }));
    expect(location.LocationConstraint ?? '').toBe(''); // us-east-1 is the empty constraint
    const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: names[0] }));
    expect(versioning.Status).toBeUndefined();
  });

  it('answers BucketAlreadyOwnedByYou (409) to a second create of the same name', async () => {
    const name = bucketName('twice');
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    const error = await s3.send(new CreateBucketCommand({ Bucket: name })).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'BucketAlreadyOwnedByYou', $metadata: { httpStatusCode: 409 } });
  });

  it('lets two accounts own buckets of the same name, each seeing only its own', async () => {
    const name = bucketName('images');
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    await otherS3.send(new CreateBucketCommand({ Bucket: name }));
    await s3.send(new PutObjectCommand({ Bucket: name, Key: 'mine', Body: 'a' }));
    await expect(otherS3.send(new DeleteBucketCommand({ Bucket: name }))).resolves.toBeDefined();
    await expect(s3.send(new HeadBucketCommand({ Bucket: name }))).resolves.toBeDefined();
    const theirs = (await otherS3.send(new ListBucketsCommand({}))).Buckets!.map((b) => b.Name);
    expect(theirs).not.toContain(name);
  });

  it.each([
    ['Upper-Case', 'lowercase'],
    ['ab', 'between 3 and 63'],
    // `api` and `healthz` are reserved too, but path-style `/api` is the REST API's before it is S3's.
    ['xn--punycode', 'prefix xn--'],
    ['192.168.5.4', 'IP address'],
    ['bad..dots', 'adjacent periods'],
    ['-leading', 'begin and end'],
  ])('refuses the bucket name %s with InvalidBucketName', async (name, why) => {
    const error = await s3.send(new CreateBucketCommand({ Bucket: name })).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'InvalidBucketName', $metadata: { httpStatusCode: 400 } });
    expect((error as Error).message).toContain(why);
  });

  it('accepts a LocationConstraint naming the region the client signs for, and reports it', async () => {
    const regional = new S3Client({
      region: 'eu-west-1',
      endpoint: server.gatewayUrl,
      forcePathStyle: true,
      credentials: { accessKeyId: account.apiKey, secretAccessKey: account.apiSecret },
      maxAttempts: 1,
    });
    try {
      const name = bucketName('eu');
      await regional.send(new CreateBucketCommand({ Bucket: name, CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' } }));
      expect((await regional.send(new GetBucketLocationCommand({ Bucket: name }))).LocationConstraint).toBe('eu-west-1');
      // S3's legacy name for eu-west-1.
      await regional.send(new CreateBucketCommand({ Bucket: bucketName('eu-legacy'), CreateBucketConfiguration: { LocationConstraint: 'EU' } }));
    } finally {
      regional.destroy();
    }
  });

  it('refuses a LocationConstraint naming another region with IllegalLocationConstraintException', async () => {
    const name = bucketName('elsewhere');
    const error = await s3.send(new CreateBucketCommand({ Bucket: name, CreateBucketConfiguration: { LocationConstraint: 'ap-south-1' } })).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'IllegalLocationConstraintException', $metadata: { httpStatusCode: 400 } });
    expect((error as Error).message).toBe('The ap-south-1 location constraint is incompatible for the region specific endpoint this request was sent to.');
    await expect(s3.send(new HeadBucketCommand({ Bucket: name }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('refuses a malformed configuration, an oversized one, and a body that does not match its signed hash', async () => {
    const name = bucketName('raw');
    const malformed = await signedRequest(server, account, { method: 'PUT', path: `/${name}`, body: '<CreateBucketConfiguration><LocationConstraint>' });
    expect(malformed.status).toBe(400);
    expect(xmlText(malformed.body, 'Code')).toBe('MalformedXML');

    const huge = `<CreateBucketConfiguration>${' '.repeat(CREATE_BUCKET_MAX_BODY_BYTES)}</CreateBucketConfiguration>`;
    const oversized = await signedRequest(server, account, { method: 'PUT', path: `/${name}`, body: huge });
    expect(xmlText(oversized.body, 'Code')).toBe('MaxMessageLengthExceeded');

    const signedBody = '<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>';
    const tampered = await signedRequest(server, account, { method: 'PUT', path: `/${name}`, body: signedBody, sentBody: signedBody.replace('us-east-1', 'eu-west-9') });
    expect(xmlText(tampered.body, 'Code')).toBe('XAmzContentSHA256Mismatch');
    await expect(s3.send(new HeadBucketCommand({ Bucket: name }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('answers TooManyBuckets once the account owns the maximum', async () => {
    const crowded = await provisionAccount(server);
    await server.db.query(`INSERT INTO buckets (account_id, name) SELECT $1, 'filler-' || n FROM generate_series(2, $2) AS n`, [crowded.id, MAX_BUCKETS_PER_ACCOUNT]);
    const client = s3Client(server, crowded);
    try {
      const error = await client.send(new CreateBucketCommand({ Bucket: bucketName('one-more') })).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'TooManyBuckets', $metadata: { httpStatusCode: 400 } });
    } finally {
      client.destroy();
    }
  });

  it('deletes an empty bucket (204), after which it is NoSuchBucket', async () => {
    const name = bucketName('empty');
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    const deleted = await s3.send(new DeleteBucketCommand({ Bucket: name }));
    expect(deleted.$metadata.httpStatusCode).toBe(204);
    await expect(s3.send(new HeadBucketCommand({ Bucket: name }))).rejects.toMatchObject({ name: 'NotFound', $metadata: { httpStatusCode: 404 } });
    await expect(s3.send(new GetBucketLocationCommand({ Bucket: name }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
    await expect(s3.send(new GetBucketVersioningCommand({ Bucket: name }))).rejects.toMatchObject({ name: 'NoSuchBucket' });
    await expect(s3.send(new DeleteBucketCommand({ Bucket: name }))).rejects.toMatchObject({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } });
  });

  it('answers BucketNotEmpty (409) while an object is left', async () => {
    const name = bucketName('full');
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    await s3.send(new PutObjectCommand({ Bucket: name, Key: 'left', Body: 'x' }));
    const error = await s3.send(new DeleteBucketCommand({ Bucket: name })).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'BucketNotEmpty', $metadata: { httpStatusCode: 409 } });
    await expect(s3.send(new HeadBucketCommand({ Bucket: name }))).resolves.toBeDefined();
  });

  it('deletes a bucket whose only objects are past their TTL, releasing their blobs and usage', async () => {
    const name = bucketName('expired');
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    const usedBefore = await usedBytes(server, account.id);
    await s3.send(new PutObjectCommand({ Bucket: name, Key: 'old', Body: randomBytes(777) }));
    await server.db.query(`UPDATE agentcache_assets SET expires_at = now() - interval '1 minute' WHERE object_key = 'old' AND account_id = $1`, [account.id]);
    const { rows } = await server.db.query<{ backend_key: string }>(
      `SELECT b.backend_key FROM agentcache_assets o JOIN blobs b ON b.id = o.blob_id WHERE o.object_key = 'old' AND o.account_id = $1`,
      [account.id],
    );

    expect((await s3.send(new DeleteBucketCommand({ Bucket: name }))).$metadata.httpStatusCode).toBe(204);
    expect(await usedBytes(server, account.id)).toBe(usedBefore);
    expect(await server.backend.head({ key: rows[0]!.backend_key })).toBeNull();
  });

  it('refuses to delete the default bucket the REST API stores into', async () => {
    await expect(s3.send(new DeleteBucketCommand({ Bucket: 'default' }))).rejects.toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    await expect(s3.send(new HeadBucketCommand({ Bucket: 'default' }))).resolves.toBeDefined();
  });
});

async function usedBytes(server: TestServer, accountId: string): Promise<number> {
  const { rows } = await server.db.query<{ used: number }>('SELECT storage_used_bytes AS used FROM agentcache_accounts WHERE id = $1', [accountId]);
  return Number(rows[0]!.used);
}
