import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { createPostgresDatabase, testDatabaseUrl } from '../helpers/db.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// Two gateway processes on one PostgreSQL; PGlite is one process by nature, so this needs the server.
describe.runIf(testDatabaseUrl !== null)('account changes reach every gateway process at once', () => {
  let first: TestServer;
  let second: TestServer;
  let drop: () => Promise<void>;
  let account: Provisioned;

  beforeAll(async () => {
    const database = await createPostgresDatabase();
    drop = database.drop;
    first = await startTestServer({ DATABASE_URL: database.url });
    second = await startTestServer({ DATABASE_URL: database.url });
    account = await provisionAccount(first);
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await drop?.();
  });

  it('a suspension through one process refuses the next request on the other, and reactivation restores it', async () => {
    const viaSecond = s3Client(second, account);
    await viaSecond.send(new PutObjectCommand({ Bucket: 'default', Key: 'k', Body: 'v' }));
    // The second process has now cached the account as active.
    expect((await admin(first, 'POST', '/api/agentcache/suspend', { agentcache_user_id: account.agentcacheUserId })).status).toBe(200);
    await expect.poll(async () => (await viaSecond.send(new GetObjectCommand({ Bucket: 'default', Key: 'k' })).then(() => 'served', (e: { name: string }) => e.name)), { timeout: 2_000 }).toBe('AccessDenied');
    expect((await admin(first, 'POST', '/api/agentcache/reactivate', { agentcache_user_id: account.agentcacheUserId })).status).toBe(200);
    await expect.poll(async () => (await viaSecond.send(new GetObjectCommand({ Bucket: 'default', Key: 'k' })).then(async (r) => (await readAll(r.Body as AsyncIterable<Uint8Array>)).toString(), (e: { name: string }) => e.name)), { timeout: 2_000 }).toBe('v');
    viaSecond.destroy();
  });

  it('a new secret from a rotation works at once on the other process', async () => {
    const rotated = await admin(first, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    expect(rotated.status).toBe(200);
    const withNewSecret = s3Client(second, { apiKey: account.apiKey, apiSecret: rotated.body.account.api_secret });
    await expect(withNewSecret.send(new GetObjectCommand({ Bucket: 'default', Key: 'k' }))).resolves.toBeDefined();
    withNewSecret.destroy();
  });
});
