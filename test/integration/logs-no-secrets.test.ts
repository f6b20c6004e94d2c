import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota } from '../helpers/admin.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, TEST_ADMIN_SECRET, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

describe('request log lines', () => {
  it('a provision, upload, download, rotate cycle logs one line per request with its fields and no secret', async () => {
    const account = await provisionAccount(server);
    const bucket = `logs-${randomBytes(4).toString('hex')}`;
    const body = randomBytes(3000);
    const oldClient = s3Client(server, account);
    const s3RequestIds: string[] = [];

    s3RequestIds.push((await oldClient.send(new CreateBucketCommand({ Bucket: bucket }))).$metadata.requestId!);
    s3RequestIds.push((await oldClient.send(new PutObjectCommand({ Bucket: bucket, Key: 'a.bin', Body: body }))).$metadata.requestId!);
    const download = await oldClient.send(new GetObjectCommand({ Bucket: bucket, Key: 'a.bin' }));
    expect(await readAll(download.Body as AsyncIterable<Uint8Array>)).toEqual(body);
    s3RequestIds.push(download.$metadata.requestId!);

    const rotated = await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    expect(rotated.status).toBe(200);
    const newSecret: string = rotated.body.account.api_secret;
    const newClient = s3Client(server, { apiKey: account.apiKey, apiSecret: newSecret });
    s3RequestIds.push((await newClient.send(new PutObjectCommand({ Bucket: bucket, Key: 'b.bin', Body: body }))).$metadata.requestId!);
    // The old secret still works during its grace period.
    const again = await oldClient.send(new GetObjectCommand({ Bucket: bucket, Key: 'b.bin' }));
    expect(await readAll(again.Body as AsyncIterable<Uint8Array>)).toEqual(body);
    s3RequestIds.push(again.$metadata.requestId!);
    expect((await quota(server, account.apiKey, newSecret)).status).toBe(200);

    const logs = server.logText();
    for (const secret of [account.apiSecret, newSecret, TEST_ADMIN_SECRET]) expect(logs).not.toContain(secret);
    for (const secret of [account.apiSecret, newSecret]) expect(logs).not.toContain(secret.slice('jts_'.length));

    // provision, 5 S3 requests, rotate, quota: one line each.
    const lines = server.logs.filter((line) => line.msg === 'request');
    expect(lines).toHaveLength(8);
    expect(new Set(lines.map((line) => line.reqId)).size).toBe(8);
    for (const line of lines) {
      expect(line).toEqual(
        expect.objectContaining({
          reqId: expect.any(String),
          account: expect.toSatisfy((value: unknown) => value === null || value === account.id),
          operation: expect.any(String),
          status: expect.any(Number),
          bytesIn: expect.any(Number),
          bytesOut: expect.any(Number),
          ms: expect.any(Number),
        }),
      );
    }
    const byId = new Map(lines.map((line) => [line.reqId, line]));
    expect(s3RequestIds.map((id) => byId.get(id)?.operation)).toEqual(['CreateBucket', 'PutObject', 'GetObject', 'PutObject', 'GetObject']);
    for (const id of s3RequestIds) expect(byId.get(id)).toMatchObject({ surface: 's3', account: account.id, status: 200 });
    expect(byId.get(s3RequestIds[2]!)).toMatchObject({ bytesOut: body.length });
    expect(lines.filter((line) => line.surface === 'admin').map((line) => [line.operation, line.account])).toEqual([
      ['/api/agentcache/provision', null],
      ['/api/agentcache/rotate', null],
    ]);
    expect(lines.find((line) => line.surface === 'rest')).toMatchObject({ operation: '/api/agentcache/quota', account: account.id, status: 200 });
  });
});
