import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota, waitFor, type Provisioned } from '../helpers/admin.js';
import { signedRequest, xmlText, type RawResponse } from '../helpers/raw-s3.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Sets the account's requests per minute (null: the tier's) through the admin API. */
async function setRateLimit(server: TestServer, account: Provisioned, perMinute: number | null): Promise<void> {
  const response = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, rate_limit_per_minute: perMinute });
  expect(response.status).toBe(200);
}

function listBuckets(server: TestServer, account: Pick<Provisioned, 'apiKey' | 'apiSecret'>): Promise<RawResponse> {
  return signedRequest(server, account, { method: 'GET', path: '/' });
}

function expectRetryAfter(value: string | string[] | null | undefined, windowSeconds: number): void {
  expect(value).toMatch(/^\d+$/);
  expect(Number(value)).toBeGreaterThanOrEqual(1);
  expect(Number(value)).toBeLessThanOrEqual(windowSeconds);
}

function expectSlowDown(response: RawResponse): void {
  expect(response.status).toBe(503);
  expect(xmlText(response.body, 'Code')).toBe('SlowDown');
  expectRetryAfter(response.headers['retry-after'], 60);
}

describe('per-account rate limit, counted in memory', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ RATE_LIMIT_STORE: 'memory' });
  });
  afterAll(() => server?.close());

  it('serves the limit in a minute, then answers S3 503 SlowDown with Retry-After', async () => {
    const account = await provisionAccount(server);
    await setRateLimit(server, account, 3);
    for (let i = 0; i < 3; i++) expect((await listBuckets(server, account)).status).toBe(200);
    expectSlowDown(await listBuckets(server, account));

    // What an SDK sees (retries off): the SlowDown code with the 503.
    const s3 = s3Client(server, account);
    await expect(s3.send(new ListBucketsCommand({}))).rejects.toMatchObject({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
    s3.destroy();
  });

  it('counts S3 and REST requests together, and answers REST 429 with Retry-After and { error, code }', async () => {
    const account = await provisionAccount(server);
    await setRateLimit(server, account, 3);
    expect((await listBuckets(server, account)).status).toBe(200);
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);

    const refused = await quota(server, account.apiKey, account.apiSecret);
    expect(refused.status).toBe(429);
    expectRetryAfter(refused.headers.get('retry-after'), 60);
    expect(refused.body).toMatchObject({ error: 'Rate limit exceeded: 3 requests per minute', code: 'RATE_LIMITED' });
    expectSlowDown(await listBuckets(server, account));
  });

  it('applies an override change to the very next request, both ways, and null returns to the tier', async () => {
    const account = await provisionAccount(server);
    await setRateLimit(server, account, 2);
    expect((await listBuckets(server, account)).status).toBe(200);
    expect((await listBuckets(server, account)).status).toBe(200);
    expectSlowDown(await listBuckets(server, account));

    await setRateLimit(server, account, 10);
    expect((await listBuckets(server, account)).status).toBe(200);

    await setRateLimit(server, account, 1);
    expectSlowDown(await listBuckets(server, account));

    // The pro tier's 300 per minute.
    await setRateLimit(server, account, null);
    expect((await listBuckets(server, account)).status).toBe(200);
  });

  it('counts each account apart', async () => {
    const limited = await provisionAccount(server);
    const other = await provisionAccount(server);
    await setRateLimit(server, limited, 1);
    expect((await listBuckets(server, limited)).status).toBe(200);
    expectSlowDown(await listBuckets(server, limited));
    expect((await listBuckets(server, other)).status).toBe(200);
  });
});

describe('per-address limit on unauthenticated and admin requests', () => {
  let server: TestServer;
  let account: Provisioned;
  const MAX = 4;

  beforeAll(async () => {
    server = await startTestServer({ RATE_LIMIT_STORE: 'memory', RATE_LIMIT_MAX_REQUESTS: String(MAX), RATE_LIMIT_WINDOW_MS: '60000' });
    // The one admin request before the admin test's own.
    account = await provisionAccount(server);
  });
  afterAll(() => server?.close());

  it('answers the admin API 429 with Retry-After past the limit, and keeps answering health probes', async () => {
    for (let i = 1; i < MAX; i++) expect((await admin(server, 'GET', '/api/agentcache/accounts/nobody')).status).toBe(404);
    const refused = await admin(server, 'POST', '/api/agentcache/provision', { agentcache_user_id: 'late', agentcache_email: 'late@example.com', tier: 'pro' });
    expect(refused.status).toBe(429);
    expectRetryAfter(refused.headers.get('retry-after'), 60);
    expect(refused.body).toMatchObject({ code: 'RATE_LIMITED', error: `Rate limit exceeded: ${MAX} requests per 60 s from one address` });
    // Refused before it ran: nothing was provisioned.
    const { rows } = await server.db.query(`SELECT 1 FROM agentcache_accounts WHERE agentcache_user_id = 'late'`);
    expect(rows).toHaveLength(0);

    expect((await fetch(`${server.adminUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.adminUrl}/readyz`)).status).toBe(200);
  });

  it('counts S3 and REST requests that fail authentication by address, apart from the admin API, and not signed ones', async () => {
    const stranger = { apiKey: 'jt_test_unknownkey0000000', apiSecret: 'jts_nothing' };
    expect(xmlText((await listBuckets(server, stranger)).body, 'Code')).toBe('InvalidAccessKeyId');
    const wrongSecret = await signedRequest(server, { apiKey: account.apiKey, apiSecret: 'jts_wrong' }, { method: 'GET', path: '/' });
    expect(xmlText(wrongSecret.body, 'Code')).toBe('SignatureDoesNotMatch');
    expect((await quota(server, account.apiKey, 'jts_wrong')).status).toBe(401);
    // Unsigned.
    expect((await fetch(`${server.gatewayUrl}/default`)).status).toBe(403);

    // The address's fifth failure in the window.
    expectSlowDown(await listBuckets(server, stranger));
    const rest = await quota(server, null, null);
    expect(rest.status).toBe(429);
    expectRetryAfter(rest.headers.get('retry-after'), 60);

    // The tenant's own signed requests from the same address count against the account only.
    expect((await listBuckets(server, account)).status).toBe(200);
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
  });
});

describe('a Redis that cannot be reached', () => {
  let server: TestServer;

  beforeAll(async () => {
    // Nothing listens on port 1: the connection is refused at once.
    server = await startTestServer({ REDIS_URL: 'redis://127.0.0.1:1' });
  });
  afterAll(() => server?.close());

  it('does not stop the gateway: limits are counted in the process, with a warning', async () => {
    const account = await provisionAccount(server);
    await setRateLimit(server, account, 2);
    expect((await listBuckets(server, account)).status).toBe(200);
    expect((await listBuckets(server, account)).status).toBe(200);
    expectSlowDown(await listBuckets(server, account));
    await waitFor('the warning', async () => (server.logs.some((line) => line.level === 40 && /rate limit/.test(String(line.msg))) ? true : undefined));
  });
});
