import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import aws4 from 'aws4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, waitFor, type Provisioned } from '../helpers/admin.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const MiB = 1024 * 1024;

describe('bandwidth quota', () => {
  let server: TestServer;
  // The gateway's month follows this clock, not the machine's.
  let now = new Date('2025-03-14T12:00:00Z');

  beforeAll(async () => {
    server = await startTestServer({ BANDWIDTH_FLUSH_MS: '50' }, { clock: () => now });
  });
  afterAll(async () => {
    await server?.close();
  });

  async function accountWithQuota(bandwidthQuotaBytes: number | null): Promise<{ account: Provisioned; s3: S3Client }> {
    const account = await provisionAccount(server);
    await setBandwidthQuota(account, bandwidthQuotaBytes);
    return { account, s3: s3Client(server, account) };
  }

  async function setBandwidthQuota(account: Provisioned, bytes: number | null): Promise<void> {
    const set = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, bandwidth_quota_bytes: bytes });
    expect(set.status).toBe(200);
  }

  async function storedUsage(account: Provisioned, periodStart: string): Promise<number | undefined> {
    const { rows } = await server.db.query<{ bytes: number }>('SELECT bytes FROM bandwidth_usage WHERE account_id = $1 AND period_start = $2::date', [account.id, periodStart]);
    return rows[0]?.bytes;
  }

  /** Waits until the row holds `bytes`: flushes are batched, so it gets there within a flush or two. */
  async function usageReaches(account: Provisioned, periodStart: string, bytes: number): Promise<void> {
    await waitFor(`bandwidth_usage ${periodStart} = ${bytes}`, async () => ((await storedUsage(account, periodStart)) === bytes ? true : undefined), 5_000);
  }

  async function download(s3: S3Client, key: string, range?: string): Promise<Buffer> {
    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: key, ...(range && { Range: range }) }));
    return readAll(got.Body as AsyncIterable<Uint8Array>);
  }

  it('refuses a download mid-month that would cross the quota, and serves it again at the turn of the month', async () => {
    const { account, s3 } = await accountWithQuota(1000);
    const body = randomBytes(400);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'report.bin', Body: body }));

    expect((await download(s3, 'report.bin')).equals(body)).toBe(true);
    // A range counts only its own bytes.
    expect((await download(s3, 'report.bin', 'bytes=100-199')).equals(body.subarray(100, 200))).toBe(true);
    // Neither HEAD nor a 304 sends a body, so neither counts.
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'default', Key: 'report.bin' }));
    await expect(s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'report.bin', IfNoneMatch: head.ETag }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 304 } });
    expect((await download(s3, 'report.bin')).equals(body)).toBe(true);
    await usageReaches(account, '2025-03-01', 900);

    // 900 + 400 would cross 1000: refused before a byte is sent.
    const refused = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'report.bin' })).catch((error: unknown) => error);
    expect(refused).toMatchObject({ name: 'QuotaExceeded', $metadata: { httpStatusCode: 403 } });
    expect((refused as Error).message).toContain('900 bytes used of 1000 bytes');
    // Exactly the rest still fits; after it nothing does, not even one byte.
    expect((await download(s3, 'report.bin', 'bytes=0-99')).equals(body.subarray(0, 100))).toBe(true);
    await expect(download(s3, 'report.bin', 'bytes=0-0')).rejects.toMatchObject({ name: 'QuotaExceeded' });
    await usageReaches(account, '2025-03-01', 1000);

    now = new Date('2025-04-01T00:00:00Z');
    expect((await download(s3, 'report.bin')).equals(body)).toBe(true);
    await usageReaches(account, '2025-04-01', 400);
    expect(await storedUsage(account, '2025-03-01')).toBe(1000);
    s3.destroy();
  });

  it('lets racing downloads use the quota up to the byte and not beyond', async () => {
    const { account, s3 } = await accountWithQuota(1000);
    const body = randomBytes(300);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'race.bin', Body: body }));
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => download(s3, 'race.bin')));
    const served = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    expect(served).toHaveLength(3);
    for (const outcome of served) expect(outcome.value.equals(body)).toBe(true);
    for (const outcome of outcomes) if (outcome.status === 'rejected') expect(outcome.reason).toMatchObject({ name: 'QuotaExceeded' });
    await usageReaches(account, now.toISOString().slice(0, 8) + '01', 900);
    s3.destroy();
  });

  it('applies a lowered or raised quota at once', async () => {
    const { account, s3 } = await accountWithQuota(1000);
    const body = randomBytes(400);
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'plan.bin', Body: body }));
    await download(s3, 'plan.bin');

    await setBandwidthQuota(account, 600);
    const refused = await download(s3, 'plan.bin').catch((error: unknown) => error);
    expect(refused).toMatchObject({ name: 'QuotaExceeded', $metadata: { httpStatusCode: 403 } });
    expect((refused as Error).message).toContain('400 bytes used of 600 bytes');

    // Back to the tier's (pro: gigabytes a month).
    await setBandwidthQuota(account, null);
    expect((await download(s3, 'plan.bin')).equals(body)).toBe(true);
    s3.destroy();
  });

  it("charges a GetObject by part number the part's bytes", async () => {
    const { account, s3 } = await accountWithQuota(null);
    const parts = [randomBytes(5 * MiB), randomBytes(1000)];
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'parts.bin' }));
    const etags = [];
    for (const [index, part] of parts.entries()) {
      const uploaded = await s3.send(new UploadPartCommand({ Bucket: 'default', Key: 'parts.bin', UploadId, PartNumber: index + 1, Body: part }));
      etags.push({ PartNumber: index + 1, ETag: uploaded.ETag });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'default', Key: 'parts.bin', UploadId, MultipartUpload: { Parts: etags } }));

    const got = await s3.send(new GetObjectCommand({ Bucket: 'default', Key: 'parts.bin', PartNumber: 2 }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(parts[1]!)).toBe(true);
    await usageReaches(account, now.toISOString().slice(0, 8) + '01', 1000);
    s3.destroy();
  });

  it('charges a client that leaves midway no more than the body and at least what it received', async () => {
    const { account, s3 } = await accountWithQuota(null);
    const size = 8 * MiB;
    await s3.send(new PutObjectCommand({ Bucket: 'default', Key: 'large.bin', Body: randomBytes(size) }));
    s3.destroy();

    const received = await receiveThenLeave(server, account, '/default/large.bin', 256 * 1024);
    expect(received).toBeGreaterThanOrEqual(256 * 1024);
    const periodStart = now.toISOString().slice(0, 8) + '01';
    // The charge is final once the gateway sees the connection gone: wait until the row stops moving.
    let charged = -1;
    await waitFor('the charge to settle', async () => {
      const before = await storedUsage(account, periodStart);
      await sleep(200);
      const after = await storedUsage(account, periodStart);
      charged = after ?? -1;
      return after !== undefined && after === before ? true : undefined;
    });
    expect(charged).toBeGreaterThanOrEqual(received);
    // Charged for what reached the connection, not for the whole object it asked for.
    expect(charged).toBeLessThan(size);
  });
});

/** A signed GET that reads `atLeast` bytes of the body, then drops the connection; resolves to the bytes read. */
function receiveThenLeave(server: TestServer, account: Provisioned, path: string, atLeast: number): Promise<number> {
  const url = new URL(server.gatewayUrl);
  const signed = aws4.sign({ host: url.host, method: 'GET', path, service: 's3', region: 'us-east-1' }, { accessKeyId: account.apiKey, secretAccessKey: account.apiSecret });
  return new Promise((resolve, reject) => {
    const request = http.get({ host: url.hostname, port: url.port, path, headers: signed.headers as http.OutgoingHttpHeaders }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`GET answered ${response.statusCode}`));
        return;
      }
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= atLeast) {
          response.pause();
          request.destroy();
          resolve(received);
        }
      });
    });
    request.on('error', (error) => {
      if (!request.destroyed) reject(error);
    });
  });
}
