import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeAccount } from '../../src/jobs/purge.js';
import { createLogger } from '../../src/log.js';
import { admin, provisionAccount, quota, userId, waitFor, type Provisioned } from '../helpers/admin.js';
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

const purgeDeps = () => ({ db: server.db, backend: server.backend, logger: createLogger('silent') });

/** Stores `count` objects under the account's prefix and the rows an upload would leave behind. */
async function fillAccount(account: Provisioned, count: number): Promise<string[]> {
  const keys: string[] = [];
  const { rows } = await server.db.query<{ id: string }>('SELECT id FROM buckets WHERE account_id = $1 AND is_default', [account.id]);
  const bucketId = rows[0]!.id;
  for (let i = 0; i < count; i++) {
    const body = randomBytes(32);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const md5 = createHash('md5').update(body).digest('hex');
    const key = `users/${account.agentcacheUserId}/blobs/${sha256}`;
    await server.backend.put({ key, body: Readable.from([body]), contentLength: body.length });
    const blob = await server.db.query<{ id: string }>(
      `INSERT INTO blobs (account_id, sha256, md5, size_bytes, backend_key, refcount) VALUES ($1, $2, $3, $4, $5, 1) RETURNING id`,
      [account.id, sha256, md5, body.length, key],
    );
    await server.db.query(
      `INSERT INTO agentcache_assets (account_id, bucket_id, object_key, blob_id, filename, size_bytes, content_hash, etag)
       VALUES ($1, $2, $3, $4, $3, $5, $6, $7)`,
      [account.id, bucketId, `file-${i}.bin`, blob.rows[0]!.id, body.length, sha256, md5],
    );
    keys.push(key);
  }
  await server.db.query('UPDATE agentcache_accounts SET storage_used_bytes = $2 WHERE id = $1', [account.id, count * 32]);
  return keys;
}

async function rowCounts(accountId: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['buckets', 'blobs', 'agentcache_assets', 'multipart_uploads', 'storage_reservations', 'bandwidth_usage', 'staged_writes']) {
    const { rows } = await server.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE account_id = $1`, [accountId]);
    counts[table] = rows[0]!.n;
  }
  return counts;
}

async function listed(agentcacheUserId: string): Promise<string[]> {
  const page = await server.backend.list({ prefix: `users/${agentcacheUserId}/` });
  return page.objects.map((object) => object.key);
}

async function purgeState(agentcacheUserId: string): Promise<string | null> {
  return (await admin(server, 'GET', `/api/agentcache/accounts/${agentcacheUserId}`)).body.purge_state;
}

describe('POST /api/agentcache/delete', () => {
  it("stops the keys at once, purges every object under users/<id>/ and the account's rows, and leaves others alone", async () => {
    const account = await provisionAccount(server);
    const neighbour = await provisionAccount(server);
    await fillAccount(account, 5);
    const neighbourKeys = await fillAccount(neighbour, 2);
    expect(await listed(account.agentcacheUserId)).toHaveLength(6); // five blobs and the .keep marker

    const response = await admin(server, 'POST', '/api/agentcache/delete', { agentcache_user_id: account.agentcacheUserId });
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ success: true, account: { id: account.id, agentcache_user_id: account.agentcacheUserId, status: 'deleted' } });
    expect(['pending', 'running', 'done']).toContain(response.body.account.purge_state);

    // At once: the answer to the very next request.
    const refused = await quota(server, account.apiKey, account.apiSecret);
    expect([401, 403]).toContain(refused.status);

    await waitFor('the purge', async () => ((await purgeState(account.agentcacheUserId)) === 'done' ? true : undefined));
    expect(await listed(account.agentcacheUserId)).toEqual([]);
    expect(await rowCounts(account.id)).toEqual({
      buckets: 0,
      blobs: 0,
      agentcache_assets: 0,
      multipart_uploads: 0,
      storage_reservations: 0,
      bandwidth_usage: 0,
      staged_writes: 0,
    });
    const tombstone = await admin(server, 'GET', `/api/agentcache/accounts/${account.agentcacheUserId}`);
    expect(tombstone.body).toMatchObject({ status: 'deleted', purge_state: 'done', agentcache_email: '', usage: { storage_used_bytes: 0 } });
    const { rows } = await server.db.query<{ api_secret_encrypted: string; previous_secret_encrypted: string | null }>(
      'SELECT api_secret_encrypted, previous_secret_encrypted FROM agentcache_accounts WHERE id = $1',
      [account.id],
    );
    expect(rows[0]).toEqual({ api_secret_encrypted: '', previous_secret_encrypted: null });

    expect((await listed(neighbour.agentcacheUserId)).sort()).toEqual([...neighbourKeys, `users/${neighbour.agentcacheUserId}/.keep`].sort());
    expect(await rowCounts(neighbour.id)).toMatchObject({ buckets: 1, blobs: 2, agentcache_assets: 2 });
    expect((await quota(server, neighbour.apiKey, neighbour.apiSecret)).status).toBe(200);
  });

  it('is harmless to repeat, during and after the purge', async () => {
    const account = await provisionAccount(server);
    await fillAccount(account, 3);
    const ref = { agentcache_user_id: account.agentcacheUserId };
    const answers = await Promise.all([admin(server, 'POST', '/api/agentcache/delete', ref), admin(server, 'POST', '/api/agentcache/delete', ref)]);
    for (const answer of answers) expect(answer.status).toBe(202);
    await waitFor('the purge', async () => ((await purgeState(account.agentcacheUserId)) === 'done' ? true : undefined));

    const again = await admin(server, 'POST', '/api/agentcache/delete', ref);
    expect(again.status).toBe(202);
    expect(again.body).toEqual({ success: true, account: { id: account.id, agentcache_user_id: account.agentcacheUserId, status: 'deleted', purge_state: 'done' } });
    expect(await listed(account.agentcacheUserId)).toEqual([]);
  });

  it('resumes an interrupted purge: purgeAccount finishes what a crash left', async () => {
    const account = await provisionAccount(server);
    const keys = await fillAccount(account, 3);
    // As if a process died mid-purge: marked deleted and running, objects partly gone, rows all there.
    await server.db.query(`UPDATE agentcache_accounts SET status = 'deleted', purge_state = 'running' WHERE id = $1`, [account.id]);
    await server.backend.delete({ key: keys[0]! });

    expect(await purgeAccount(purgeDeps(), account.id)).toBe('done');
    expect(await listed(account.agentcacheUserId)).toEqual([]);
    expect(await rowCounts(account.id)).toMatchObject({ buckets: 0, blobs: 0, agentcache_assets: 0 });
    // Running it again changes nothing.
    expect(await purgeAccount(purgeDeps(), account.id)).toBe('done');
    // An account that is not deleted is never purged.
    const live = await provisionAccount(server);
    expect(await purgeAccount(purgeDeps(), live.id)).toBeNull();
    expect(await listed(live.agentcacheUserId)).toEqual([`users/${live.agentcacheUserId}/.keep`]);
  });

  it('refuses further changes to a deleted account with 409, and a second provision with 409', async () => {
    const account = await provisionAccount(server);
    const ref = { agentcache_user_id: account.agentcacheUserId };
    await admin(server, 'POST', '/api/agentcache/delete', ref);
    for (const [path, body] of [
      ['/api/agentcache/suspend', ref],
      ['/api/agentcache/reactivate', ref],
      ['/api/agentcache/rotate', ref],
      ['/api/agentcache/upgrade', { ...ref, new_tier: 'pro' }],
      ['/api/agentcache/overrides', { ...ref, storage_quota_bytes: 1 }],
    ] as const) {
      const response = await admin(server, 'POST', path, body);
      expect(response.status, path).toBe(409);
      expect(response.body, path).toEqual({ error: 'Account is deleted', code: 'ACCOUNT_DELETED' });
    }
    const provision = await admin(server, 'POST', '/api/agentcache/provision', { ...ref, agentcache_email: 'again@example.com', tier: 'pro' });
    expect(provision.status).toBe(409);
    expect(provision.body).toMatchObject({ code: 'ACCOUNT_EXISTS', account_id: account.id, status: 'deleted' });
    await waitFor('the purge', async () => ((await purgeState(account.agentcacheUserId)) === 'done' ? true : undefined));
  });

  it('answers 404 for an unknown account, 400 for a malformed id, 401 without the bearer', async () => {
    expect((await admin(server, 'POST', '/api/agentcache/delete', { agentcache_user_id: userId('ghost') })).status).toBe(404);
    expect((await admin(server, 'POST', '/api/agentcache/delete', { agentcache_user_id: '' })).body).toMatchObject({ code: 'VALIDATION_ERROR', field: 'agentcache_user_id' });
    expect((await admin(server, 'POST', '/api/agentcache/delete', { agentcache_user_id: 'x' }, { authorization: null })).status).toBe(401);
  });
});
