import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota, userId } from '../helpers/admin.js';
import { startTestServer, TEST_ADMIN_SECRET, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const provisionBody = (id: string, extra: Record<string, unknown> = {}) => ({
  agentcache_user_id: id,
  agentcache_email: `${id}@example.com`,
  tier: 'pro',
  ...extra,
});

describe('POST /api/agentcache/provision', () => {
  it('creates the account and answers the seed 201 body field for field', async () => {
    const id = userId();
    const response = await admin(server, 'POST', '/api/agentcache/provision', provisionBody(id));
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Object.keys(response.body)).toEqual(['success', 'account']);
    expect(response.body.success).toBe(true);
    const { account } = response.body;
    expect(Object.keys(account)).toEqual(['id', 'api_key', 'api_secret', 'tier', 'storage_quota_gb', 'bandwidth_quota_gb', 'jetty_speed_enabled', 'created_at']);
    expect(account).toMatchObject({ tier: 'pro', storage_quota_gb: 20, bandwidth_quota_gb: 50, jetty_speed_enabled: true });
    expect(account.id).toMatch(/^[0-9a-f-]{36}$/);
    // Not production (NODE_ENV unset): test keys.
    expect(account.api_key).toMatch(/^jt_test_[A-Za-z0-9_-]{32}$/);
    expect(account.api_secret).toMatch(/^jts_[A-Za-z0-9_-]{43}$/);
    expect(new Date(account.created_at).toISOString()).toBe(account.created_at);

    // The credentials work at once on the gateway.
    expect((await quota(server, account.api_key, account.api_secret)).status).toBe(200);
  });

  it("creates the users/<id>/.keep marker on the backend and the account's default bucket", async () => {
    const account = await provisionAccount(server);
    const marker = await server.backend.head({ key: `users/${account.agentcacheUserId}/.keep` });
    expect(marker).toMatchObject({ size: 0 });
    const { rows } = await server.db.query('SELECT name, is_default FROM buckets WHERE account_id = $1', [account.id]);
    expect(rows).toEqual([{ name: 'default', is_default: true }]);
    const { rows: accounts } = await server.db.query<{ s3_prefix: string; s3_bucket_name: string; status: string }>(
      'SELECT s3_prefix, s3_bucket_name, status FROM agentcache_accounts WHERE id = $1',
      [account.id],
    );
    expect(accounts[0]).toEqual({ s3_prefix: `users/${account.agentcacheUserId}/`, s3_bucket_name: 'agentcache-assets', status: 'active' });
  });

  it('keeps the optional webhook_url', async () => {
    const id = userId();
    const response = await admin(server, 'POST', '/api/agentcache/provision', provisionBody(id, { webhook_url: 'https://agentcache.example/hooks/jt' }));
    expect(response.status).toBe(201);
    const view = await admin(server, 'GET', `/api/agentcache/accounts/${id}`);
    expect(view.body.webhook_url).toBe('https://agentcache.example/hooks/jt');
  });

  it('answers 409 with the existing account id and no secret when the user already has an account', async () => {
    const account = await provisionAccount(server);
    const again = await admin(server, 'POST', '/api/agentcache/provision', provisionBody(account.agentcacheUserId, { tier: 'starter' }));
    expect(again.status).toBe(409);
    expect(again.body).toEqual({ error: 'Account already exists', code: 'ACCOUNT_EXISTS', account_id: account.id, status: 'active' });
    expect(JSON.stringify(again.body)).not.toContain('jts_');
  });

  it('settles concurrent provisions of one user with the UNIQUE constraint: one 201, the rest 409 naming it', async () => {
    const id = userId('race');
    const answers = await Promise.all(Array.from({ length: 6 }, () => admin(server, 'POST', '/api/agentcache/provision', provisionBody(id))));
    const created = answers.filter((a) => a.status === 201);
    const conflicts = answers.filter((a) => a.status === 409);
    expect(created).toHaveLength(1);
    expect(conflicts).toHaveLength(5);
    for (const conflict of conflicts) expect(conflict.body.account_id).toBe(created[0]!.body.account.id);
    const { rows } = await server.db.query('SELECT count(*)::int AS n FROM agentcache_accounts WHERE agentcache_user_id = $1', [id]);
    expect(rows[0]).toEqual({ n: 1 });
  });

  it('answers 400 Invalid tier, as the seed does, for a tier that does not exist', async () => {
    const response = await admin(server, 'POST', '/api/agentcache/provision', provisionBody(userId(), { tier: 'platinum' }));
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: 'Invalid tier', code: 'INVALID_TIER', field: 'tier' });
  });

  it.each([
    ['a missing agentcache_user_id', { agentcache_email: 'a@example.com', tier: 'pro' }, 'agentcache_user_id'],
    ['a missing agentcache_email', { agentcache_user_id: 'u1', tier: 'pro' }, 'agentcache_email'],
    ['a missing tier', { agentcache_user_id: 'u1', agentcache_email: 'a@example.com' }, 'tier'],
    ['an id with a slash', { agentcache_user_id: '../escape', agentcache_email: 'a@example.com', tier: 'pro' }, 'agentcache_user_id'],
    ['an id of 129 characters', { agentcache_user_id: 'a'.repeat(129), agentcache_email: 'a@example.com', tier: 'pro' }, 'agentcache_user_id'],
    ['an email without @', { agentcache_user_id: 'u1', agentcache_email: 'not-an-email', tier: 'pro' }, 'agentcache_email'],
    ['a webhook_url that is not http(s)', { agentcache_user_id: 'u1', agentcache_email: 'a@example.com', tier: 'pro', webhook_url: 'ftp://x.example' }, 'webhook_url'],
  ])('answers 400 naming the field for %s', async (_case, body, field) => {
    const response = await admin(server, 'POST', '/api/agentcache/provision', body);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_ERROR', field });
    expect(response.body.error).toContain(field);
  });

  it('answers 400 for malformed JSON, without echoing the body', async () => {
    const response = await admin(server, 'POST', '/api/agentcache/provision', undefined, { rawBody: '{"agentcache_user_id": "u1", oops' });
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: 'Request body is not valid JSON', code: 'INVALID_JSON' });
  });

  it('answers 413 for a body over 1 MiB', async () => {
    const body = JSON.stringify(provisionBody(userId(), { agentcache_email: `${'a'.repeat(1024 * 1024)}@example.com` }));
    const response = await admin(server, 'POST', '/api/agentcache/provision', undefined, { rawBody: body });
    expect(response.status).toBe(413);
    expect(response.body).toEqual({ error: 'Request body is too large', code: 'BODY_TOO_LARGE' });
  });

  it('answers 415 for a body that is not JSON', async () => {
    const response = await admin(server, 'POST', '/api/agentcache/provision', undefined, { rawBody: 'tier=pro', contentType: 'application/x-www-form-urlencoded' });
    expect(response.status).toBe(415);
    expect(response.body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it.each([
    ['no Authorization header', null],
    ['a wrong secret', 'Bearer not-the-admin-secret-at-all'],
    ['the secret with a wrong scheme', `Basic ${TEST_ADMIN_SECRET}`],
    ['the secret plus one character', `Bearer ${TEST_ADMIN_SECRET}x`],
    ['an empty bearer', 'Bearer '],
  ])('answers 401 with no hint for %s, before looking at the body', async (_case, authorization) => {
    const response = await admin(server, 'POST', '/api/agentcache/provision', undefined, { authorization, rawBody: '{not json' });
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: 'Unauthorized', code: 'UNAUTHORIZED' });
  });

  it('accepts the bearer scheme in any case', async () => {
    const response = await admin(server, 'GET', '/api/agentcache/accounts?limit=1', undefined, { authorization: `bearer ${server.adminSecret}` });
    expect(response.status).toBe(200);
  });
});

describe('admin listener basics', () => {
  it('serves the OpenAPI document at /docs/json, covering every endpoint, and a page at /docs', async () => {
    const document = await admin(server, 'GET', '/docs/json', undefined, { authorization: null });
    expect(document.status).toBe(200);
    expect(document.body.openapi).toMatch(/^3\./);
    const paths = Object.keys(document.body.paths);
    for (const path of [
      '/api/agentcache/provision',
      '/api/agentcache/upgrade',
      '/api/agentcache/suspend',
      '/api/agentcache/reactivate',
      '/api/agentcache/delete',
      '/api/agentcache/rotate',
      '/api/agentcache/overrides',
      '/api/agentcache/accounts/{agentcache_user_id}',
      '/api/agentcache/accounts',
      '/api/webhook/agentcache',
    ]) {
      expect(paths).toContain(path);
    }
    expect(document.body.components.securitySchemes.adminBearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    const page = await fetch(`${server.adminUrl}/docs`, { redirect: 'follow' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('answers JSON 404 for an unknown path', async () => {
    const response = await admin(server, 'GET', '/api/agentcache/nope');
    expect(response.status).toBe(404);
    expect(response.body).toEqual({ error: 'Not found', code: 'NOT_FOUND' });
  });

  it('listens on loopback by default', async () => {
    expect(server.config.admin.host).toBe('127.0.0.1');
    expect(new URL(server.adminUrl).hostname).toBe('127.0.0.1');
  });
});
