import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, dumpDatabase, provisionAccount, quota, sendWebhook, userId, webhookEvent } from '../helpers/admin.js';
import { startTestServer, TEST_ADMIN_SECRET, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

describe('secrets at rest and in logs', () => {
  it('no plaintext secret is in any table or any log line after provisioning, rotating, webhooks and authenticating', async () => {
    const secrets: string[] = [];

    const account = await provisionAccount(server);
    secrets.push(account.apiSecret);
    const rotated = await admin(server, 'POST', '/api/agentcache/rotate', { agentcache_user_id: account.agentcacheUserId });
    secrets.push(rotated.body.account.api_secret);

    const id = userId('hooked');
    const hooked = await sendWebhook(server, webhookEvent('user.created', { agentcache_user_id: id, agentcache_email: `${id}@example.com`, tier: 'pro' }));
    secrets.push(hooked.body.account.api_secret);

    // Authenticate with each secret, fail with a wrong one, and meet a suspended account.
    expect((await quota(server, account.apiKey, account.apiSecret)).status).toBe(200);
    expect((await quota(server, account.apiKey, rotated.body.account.api_secret)).status).toBe(200);
    expect((await quota(server, hooked.body.account.api_key, hooked.body.account.api_secret)).status).toBe(200);
    expect((await quota(server, account.apiKey, 'jts_not-the-secret')).status).toBe(401);
    await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: id });
    expect((await quota(server, hooked.body.account.api_key, hooked.body.account.api_secret)).status).toBe(403);
    // Errors too: a failed admin login and an invalid body.
    await admin(server, 'POST', '/api/agentcache/provision', { agentcache_user_id: 'x' }, { authorization: `Bearer ${account.apiSecret}` });
    await admin(server, 'POST', '/api/agentcache/provision', { agentcache_user_id: 'x' });

    const dump = await dumpDatabase(server);
    expect(dump).toContain(account.apiKey); // the dump does hold the accounts
    const logs = server.logText();
    expect(logs).toMatch(/account provisioned/);
    expect(logs).toMatch(/account secret rotated/);
    expect(logs).toMatch(/"url":"\/api\/agentcache\/quota"/);

    for (const secret of secrets) {
      const randomPart = secret.slice('jts_'.length);
      expect(dump).not.toContain(randomPart);
      expect(logs).not.toContain(randomPart);
    }
    expect(logs).not.toContain('jts_');
    expect(logs).not.toContain(TEST_ADMIN_SECRET);
    expect(dump).not.toContain(TEST_ADMIN_SECRET);
  });
});
