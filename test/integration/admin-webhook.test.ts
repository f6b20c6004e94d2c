import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook } from '../../src/auth/webhook-signature.js';
import { admin, dumpDatabase, quota, sendWebhook, userId, waitFor, webhookEvent } from '../helpers/admin.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  // Expected failures answer 4xx; nothing in this file may have failed unexpectedly (logged at error level).
  const errors = server?.logs.filter((line) => (line.level as number) >= 50) ?? [];
  await server?.close();
  expect(errors).toEqual([]);
});

function created(id: string, tier = 'pro') {
  return webhookEvent('user.created', { agentcache_user_id: id, agentcache_email: `${id}@example.com`, tier });
}

async function accountRow(id: string) {
  const { rows } = await server.db.query<{ agentcache_tier: string; status: string; updated_at: Date }>(
    'SELECT agentcache_tier, status, updated_at FROM agentcache_accounts WHERE agentcache_user_id = $1',
    [id],
  );
  return rows[0];
}

describe('POST /api/webhook/agentcache: events', () => {
  it('user.created provisions the account and answers 201 with the provision body, credentials included', async () => {
    const id = userId();
    const response = await sendWebhook(server, created(id));
    expect(response.status).toBe(201);
    expect(response.body.success).toBe(true);
    expect(Object.keys(response.body.account)).toEqual(['id', 'api_key', 'api_secret', 'tier', 'storage_quota_gb', 'bandwidth_quota_gb', 'jetty_speed_enabled', 'created_at']);
    expect(response.body.account).toMatchObject({ tier: 'pro', storage_quota_gb: 20, bandwidth_quota_gb: 50, jetty_speed_enabled: true });
    expect((await quota(server, response.body.account.api_key, response.body.account.api_secret)).status).toBe(200);
    expect(await server.backend.head({ key: `users/${id}/.keep` })).not.toBeNull();
  });

  it('user.tier_changed, user.suspended, user.reactivated do what their endpoints do and answer the same bodies', async () => {
    const id = userId();
    const { body } = await sendWebhook(server, created(id, 'starter'));
    const { api_key: apiKey, api_secret: apiSecret, id: accountId } = body.account;

    const tier = await sendWebhook(server, webhookEvent('user.tier_changed', { agentcache_user_id: id, new_tier: 'enterprise' }));
    expect(tier.status).toBe(200);
    expect(tier.body).toEqual({ success: true, account: { id: accountId, tier: 'enterprise', storage_quota_gb: 1000 } });
    expect((await quota(server, apiKey, apiSecret)).body.tier).toBe('enterprise');

    const suspended = await sendWebhook(server, webhookEvent('user.suspended', { agentcache_user_id: id }));
    expect(suspended.status).toBe(200);
    expect(suspended.body).toEqual({ success: true, account: { id: accountId, agentcache_user_id: id, status: 'suspended' } });
    expect((await quota(server, apiKey, apiSecret)).status).toBe(403);

    const reactivated = await sendWebhook(server, webhookEvent('user.reactivated', { agentcache_user_id: id }));
    expect(reactivated.status).toBe(200);
    expect(reactivated.body.account.status).toBe('active');
    expect((await quota(server, apiKey, apiSecret)).status).toBe(200);
  });

  it('user.deleted deletes the account (202 with the purge state); its keys stop at once and the purge completes', async () => {
    const id = userId();
    const { body } = await sendWebhook(server, created(id));
    const deleted = await sendWebhook(server, webhookEvent('user.deleted', { agentcache_user_id: id }));
    expect(deleted.status).toBe(202);
    expect(deleted.body).toMatchObject({ success: true, account: { id: body.account.id, status: 'deleted' } });
    expect(['pending', 'running', 'done']).toContain(deleted.body.account.purge_state);
    expect([401, 403]).toContain((await quota(server, body.account.api_key, body.account.api_secret)).status);
    await waitFor('the purge', async () => ((await accountRow(id))?.status === 'deleted' && (await admin(server, 'GET', `/api/agentcache/accounts/${id}`)).body.purge_state === 'done' ? true : undefined));
    expect(await server.backend.head({ key: `users/${id}/.keep` })).toBeNull();
  });

  it('answers an event for an unknown account with the endpoint error (404)', async () => {
    const response = await sendWebhook(server, webhookEvent('user.suspended', { agentcache_user_id: userId('ghost') }));
    expect(response.status).toBe(404);
    expect(response.body).toEqual({ error: 'Account not found', code: 'ACCOUNT_NOT_FOUND' });
  });
});

describe('POST /api/webhook/agentcache: replays', () => {
  it('a replayed user.created changes nothing and gets exactly the first answer, the same credentials included', async () => {
    const id = userId();
    const event = created(id);
    const first = await sendWebhook(server, event);
    expect(first.status).toBe(201);
    const dumpBefore = await dumpDatabase(server);
    const replay = await sendWebhook(server, event);
    expect(replay.status).toBe(201);
    expect(replay.body).toEqual(first.body);
    // A replay signed later (a fresh timestamp) is still the same event.
    const later = await sendWebhook(server, event, { timestamp: Math.floor(Date.now() / 1000) + 30 });
    expect(later.body).toEqual(first.body);
    expect(await dumpDatabase(server)).toBe(dumpBefore);
    // The stored answer keeps the secret encrypted.
    expect(dumpBefore).not.toContain(first.body.account.api_secret);
  });

  it('a replayed tier change does not undo a later change', async () => {
    const id = userId();
    await sendWebhook(server, created(id, 'starter'));
    const toPro = webhookEvent('user.tier_changed', { agentcache_user_id: id, new_tier: 'pro' });
    const first = await sendWebhook(server, toPro);
    await sendWebhook(server, webhookEvent('user.tier_changed', { agentcache_user_id: id, new_tier: 'business' }));
    const replay = await sendWebhook(server, toPro);
    expect(replay.status).toBe(first.status);
    expect(replay.body).toEqual(first.body);
    expect((await accountRow(id))?.agentcache_tier).toBe('business');
  });

  it('a replayed error answers the same error', async () => {
    const event = webhookEvent('user.reactivated', { agentcache_user_id: userId('ghost') });
    const first = await sendWebhook(server, event);
    expect(first.status).toBe(404);
    const replay = await sendWebhook(server, event);
    expect(replay.status).toBe(404);
    expect(replay.body).toEqual(first.body);
  });

  it('concurrent deliveries of one event apply it once and all get the one answer', async () => {
    const id = userId('concurrent');
    const event = created(id);
    const answers = await Promise.all(Array.from({ length: 5 }, () => sendWebhook(server, event)));
    for (const answer of answers) {
      expect(answer.status).toBe(201);
      expect(answer.body).toEqual(answers[0]!.body);
    }
    const { rows } = await server.db.query('SELECT count(*)::int AS n FROM agentcache_accounts WHERE agentcache_user_id = $1', [id]);
    expect(rows[0]).toEqual({ n: 1 });
  });
});

describe('POST /api/webhook/agentcache: signatures', () => {
  const now = () => Math.floor(Date.now() / 1000);

  it.each([
    ['6 minutes old', -360],
    ['6 minutes in the future', 360],
  ])('refuses a correctly signed event %s, and applies nothing', async (_case, offset) => {
    const id = userId();
    const response = await sendWebhook(server, created(id), { timestamp: now() + offset });
    expect(response.status).toBe(401);
    expect(response.body.code).toBe('STALE_TIMESTAMP');
    expect(await accountRow(id)).toBeUndefined();
  });

  it('accepts an event signed 4 minutes ago', async () => {
    const response = await sendWebhook(server, created(userId()), { timestamp: now() - 240 });
    expect(response.status).toBe(201);
  });

  it.each([
    ['a signature made with another secret', { secret: 'another-secret-0123456789' }],
    ['no signature header', { signature: null }],
    ['a signature without the v1= scheme', { signature: 'deadbeef'.repeat(8) }],
    ['a truncated signature', { signature: 'v1=deadbeef' }],
  ])('refuses %s with 401 and applies nothing', async (_case, options) => {
    const id = userId();
    const response = await sendWebhook(server, created(id), options);
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: 'Invalid signature', code: 'INVALID_SIGNATURE' });
    expect(await accountRow(id)).toBeUndefined();
  });

  it('refuses a body altered after signing, and a timestamp altered after signing', async () => {
    const id = userId();
    const original = JSON.stringify(created(id));
    const timestamp = now();
    const signature = signWebhook(server.adminSecret, timestamp, original);
    const altered = await sendWebhook(server, null, { rawBody: original.replace('"pro"', '"enterprise"'), timestamp, signature });
    expect(altered.status).toBe(401);
    const retimed = await sendWebhook(server, null, { rawBody: original, timestamp: timestamp - 1, signature });
    expect(retimed.status).toBe(401);
    expect(await accountRow(id)).toBeUndefined();
  });

  it('accepts several comma-separated signatures when one matches', async () => {
    const event = created(userId());
    const rawBody = JSON.stringify(event);
    const timestamp = now();
    const signature = `${signWebhook('an-old-secret-0123456789', timestamp, rawBody)},${signWebhook(server.adminSecret, timestamp, rawBody)}`;
    expect((await sendWebhook(server, null, { rawBody, timestamp, signature })).status).toBe(201);
  });

  it('does not need (or accept instead of a signature) the admin bearer', async () => {
    const response = await fetch(`${server.adminUrl}/api/webhook/agentcache`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify(created(userId())),
    });
    expect(response.status).toBe(401);
  });
});

describe('POST /api/webhook/agentcache: validation', () => {
  it('answers 400 naming the field for a body that breaks the event schema', async () => {
    const cases: Array<[unknown, string]> = [
      [{ type: 'user.suspended', created_at: new Date().toISOString(), data: { agentcache_user_id: 'u1' } }, 'id'],
      [webhookEvent('user.renamed', { agentcache_user_id: 'u1' }), 'type'],
      [webhookEvent('user.created', { agentcache_user_id: 'u1', tier: 'pro' }), 'data.agentcache_email'],
      [webhookEvent('user.created', { agentcache_user_id: 'u1', agentcache_email: 'u1@example.com' }), 'data.tier'],
      [webhookEvent('user.tier_changed', { agentcache_user_id: 'u1' }), 'data.new_tier'],
      [webhookEvent('user.suspended', { agentcache_user_id: '../u1' }), 'data.agentcache_user_id'],
      [{ ...webhookEvent('user.suspended', { agentcache_user_id: 'u1' }), created_at: 'yesterday' }, 'created_at'],
    ];
    for (const [event, field] of cases) {
      const response = await sendWebhook(server, event);
      expect(response.status, field).toBe(400);
      expect(response.body, field).toMatchObject({ code: 'VALIDATION_ERROR', field });
    }
  });

  it('answers 400 Invalid tier for an unknown tier', async () => {
    const response = await sendWebhook(server, created(userId(), 'diamond'));
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: 'Invalid tier', code: 'INVALID_TIER', field: 'tier' });
  });

  it('answers 400 for a correctly signed body that is not JSON', async () => {
    const response = await sendWebhook(server, null, { rawBody: '{"id": "evt_1", ' });
    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: 'Request body is not valid JSON', code: 'INVALID_JSON' });
  });

  it('answers 413 for a body over 1 MiB', async () => {
    const response = await sendWebhook(server, null, { rawBody: JSON.stringify({ padding: 'x'.repeat(1024 * 1024) }) });
    expect(response.status).toBe(413);
    expect(response.body.code).toBe('BODY_TOO_LARGE');
  });
});
