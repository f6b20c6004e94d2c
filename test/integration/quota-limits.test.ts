import { randomBytes } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { backendFiles, MiB, storageState, streamedPut, xmlElement } from '../helpers/quota.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Splits `body` into writes of `size` bytes, as a streaming client sends it. */
function chunksOf(body: Buffer, size = 64 * 1024): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += size) chunks.push(body.subarray(offset, offset + size));
  return chunks;
}

describe('storage quota and largest object on the PUT path', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  async function limitedAccount(limits: { storage_quota_bytes?: number; max_file_size_bytes?: number }): Promise<Provisioned> {
    const account = await provisionAccount(server);
    const set = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, ...limits });
    expect(set.status).toBe(200);
    return account;
  }

  /** Nothing of a refused upload is left: no row, no blob, no staged write, no backend file, no reservation. */
  async function expectNothingLeftBehind(account: Provisioned, expected: { objects: number; used: number }): Promise<void> {
    const state = await storageState(server.db, account.id);
    expect(state).toMatchObject({ objects: expected.objects, blobs: expected.objects, stagedWrites: 0, reserved: 0, reservations: 0, used: expected.used, objectBytes: expected.used });
    const files = await backendFiles(server.dataDir, account.agentcacheUserId);
    expect(files.objects).toHaveLength(expected.objects);
    expect(files.staging).toEqual([]);
  }

  it('refuses every upload on the free tier (0 GB) with 403 QuotaExceeded naming used and quota', async () => {
    const account = await provisionAccount(server, undefined, 'free');
    const answer = await streamedPut(server.gatewayUrl, account, '/default/one-byte', { chunks: [Buffer.from('x')], contentLength: 1 });
    expect(answer.status).toBe(403);
    expect(xmlElement(answer.body, 'Code')).toBe('QuotaExceeded');
    expect(xmlElement(answer.body, 'Message')).toMatch(/0 bytes used of 0 bytes/);
    await expectNothingLeftBehind(account, { objects: 0, used: 0 });
  });

  it('answers QuotaExceeded with what is used and what the quota is, and stores nothing', async () => {
    const account = await limitedAccount({ storage_quota_bytes: 2 * MiB });
    const s3 = s3Client(server, account);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'first', Body: randomBytes(1.5 * MiB) }));
    const answer = await streamedPut(server.gatewayUrl, account, '/default/second', { chunks: [randomBytes(MiB)], contentLength: MiB, expectContinue: true });
    expect(answer).toMatchObject({ status: 403, continued: false, bytesSent: 0 });
    expect(xmlElement(answer.body, 'Code')).toBe('QuotaExceeded');
    expect(xmlElement(answer.body, 'Message')).toContain('1.50 MB used of 2.00 MB');
    await expect(s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'second', Body: randomBytes(MiB) }))).rejects.toMatchObject({
      name: 'QuotaExceeded',
      $metadata: { httpStatusCode: 403 },
    });
    await expectNothingLeftBehind(account, { objects: 1, used: 1.5 * MiB });
    s3.destroy();
  });

  it('refuses a declared length over the largest object before reading the body, and stores nothing', async () => {
    const account = await limitedAccount({ max_file_size_bytes: MiB });
    const answer = await streamedPut(server.gatewayUrl, account, '/default/big', { chunks: [randomBytes(MiB + 1)], contentLength: MiB + 1, expectContinue: true });
    expect(answer).toMatchObject({ status: 400, continued: false, bytesSent: 0 });
    expect(xmlElement(answer.body, 'Code')).toBe('EntityTooLarge');
    await expectNothingLeftBehind(account, { objects: 0, used: 0 });
    const exact = await streamedPut(server.gatewayUrl, account, '/default/exact', { chunks: [randomBytes(MiB)], contentLength: MiB, expectContinue: true });
    expect(exact).toMatchObject({ status: 200, continued: true, bytesSent: MiB });
    await expectNothingLeftBehind(account, { objects: 1, used: MiB });
  });

  it('stores a body of unknown length under the limits whole, its usage counted exactly', async () => {
    const account = await limitedAccount({ storage_quota_bytes: 20 * MiB, max_file_size_bytes: 12 * MiB });
    // Longer than one step of the reservation's growth, so it grows while the body streams.
    const body = randomBytes(10 * MiB + 123);
    const answer = await streamedPut(server.gatewayUrl, account, '/default/streamed', { chunks: chunksOf(body, 256 * 1024) });
    expect(answer.status).toBe(200);
    const s3 = s3Client(server, account);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'streamed' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(body)).toBe(true);
    await expectNothingLeftBehind(account, { objects: 1, used: body.length });
    s3.destroy();
  });

  it('cuts a body of unknown length off at the quota left: 403 QuotaExceeded, nothing stored', async () => {
    const account = await limitedAccount({ storage_quota_bytes: 3 * MiB, max_file_size_bytes: 100 * MiB });
    const s3 = s3Client(server, account);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'kept', Body: randomBytes(MiB) }));
    const answer = await streamedPut(server.gatewayUrl, account, '/default/overflow', { chunks: chunksOf(randomBytes(2 * MiB + 1)) });
    expect(answer.status).toBe(403);
    expect(xmlElement(answer.body, 'Code')).toBe('QuotaExceeded');
    expect(xmlElement(answer.body, 'Message')).toContain('1.00 MB used of 3.00 MB');
    await expectNothingLeftBehind(account, { objects: 1, used: MiB });
    // Exactly what is left still fits.
    const fits = await streamedPut(server.gatewayUrl, account, '/default/fits', { chunks: chunksOf(randomBytes(2 * MiB)) });
    expect(fits.status).toBe(200);
    await expectNothingLeftBehind(account, { objects: 2, used: 3 * MiB });
    s3.destroy();
  });

  it('a stalled body of unknown length holds little more than it sent, so uploads beside it still fit', async () => {
    const account = await limitedAccount({ storage_quota_bytes: 10 * MiB, max_file_size_bytes: 100 * MiB });
    const s3 = s3Client(server, account);
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    const firstHalf = randomBytes(64 * 1024);
    const secondHalf = randomBytes(64 * 1024);
    const stalled = streamedPut(server.gatewayUrl, account, '/default/stalled', {
      chunks: [firstHalf, secondHalf],
      beforeChunk: (index) => (index === 1 ? resumed : Promise.resolve()),
    });
    const holding = await waitForReserved(account, (reserved) => reserved > 0);
    expect(holding).toBeLessThanOrEqual(2 * MiB);

    // Fits only if the stalled upload did not reserve all that is left for itself.
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'beside', Body: randomBytes(8 * MiB) }));
    resume();
    expect((await stalled).status).toBe(200);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'stalled' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(Buffer.concat([firstHalf, secondHalf]))).toBe(true);
    await expectNothingLeftBehind(account, { objects: 2, used: 8 * MiB + 128 * 1024 });
    s3.destroy();
  });

  async function waitForReserved(account: Provisioned, ready: (reserved: number) => boolean): Promise<number> {
    for (let polls = 0; polls < 200; polls++) {
      const { reserved } = await storageState(server.db, account.id);
      if (ready(reserved)) return reserved;
      await new Promise((tick) => setTimeout(tick, 25));
    }
    throw new Error('the upload never reserved storage');
  }

  it('cuts a body of unknown length off at the largest object: 400 EntityTooLarge, nothing stored', async () => {
    const account = await limitedAccount({ storage_quota_bytes: 100 * MiB, max_file_size_bytes: MiB });
    const answer = await streamedPut(server.gatewayUrl, account, '/default/too-big', { chunks: chunksOf(randomBytes(MiB + 1)) });
    expect(answer.status).toBe(400);
    expect(xmlElement(answer.body, 'Code')).toBe('EntityTooLarge');
    await expectNothingLeftBehind(account, { objects: 0, used: 0 });
  });
});
