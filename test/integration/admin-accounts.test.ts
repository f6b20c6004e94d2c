import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota, userId } from '../helpers/admin.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const GIB = 1024 ** 3;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

async function setUsage(accountId: string, storageBytes: number, bandwidthBytes: number): Promise<void> {
  await server.db.query('UPDATE agentcache_accounts SET storage_used_bytes = $2 WHERE id = $1', [accountId, storageBytes]);
  await server.db.query(
    `INSERT INTO bandwidth_usage (account_id, period_start, bytes) VALUES ($1, (date_trunc('month', now() AT TIME ZONE 'UTC'))::date, $2)
     ON CONFLICT (account_id, period_start) DO UPDATE SET bytes = EXCLUDED.bytes`,
    [accountId, bandwidthBytes],
  );
}

describe('GET /api/agentcache/quota (gateway)', () => {
  it("answers the seed's example document for the seed's figures, computed from bytes", async () => {
    const account = await provisionAccount(server);
    await setUsage(account.id, Math.round(1.2 * GIB), Math.round(3.5 * GIB));
    const response = await quota(server, account.apiKey, account.apiSecret);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      tier: 'pro',
      storage: { quota_gb: 20, used_gb: 1.2, available_gb: 18.8, percent_used: 6 },
      bandwidth: { quota_gb: 50, used_gb: 3.5, available_gb: 46.5 },
    });
  });

  it('never shows negative availability when usage exceeds the quota', async () => {
    const account = await provisionAccount(server, userId(), 'starter');
    await setUsage(account.id, 3 * GIB, 12 * GIB);
    const response = await quota(server, account.apiKey, account.apiSecret);
    expect(response.body.storage).toEqual({ quota_gb: 2, used_gb: 3, available_gb: 0, percent_used: 150 });
    expect(response.body.bandwidth).toEqual({ quota_gb: 10, used_gb: 12, available_gb: 0 });
  });

  it('answers 401 for missing, unknown or wrong credentials, all alike', async () => {
    const account = await provisionAccount(server);
    const refusals = await Promise.all([
      quota(server, null, null),
      quota(server, account.apiKey, null),
      quota(server, null, account.apiSecret),
      quota(server, account.apiKey, `${account.apiSecret}x`),
      quota(server, 'jt_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', account.apiSecret),
      quota(server, account.apiSecret, account.apiKey),
    ]);
    for (const refusal of refusals) {
      expect(refusal.status).toBe(401);
      expect(refusal.body).toEqual({ error: 'Unauthorized', code: 'UNAUTHORIZED' });
    }
  });
});

describe('POST /api/agentcache/upgrade', () => {
  it("changes the tier (up and down) and answers the seed's body; the quota follows", async () => {
    const account = await provisionAccount(server, userId(), 'starter');
    const up = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: account.agentcacheUserId, new_tier: 'business' });
    expect(up.status).toBe(200);
    expect(up.body).toEqual({ success: true, account: { id: account.id, tier: 'business', storage_quota_gb: 100 } });
    expect((await quota(server, account.apiKey, account.apiSecret)).body.storage.quota_gb).toBe(100);

    const down = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: account.agentcacheUserId, new_tier: 'free' });
    expect(down.body).toEqual({ success: true, account: { id: account.id, tier: 'free', storage_quota_gb: 0 } });
    expect((await quota(server, account.apiKey, account.apiSecret)).body).toMatchObject({ tier: 'free', storage: { quota_gb: 0 } });
  });

  it('answers 404 for an unknown account, 400 Invalid tier for an unknown tier, 400 naming a missing field', async () => {
    const missing = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: userId('ghost'), new_tier: 'pro' });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'Account not found', code: 'ACCOUNT_NOT_FOUND' });

    const account = await provisionAccount(server);
    const invalid = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: account.agentcacheUserId, new_tier: 'gold' });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toEqual({ error: 'Invalid tier', code: 'INVALID_TIER', field: 'new_tier' });

    const noTier = await admin(server, 'POST', '/api/agentcache/upgrade', { agentcache_user_id: account.agentcacheUserId });
    expect(noTier.status).toBe(400);
    expect(noTier.body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'new_tier' });
  });
});

describe('POST /api/agentcache/suspend and /reactivate', () => {
  it("refuses the account's keys with 403 while suspended and restores them on reactivation; repeats are harmless", async () => {
    const account = await provisionAccount(server);
    const ref = { agentcache_user_id: account.agentcacheUserId };
    const suspended = await admin(server, 'POST', '/api/agentcache/suspend', ref);
    expect(suspended.status).toBe(200);
    expect(suspended.body).toEqual({ success: true, account: { id: account.id, agentcache_user_id: account.agentcacheUserId, status: 'suspended' } });
    const refused = await quota(server, account.apiKey, account.apiSecret);
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ error: 'Account is suspended', code: 'ACCOUNT_SUSPENDED' });
    // A wrong secret on a suspended account is still just 401: the status is only told to the key's holder.
    expect((await quota(server, account.apiKey, 'jts_wrong')).status).toBe(401);
    expect((await admin(server, 'POST', '/api/agentcache/suspend', ref)).status).toBe(200);

    const reactivated = await admin(server, 'POST', '/api/agentcache/reactivate', ref);
    expect(reactivated.body.account.status).toBe('active');
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    expect((await admin(server, 'POST', '/api/agentcache/reactivate', ref)).status).toBe(200);
  });

  it('answers 404 for an unknown account and 400 for a malformed id', async () => {
    expect((await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: userId('ghost') })).status).toBe(404);
    expect((await admin(server, 'POST', '/api/agentcache/reactivate', { agentcache_user_id: userId('ghost') })).status).toBe(404);
    const malformed = await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: 'a b' });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'agentcache_user_id' });
  });
});

describe('POST /api/agentcache/rotate', () => {
  it('returns a new secret once; both secrets work during the grace period', async () => {
    const account = await provisionAccount(server);
    const rotated = await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    expect(rotated.status).toBe(200);
    const body = rotated.body.account;
    expect(Object.keys(body)).toEqual(['id', 'api_key', 'api_secret', 'previous_secret_expires_at']);
    expect(body.id).toBe(account.id);
    expect(body.api_key).toBe(account.apiKey);
    expect(body.api_secret).toMatch(/^jts_/);
    expect(body.api_secret).not.toBe(account.apiSecret);
    // Default grace: 24 hours.
    const graceMs = new Date(body.previous_secret_expires_at).getTime() - Date.now();
    expect(graceMs).toBeGreaterThan(86_400_000 - 60_000);
    expect(graceMs).toBeLessThanOrEqual(86_400_000);

    expect((await quota(server, account.apiKey, body.api_secret)).status).toBe(200);
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    const view = await admin(server, 'GET', `/api/agentcache/accounts/${account.agentcacheUserId}`);
    expect(view.body.previous_secret_expires_at).toBe(body.previous_secret_expires_at);
    expect(JSON.stringify(view.body)).not.toContain('jts_');
  });

  it('answers 404 for an unknown account', async () => {
    expect((await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: userId('ghost') })).status).toBe(404);
  });
});

describe('POST /api/agentcache/overrides', () => {
  it("sets per-account limits in force, and null returns each to the tier's", async () => {
    const account = await provisionAccount(server);
    const set = await admin(server, 'POST', '/api/agentcache/overrides', {
      agentcache_user_id: account.agentcacheUserId,
      storage_quota_bytes: 5 * GIB,
      bandwidth_quota_bytes: 7 * GIB,
      rate_limit_per_minute: 42,
      max_file_size_bytes: 1024,
    });
    expect(set.status).toBe(200);
    expect(set.body.success).toBe(true);
    expect(set.body.account.limits).toEqual({
      storage_quota_bytes: 5 * GIB,
      storage_quota_gb: 5,
      bandwidth_quota_bytes: 7 * GIB,
      bandwidth_quota_gb: 7,
      rate_limit_per_minute: 42,
      max_file_size_bytes: 1024,
    });
    expect(set.body.account.overrides).toEqual({ storage_quota_bytes: 5 * GIB, bandwidth_quota_bytes: 7 * GIB, rate_limit_per_minute: 42, max_file_size_bytes: 1024 });
    expect((await quota(server, account.apiKey, account.apiSecret)).body).toMatchObject({ storage: { quota_gb: 5 }, bandwidth: { quota_gb: 7 } });

    // Only the fields given change.
    const reset = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, storage_quota_bytes: null });
    expect(reset.body.account.overrides).toEqual({ storage_quota_bytes: null, bandwidth_quota_bytes: 7 * GIB, rate_limit_per_minute: 42, max_file_size_bytes: 1024 });
    expect(reset.body.account.limits.storage_quota_bytes).toBe(20 * GIB);
    expect(reset.body.account.limits.max_file_size_bytes).toBe(1024);

    const all = await admin(server, 'POST', '/api/agentcache/overrides', {
      agentcache_user_id: account.agentcacheUserId,
      bandwidth_quota_bytes: null,
      rate_limit_per_minute: null,
      max_file_size_bytes: null,
    });
    expect(all.body.account.limits).toMatchObject({ bandwidth_quota_bytes: 50 * GIB, rate_limit_per_minute: 300, max_file_size_bytes: 500 * 1024 * 1024 });
  });

  it('answers 400 when no limit is given or a value is out of range, naming the field, and 404 for an unknown account', async () => {
    const account = await provisionAccount(server);
    const none = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId });
    expect(none.status).toBe(400);
    expect(none.body.code).toBe('VALIDATION_ERROR');
    expect(none.body.error).toContain('storage_quota_bytes');

    for (const [field, value] of [
      ['storage_quota_bytes', -1],
      ['rate_limit_per_minute', 0],
      ['max_file_size_bytes', 1.5],
      ['bandwidth_quota_bytes', 'lots'],
    ] as const) {
      const response = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, [field]: value });
      expect(response.status, field).toBe(400);
      expect(response.body, field).toMatchObject({ code: 'VALIDATION_ERROR', field });
    }

    const missing = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: userId('ghost'), storage_quota_bytes: 1 });
    expect(missing.status).toBe(404);
  });
});

describe('GET /api/agentcache/accounts/:agentcache_user_id', () => {
  it('shows the account, tier, limits in force and usage in bytes and GB, never a secret', async () => {
    const account = await provisionAccount(server, userId(), 'starter');
    await setUsage(account.id, GIB / 2, GIB / 4);
    const response = await admin(server, 'GET', `/api/agentcache/accounts/${account.agentcacheUserId}`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      id: account.id,
      agentcache_user_id: account.agentcacheUserId,
      agentcache_email: `${account.agentcacheUserId}@example.com`,
      tier: 'starter',
      status: 'active',
      purge_state: null,
      api_key: account.apiKey,
      previous_secret_expires_at: null,
      jetty_speed_enabled: false,
      webhook_url: null,
      limits: { storage_quota_bytes: 2 * GIB, storage_quota_gb: 2, bandwidth_quota_bytes: 10 * GIB, bandwidth_quota_gb: 10, rate_limit_per_minute: 60, max_file_size_bytes: 50 * 1024 * 1024 },
      overrides: { storage_quota_bytes: null, bandwidth_quota_bytes: null, rate_limit_per_minute: null, max_file_size_bytes: null },
      usage: { storage_used_bytes: GIB / 2, storage_used_gb: 0.5, storage_reserved_bytes: 0, bandwidth_used_bytes: GIB / 4, bandwidth_used_gb: 0.25 },
      last_accessed: null,
      deleted_at: null,
    });
    expect(response.body.usage.bandwidth_period_start).toMatch(/^\d{4}-\d{2}-01$/);
    const text = JSON.stringify(response.body);
    expect(text).not.toContain(account.apiSecret);
    expect(text).not.toMatch(/secret_encrypted|api_secret"/);
  });

  it('answers 404 for an unknown account and 400 for a malformed id', async () => {
    const missing = await admin(server, 'GET', `/api/agentcache/accounts/${userId('ghost')}`);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'Account not found', code: 'ACCOUNT_NOT_FOUND' });
    const malformed = await admin(server, 'GET', '/api/agentcache/accounts/-leading-dash');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'agentcache_user_id' });
  });

  it('answers 401 without the admin bearer', async () => {
    const response = await admin(server, 'GET', '/api/agentcache/accounts/anyone', undefined, { authorization: null });
    expect(response.status).toBe(401);
  });
});

describe('GET /api/agentcache/accounts', () => {
  it('pages through accounts with a cursor and filters by tier and status', async () => {
    // Enterprise accounts are made by this test only, so the filter isolates them from the rest of the file.
    const ids = ['list-a', 'list-b', 'list-c', 'list-d', 'list-e'].map((label) => userId(label));
    for (const id of ids) await provisionAccount(server, id, 'enterprise');
    await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: ids[1] });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `/api/agentcache/accounts?tier=enterprise&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await admin(server, 'GET', query);
      expect(page.status).toBe(200);
      expect(page.body.accounts.length).toBeLessThanOrEqual(2);
      for (const account of page.body.accounts) {
        expect(account.tier).toBe('enterprise');
        expect(JSON.stringify(account)).not.toContain('jts_');
        seen.push(account.agentcache_user_id);
      }
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].sort());

    const suspended = await admin(server, 'GET', '/api/agentcache/accounts?tier=enterprise&status=suspended');
    expect(suspended.body.accounts.map((a: { agentcache_user_id: string }) => a.agentcache_user_id)).toEqual([ids[1]]);
    expect(suspended.body.next_cursor).toBeNull();
  });

  it('answers 400 naming the parameter for a bad status, limit or cursor', async () => {
    const badStatus = await admin(server, 'GET', '/api/agentcache/accounts?status=sleeping');
    expect(badStatus.status).toBe(400);
    expect(badStatus.body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'status' });
    const badLimit = await admin(server, 'GET', '/api/agentcache/accounts?limit=0');
    expect(badLimit.body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'limit' });
    const badCursor = await admin(server, 'GET', '/api/agentcache/accounts?cursor=%2F%2F%2F');
    expect(badCursor.status).toBe(400);
    expect(badCursor.body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'cursor' });
  });
});
