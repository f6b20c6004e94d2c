import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, provisionAccount, quota } from '../helpers/admin.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ SECRET_ROTATION_GRACE_SECONDS: '1' });
});
afterAll(() => server?.close());

describe('secret rotation grace', () => {
  it('the previous secret works during the grace period and stops after it; the new one keeps working', async () => {
    const account = await provisionAccount(server);
    // Warm the key cache with the old secret first: expiry must not wait for the cache's TTL.
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    const rotated = await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    const newSecret: string = rotated.body.account.api_secret;
    const expiresAt = new Date(rotated.body.account.previous_secret_expires_at).getTime();

    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    expect((await quota(server, account.apiKey, newSecret)).status).toBe(200);

    await sleep(Math.max(0, expiresAt - Date.now()) + 250);
    const afterGrace = await quota(server, account.apiKey, account.apiSecret);
    expect(afterGrace.status).toBe(401);
    expect(afterGrace.body).toEqual({ error: 'Unauthorized', code: 'UNAUTHORIZED' });
    expect((await quota(server, account.apiKey, newSecret)).status).toBe(200);
    expect((await admin(server, 'GET', `/api/agentcache/accounts/${account.agentcacheUserId}`)).body.previous_secret_expires_at).toBeNull();
  });

  it('a second rotation ends the older secret at once', async () => {
    const account = await provisionAccount(server);
    const first = await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    const second = await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(401);
    expect((await quota(server, account.apiKey, first.body.account.api_secret)).status).toBe(200);
    expect((await quota(server, account.apiKey, second.body.account.api_secret)).status).toBe(200);
  });
});
