import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prefixMarkerKey } from '../../src/storage-layout.js';
import { admin, provisionAccount, waitFor, type Provisioned } from '../helpers/admin.js';
import { restClient } from '../helpers/rest.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Every refusal of the REST API is JSON `{ error, code }` with the status the architecture names. */

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

async function overrides(account: Provisioned, values: Record<string, number | null>): Promise<void> {
  const response = await admin(server, 'POST', '/api/agentcache/overrides', { agentcache_user_id: account.agentcacheUserId, ...values });
  expect(response.status).toBe(200);
}

/** What an account holds and has reserved, in rows and in its counters. */
async function holdings(account: Provisioned) {
  const count = async (sql: string) => Number((await server.db.query<{ n: string }>(sql, [account.id])).rows[0]!.n);
  const { rows } = await server.db.query<{ used: string; reserved: string }>(
    'SELECT storage_used_bytes AS used, storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1',
    [account.id],
  );
  const listed = await server.backend.list({ prefix: `users/${account.agentcacheUserId}/` });
  // Provisioning leaves a marker of the account's prefix; only what else is there counts.
  const backendObjects = listed.objects.filter((object) => object.key !== prefixMarkerKey(account.agentcacheUserId));
  return {
    assets: await count('SELECT count(*) AS n FROM agentcache_assets WHERE account_id = $1'),
    blobs: await count('SELECT count(*) AS n FROM blobs WHERE account_id = $1'),
    reservations: await count('SELECT count(*) AS n FROM storage_reservations WHERE account_id = $1'),
    stagedWrites: await count('SELECT count(*) AS n FROM staged_writes WHERE account_id = $1'),
    usedBytes: Number(rows[0]!.used),
    reservedBytes: Number(rows[0]!.reserved),
    backendObjects: backendObjects.length,
  };
}

const NOTHING = { assets: 0, blobs: 0, reservations: 0, stagedWrites: 0, usedBytes: 0, reservedBytes: 0, backendObjects: 0 };

describe('REST errors', () => {
  it('401 for missing, unknown or wrong credentials', async () => {
    const account = await provisionAccount(server);
    for (const credentials of [
      { apiKey: account.apiKey, apiSecret: 'jts_wrong' },
      { apiKey: 'jt_test_unknown', apiSecret: account.apiSecret },
    ]) {
      const upload = await restClient(server, credentials).uploadBytes(Buffer.from('x'), 'x.txt');
      expect(upload.status).toBe(401);
      expect(upload.body).toEqual({ error: 'Unauthorized', code: 'UNAUTHORIZED' });
    }
    const bare = await fetch(`${server.gatewayUrl}/api/storage/list`);
    expect(bare.status).toBe(401);
    expect(await bare.json()).toEqual({ error: 'Unauthorized', code: 'UNAUTHORIZED' });
    expect(await holdings(account)).toEqual(NOTHING);
  });

  it('403 for a suspended account, which works again once reactivated', async () => {
    const account = await provisionAccount(server);
    const rest = restClient(server, account);
    const stored = await rest.uploadBytes(Buffer.from('kept'), 'kept.txt');
    await admin(server, 'POST', '/api/agentcache/suspend', { agentcache_user_id: account.agentcacheUserId });
    for (const refused of [await rest.uploadBytes(Buffer.from('x'), 'x.txt'), await rest.call('GET', `/storage/download/${stored.body.id}`)]) {
      expect(refused.status).toBe(403);
      expect(refused.body).toEqual({ error: 'Account is suspended', code: 'ACCOUNT_SUSPENDED' });
    }
    await admin(server, 'POST', '/api/agentcache/reactivate', { agentcache_user_id: account.agentcacheUserId });
    expect((await rest.call('GET', `/storage/download/${stored.body.id}`)).bytes.toString()).toBe('kept');
  });

  it('404 for an object that is not there, or is another account’s', async () => {
    const owner = restClient(server, await provisionAccount(server));
    const stored = await owner.uploadBytes(Buffer.from('mine'), 'mine.txt', { cache_key: 'mine' });
    const stranger = restClient(server, await provisionAccount(server));
    for (const [method, path] of [
      ['GET', `/storage/download/${stored.body.id}`],
      ['GET', '/storage/download?cache_key=mine'],
      ['DELETE', `/storage/${stored.body.id}`],
      ['DELETE', '/storage?cache_key=mine'],
    ] as const) {
      const response = await stranger.call(method, path);
      expect(response.status).toBe(404);
      expect(response.body.code).toBe('NOT_FOUND');
    }
    expect((await owner.call('GET', `/storage/download/${stored.body.id}`)).status).toBe(200);
    // A path under /api that no route serves is the REST API's 404, not an S3 error.
    for (const method of ['GET', 'DELETE'] as const) {
      const response = await owner.call(method, '/storage/no-such-route/x');
      expect({ status: response.status, body: response.body }).toEqual({ status: 404, body: { error: 'Not found', code: 'NOT_FOUND' } });
    }
  });

  it('413 for a file larger than the account may store, leaving nothing behind', async () => {
    const account = await provisionAccount(server);
    await overrides(account, { max_file_size_bytes: 1000 });
    const rest = restClient(server, account);
    expect((await rest.uploadBytes(randomBytes(1000), 'just-fits.bin')).status).toBe(201);
    const upload = await rest.uploadBytes(randomBytes(5000), 'too-big.bin');
    expect(upload.status).toBe(413);
    expect(upload.body).toMatchObject({ code: 'ENTITY_TOO_LARGE', limit_bytes: 1000 });
    expect(upload.body.error).toContain('maximum allowed object size');
    expect(await holdings(account)).toMatchObject({ assets: 1, blobs: 1, reservations: 0, stagedWrites: 0, usedBytes: 1000, reservedBytes: 0, backendObjects: 1 });
  });

  it('429 with Retry-After past the account’s requests per minute', async () => {
    const account = await provisionAccount(server);
    await overrides(account, { rate_limit_per_minute: 2 });
    const rest = restClient(server, account);
    expect((await rest.call('GET', '/storage/list')).status).toBe(200);
    expect((await rest.call('GET', '/storage/list')).status).toBe(200);
    const refused = await rest.call('GET', '/storage/list');
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe('RATE_LIMITED');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it('403 when the storage quota cannot hold the file, and 403 when the bandwidth quota is spent', async () => {
    const account = await provisionAccount(server);
    await overrides(account, { storage_quota_bytes: 3000, bandwidth_quota_bytes: 2500 });
    const rest = restClient(server, account);
    const first = await rest.uploadBytes(randomBytes(2000), 'first.bin');
    expect(first.status).toBe(201);
    const second = await rest.uploadBytes(randomBytes(2000), 'second.bin');
    expect(second.status).toBe(403);
    expect(second.body).toMatchObject({ code: 'QUOTA_STORAGE_EXCEEDED', quota_bytes: 3000 });
    expect(await holdings(account)).toMatchObject({ assets: 1, reservations: 0, stagedWrites: 0, usedBytes: 2000, reservedBytes: 0, backendObjects: 1 });

    expect((await rest.call('GET', `/storage/download/${first.body.id}`)).status).toBe(200);
    const overBandwidth = await rest.call('GET', `/storage/download/${first.body.id}`);
    expect(overBandwidth.status).toBe(403);
    expect(overBandwidth.body.code).toBe('QUOTA_BANDWIDTH_EXCEEDED');
  });
});

describe('an upload whose connection drops halfway', () => {
  it('leaves no object, no reservation and no bytes', async () => {
    const account = await provisionAccount(server);
    const boundary = 'jt-boundary-7d1f';
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="cache_key"\r\n\r\ndropped\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="dropped.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const file = randomBytes(2 * 1024 * 1024);
    const request = httpRequest(`${server.gatewayUrl}/api/storage/upload`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${account.apiKey}`,
        'x-api-secret': account.apiSecret,
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(head.length + file.length + tail.length),
      },
    });
    request.on('error', () => undefined);
    request.write(head);
    request.write(file.subarray(0, file.length / 2));
    // Streaming has begun: the upload holds a reservation and a staged backend object.
    await waitFor('the upload to be streaming', async () => {
      const now = await holdings(account);
      return now.reservations === 1 && now.stagedWrites === 1 && now.reservedBytes > 0 ? true : undefined;
    });
    request.destroy();

    await waitFor('the upload to be cleaned up', async () => {
      const now = await holdings(account);
      return now.reservations === 0 && now.stagedWrites === 0 ? now : undefined;
    });
    expect(await holdings(account)).toEqual(NOTHING);
    const { rows } = await server.db.query('SELECT 1 FROM agentcache_assets WHERE cache_key = $1', ['dropped']);
    expect(rows).toHaveLength(0);
  });
});
