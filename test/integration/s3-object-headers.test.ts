import { randomBytes } from 'node:crypto';
import { GetObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('object headers, conditions and refusals', () => {
  let server: TestServer;
  let account: Provisioned;
  let s3: S3Client;
  let stored: { etag: string; lastModified: Date };
  const body = randomBytes(2048);

  beforeAll(async () => {
    server = await startTestServer({ S3_DOMAIN: 's3.test.local' });
    account = await provisionAccount(server);
    s3 = s3Client(server, account);
    await s3.send(
      new PutObjectCommand({
        Bucket: 'default',
        Key: 'doc.txt',
        Body: body,
        ContentType: 'text/plain',
        ContentDisposition: 'attachment; filename="doc.txt"',
        ContentLanguage: 'en',
        CacheControl: 'max-age=60',
        ContentEncoding: 'identity',
        Expires: new Date('2030-01-01T00:00:00Z'),
        Metadata: { 'pipeline-id': 'p-1', note: 'hello' },
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'doc.txt' }));
    stored = { etag: head.ETag!, lastModified: head.LastModified! };
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });

  it('stores and returns every header S3 keeps', async () => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'doc.txt' }));
    expect(head).toMatchObject({
      ContentType: 'text/plain',
      ContentDisposition: 'attachment; filename="doc.txt"',
      ContentLanguage: 'en',
      CacheControl: 'max-age=60',
      ContentEncoding: 'identity',
      ContentLength: 2048,
      Metadata: { 'pipeline-id': 'p-1', note: 'hello' },
    });
    expect(head.Expires?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });

  it('applies the response-* overrides to one answer', async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'doc.txt', ResponseContentType: 'application/json', ResponseCacheControl: 'no-store' }));
    expect(got.ContentType).toBe('application/json');
    expect(got.CacheControl).toBe('no-store');
    await readAll(got.Body as AsyncIterable<Uint8Array>);
  });

  it('answers If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since as S3 does', async () => {
    const get = (input: Partial<ConstructorParameters<typeof GetObjectCommand>[0]>) => s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'doc.txt', ...input }));
    const ok = await get({ IfMatch: stored.etag });
    expect((await readAll(ok.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    await expect(get({ IfMatch: '"0000"' })).rejects.toMatchObject({ name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
    await expect(get({ IfNoneMatch: stored.etag })).rejects.toMatchObject({ $metadata: { httpStatusCode: 304 } });
    const later = new Date(stored.lastModified.getTime() + 60_000);
    const earlier = new Date(stored.lastModified.getTime() - 60_000);
    await expect(get({ IfModifiedSince: later })).rejects.toMatchObject({ $metadata: { httpStatusCode: 304 } });
    await expect(get({ IfUnmodifiedSince: earlier })).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    // If-Match that holds wins over an If-Unmodified-Since that does not (RFC 9110 section 13.2.2).
    const both = await get({ IfMatch: stored.etag, IfUnmodifiedSince: earlier });
    await readAll(both.Body as AsyncIterable<Uint8Array>);
    expect(both.$metadata.httpStatusCode).toBe(200);
  });

  it('refuses metadata over 2 KB and keys over 1024 bytes, storing nothing', async () => {
    await expect(s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'meta', Body: 'x', Metadata: { big: 'v'.repeat(2100) } }))).rejects.toMatchObject({ name: 'MetadataTooLarge' });
    await expect(s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'k'.repeat(1025), Body: 'x' }))).rejects.toMatchObject({ name: 'KeyTooLongError' });
    const rows = await server.db.query("SELECT 1 FROM agentcache_assets WHERE object_key = 'meta' OR length(object_key) > 1024");
    expect(rows.rowCount).toBe(0);
  });

  it('sends S3 error XML with a request id, and a HEAD error with no body', async () => {
    const response = await fetch(`${server.gatewayUrl}/default/doc.txt`);
    expect(response.status).toBe(403);
    expect(response.headers.get('x-amz-request-id')).toMatch(/^[0-9A-F]{16}$/);
    const text = await response.text();
    expect(text).toContain('<Code>AccessDenied</Code>');
    expect(text).toContain(`<RequestId>${response.headers.get('x-amz-request-id')}</RequestId>`);

    const head = await fetch(`${server.gatewayUrl}/default/doc.txt`, { method: 'HEAD' });
    expect(head.status).toBe(403);
    expect(await head.text()).toBe('');
  });

  it('answers NotImplemented for an operation it does not serve, without failing', async () => {
    await expect(s3.send(new GetObjectTaggingCommand({ Bucket: 'default', Key: 'doc.txt' }))).rejects.toMatchObject({ name: 'NotImplemented', $metadata: { httpStatusCode: 501 } });
  });

  it('serves virtual-hosted-style requests under S3_DOMAIN', async () => {
    const port = new URL(server.gatewayUrl).port;
    const virtual = new S3Client({
      endpoint: `http://s3.test.local:${port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: account.apiKey, secretAccessKey: account.apiSecret },
      maxAttempts: 1,
    });
    // Resolve <bucket>.s3.test.local to the test server without touching DNS.
    virtual.middlewareStack.add(
      (next) => async (args) => {
        const request = (args as { request: { hostname: string; headers: Record<string, string> } }).request;
        request.headers.host = `${request.hostname}:${port}`;
        request.hostname = '127.0.0.1';
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'loopback' },
    );
    const got = await virtual.send(new GetObjectCommand({ Bucket: 'default', Key: 'doc.txt' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    virtual.destroy();
  });

  it('refuses a suspended account with AccessDenied and serves it again after reactivation', async () => {
    const other = await provisionAccount(server);
    const client = s3Client(server, other);
    await client.send(new PutObjectCommand({ Bucket: 'default', Key: 'kept', Body: 'still here' }));
    expect((await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: other.agentcacheUserId })).status).toBe(200);
    await expect(client.send(new GetObjectCommand({ Bucket: 'default', Key: 'kept' }))).rejects.toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    await expect(client.send(new PutObjectCommand({ Bucket: 'default', Key: 'new', Body: 'x' }))).rejects.toMatchObject({ name: 'AccessDenied' });
    expect((await admin(server, 'POST', '/api/agentcache/reactivate', { agentcache_user_id: other.agentcacheUserId })).status).toBe(200);
    const got = await client.send(new GetObjectCommand({ Bucket: 'default', Key: 'kept' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).toString()).toBe('still here');
    client.destroy();
  });
});
