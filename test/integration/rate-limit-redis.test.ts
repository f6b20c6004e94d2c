import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, type Provisioned } from '../helpers/admin.js';
import { createPostgresDatabase, testDatabaseUrl } from '../helpers/db.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { startChildGateway, startTestServer, type ChildGateway, type TestServer } from '../helpers/server.js';

/** CI sets it; the processes also need one PostgreSQL database to share, as PGlite is one process. */
const redisUrl = process.env.TEST_REDIS_URL?.trim() || null;

describe.runIf(redisUrl !== null && testDatabaseUrl !== null)('rate limits counted in Redis', () => {
  // A run of its own: parallel runs on one Redis never count into each other's keys.
  const keyPrefix = `jt-test-${randomBytes(6).toString('hex')}`;
  // Above the admin requests the tests make, so only the failed authentications reach it.
  const ADDRESS_LIMIT = 8;
  let inProcess: TestServer;
  let child: ChildGateway;
  let childServer: Pick<TestServer, 'gatewayUrl' | 'adminUrl'>;
  let redis: Redis;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const database = await createPostgresDatabase();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jt-rate-redis-'));
    cleanup = async () => {
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    };
    const env = { DATABASE_URL: database.url, REDIS_URL: redisUrl!, RATE_LIMIT_KEY_PREFIX: keyPrefix, RATE_LIMIT_MAX_REQUESTS: String(ADDRESS_LIMIT) };
    inProcess = await startTestServer(env);
    child = await startChildGateway({ ...env, DATA_DIR: dataDir });
    childServer = child;
    redis = new Redis(redisUrl!);
  });
  afterAll(async () => {
    child?.child.kill('SIGTERM');
    await child?.exited;
    await inProcess?.close();
    if (redis) {
      const keys = await redis.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
    await cleanup?.();
  });

  const listBuckets = (server: Pick<TestServer, 'gatewayUrl'>, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>) =>
    signedRequest(server as TestServer, account, { method: 'GET', path: '/' });

  it('the rate limit holds across two processes with the Redis store', async () => {
    const account = await provisionAccount(inProcess);
    expect((await admin(inProcess, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, rate_limit_per_minute: 4 })).status).toBe(200);

    expect((await listBuckets(inProcess, account)).status).toBe(200);
    expect((await listBuckets(childServer, account)).status).toBe(200);
    expect((await listBuckets(inProcess, account)).status).toBe(200);
    expect((await listBuckets(childServer, account)).status).toBe(200);
    for (const server of [inProcess, childServer]) {
      const refused = await listBuckets(server, account);
      expect(refused.status).toBe(503);
      expect(xmlText(refused.body, 'Code')).toBe('SlowDown');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    const rest = await fetch(`${childServer.gatewayUrl}/api/agentcache/quota`, { headers: { authorization: `Bearer ${account.apiKey}`, 'x-api-secret': account.apiSecret } });
    expect(rest.status).toBe(429);
    expect(rest.headers.get('retry-after')).toMatch(/^\d+$/);

    // The count is Redis's, not either process's: 7 requests so far.
    expect(await redis.get(`${keyPrefix}:account:${account.id}`)).toBe('7');
  });

  it('a limit raised through one process applies to the next request on the other', async () => {
    const account = await provisionAccount(inProcess);
    const override = (perMinute: number) => admin(inProcess, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, rate_limit_per_minute: perMinute });
    expect((await override(1)).status).toBe(200);
    expect((await listBuckets(childServer, account)).status).toBe(200);
    expect((await listBuckets(childServer, account)).status).toBe(503);

    expect((await override(100)).status).toBe(200);
    // The other process learns of the change by NOTIFY, a moment after the admin answer.
    await expect.poll(async () => (await listBuckets(childServer, account)).status, { timeout: 2_000 }).toBe(200);
  });

  it('counts failed authentications per address across the processes', async () => {
    const stranger = { apiKey: 'jt_test_unknownkey0000000', apiSecret: 'jts_nothing' };
    for (let i = 0; i < ADDRESS_LIMIT; i++) expect((await listBuckets(i % 2 === 0 ? inProcess : childServer, stranger)).status).toBe(403);
    const refused = await listBuckets(inProcess, stranger);
    expect(refused.status).toBe(503);
    expect(xmlText(refused.body, 'Code')).toBe('SlowDown');
  });
});
