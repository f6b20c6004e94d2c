import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota, type Provisioned } from '../helpers/admin.js';
import { createPostgresDatabase, testDatabaseUrl } from '../helpers/db.js';
import { signedRequest, xmlText } from '../helpers/raw-s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// Two gateway processes on one PostgreSQL database, counting in its rate_limits table.
describe.runIf(testDatabaseUrl !== null)('rate limits counted in PostgreSQL', () => {
  // Above the admin requests the tests make, so only the failed authentications reach it.
  const ADDRESS_LIMIT = 8;
  let first: TestServer;
  let second: TestServer;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const database = await createPostgresDatabase();
    drop = database.drop;
    const env = { DATABASE_URL: database.url, RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_MAX_REQUESTS: String(ADDRESS_LIMIT) };
    first = await startTestServer(env);
    second = await startTestServer(env);
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await drop?.();
  });

  const listBuckets = (server: TestServer, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>) => signedRequest(server, account, { method: 'GET', path: '/' });

  it('holds the account limit across both processes, on S3 and REST', async () => {
    const account = await provisionAccount(first);
    expect((await admin(first, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, rate_limit_per_minute: 3 })).status).toBe(200);

    expect((await listBuckets(first, account)).status).toBe(200);
    expect((await listBuckets(second, account)).status).toBe(200);
    expect((await quota(first, account.apiKey, account.apiSecret)).status).toBe(200);

    const refused = await listBuckets(second, account);
    expect(refused.status).toBe(503);
    expect(xmlText(refused.body, 'Code')).toBe('SlowDown');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const rest = await quota(second, account.apiKey, account.apiSecret);
    expect(rest.status).toBe(429);
    expect(rest.body).toMatchObject({ code: 'RATE_LIMITED' });

    // One row holds the count of both processes: 3 served, 2 refused.
    const { rows } = await first.db.query<{ points: number }>('SELECT points FROM rate_limits WHERE key = $1', [`jettythunder:account:${account.id}`]);
    expect(rows).toEqual([{ points: 5 }]);
  });

  it('counts failed authentications per address across both processes', async () => {
    const stranger = { apiKey: 'jt_test_unknownkey0000000', apiSecret: 'jts_nothing' };
    for (let i = 0; i < ADDRESS_LIMIT; i++) expect((await listBuckets(i % 2 === 0 ? first : second, stranger)).status).toBe(403);
    const refused = await listBuckets(second, stranger);
    expect(refused.status).toBe(503);
    expect(xmlText(refused.body, 'Code')).toBe('SlowDown');
  });
});
