import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { MiB, storageState, streamedPut, xmlElement } from '../helpers/quota.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('a quota lowered below what the account stores', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  async function filledAccount(keys: string[]): Promise<{ account: Provisioned; s3: S3Client; bodies: Map<string, Buffer> }> {
    const account = await provisionAccount(server, undefined, 'pro');
    const s3 = s3Client(server, account);
    const bodies = new Map<string, Buffer>();
    for (const key of keys) {
      const body = randomBytes(MiB);
      await s3.send(new PutObjectCommand({ Bucket: 'default', Key: key, Body: body }));
      bodies.set(key, body);
    }
    return { account, s3, bodies };
  }

  async function expectReadable(s3: S3Client, bodies: Map<string, Buffer>): Promise<void> {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'default' }));
    expect((listed.Contents ?? []).map((entry) => entry.Key)).toEqual([...bodies.keys()].sort());
    for (const [key, body] of bodies) {
      expect((await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: key }))).ContentLength).toBe(body.length);
      const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: key }));
      expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    }
  }

  async function putRefused(account: Provisioned, key: string, size: number): Promise<string | undefined> {
    const answer = await streamedPut(server.gatewayUrl, account, `/default/${key}`, { chunks: [randomBytes(size)], contentLength: size });
    expect([answer.status, xmlElement(answer.body, 'Code')]).toEqual([403, 'QuotaExceeded']);
    return xmlElement(answer.body, 'Message');
  }

  it('refuses writes but keeps reads, lists and deletes, and each delete frees room', async () => {
    const { account, s3, bodies } = await filledAccount(['a', 'b', 'c']);
    const lowered = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, storage_quota_bytes: 2 * MiB });
    expect(lowered.status).toBe(200);

    expect(await putRefused(account, 'one-byte', 1)).toContain('3.00 MB used of 2.00 MB');
    // Overwriting with fewer bytes is a write too: its whole new size must fit.
    await putRefused(account, 'a', 1);
    await expectReadable(s3, bodies);

    await s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: 'c' }));
    bodies.delete('c');
    // At the quota exactly: still no room for one byte.
    expect(await putRefused(account, 'one-byte', 1)).toContain('2.00 MB used of 2.00 MB');
    await s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: 'b' }));
    bodies.delete('b');

    const fits = randomBytes(MiB);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'fits', Body: fits }));
    bodies.set('fits', fits);
    await expectReadable(s3, bodies);
    expect(await storageState(server.db, account.id)).toMatchObject({ used: 2 * MiB, objectBytes: 2 * MiB, reserved: 0, reservations: 0, objects: 2 });
    s3.destroy();
  });

  it('a tier change down to free refuses every write at once and keeps the data readable and deletable', async () => {
    const { account, s3, bodies } = await filledAccount(['x', 'y']);
    // The free tier also has no download bandwidth and 10 requests a minute; this is about storage, so the
    // account keeps an allowance of both.
    const allowance = await admin(server, 'POST', '/api/agentcache/overrides', {
      agentcache_user_id: account.agentcacheUserId,
      bandwidth_quota_bytes: 1024 * MiB,
      rate_limit_per_minute: 10_000,
    });
    expect(allowance.status).toBe(200);
    const down = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: account.agentcacheUserId, new_tier: 'free' });
    expect(down.status).toBe(200);

    expect(await putRefused(account, 'z', 1)).toContain('2.00 MB used of 0 bytes');
    await expectReadable(s3, bodies);
    await s3.send(new DeleteObjectCommand({ Bucket: 'default', Key: 'x' }));
    bodies.delete('x');
    await expectReadable(s3, bodies);
    expect(await storageState(server.db, account.id)).toMatchObject({ used: MiB, objectBytes: MiB, objects: 1 });

    // Back up a tier, the same account writes again.
    expect((await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: account.agentcacheUserId, new_tier: 'starter' })).status).toBe(200);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'z', Body: 'back' }));
    s3.destroy();
  });
});
