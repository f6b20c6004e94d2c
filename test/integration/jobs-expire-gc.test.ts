import { CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { backendCalling, backendListing, runJobNow, storeObject, usageOf } from '../helpers/jobs.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const past = () => new Date(Date.now() - 60_000);
const future = () => new Date(Date.now() + 3_600_000);

async function objectKeys(accountId: string): Promise<string[]> {
  const { rows } = await server.db.query<{ object_key: string }>('SELECT object_key FROM agentcache_assets WHERE account_id = $1 ORDER BY object_key', [accountId]);
  return rows.map((row) => row.object_key);
}

describe('expire', () => {
  it('deletes objects whose expires_at has passed, frees their usage and unshared blobs, and releases dead reservations', async () => {
    const account = await provisionAccount(server);
    const shared = randomBytes(100);
    await storeObject(server, account, 'expired-shared', shared, { expiresAt: past() });
    const sharedBlob = await storeObject(server, account, 'kept-shared', shared);
    const alone = await storeObject(server, account, 'expired-alone', randomBytes(50), { expiresAt: past() });
    await storeObject(server, account, 'expires-later', randomBytes(30), { expiresAt: future() });
    // A reservation whose upload's process died, and one still in flight.
    await server.db.query(
      `INSERT INTO storage_reservations (account_id, bytes, expires_at) VALUES ($1, 1000, now() - interval '1 minute'), ($1, 7, now() + interval '10 minutes')`,
      [account.id],
    );
    await server.db.query('UPDATE agentcache_accounts SET storage_reserved_bytes = storage_reserved_bytes + 1007 WHERE id = $1', [account.id]);
    expect(await usageOf(server, account.id)).toEqual({ used: 100 + 100 + 50 + 30, reserved: 1007 });

    const result = await runJobNow(server, 'expire');
    expect(result.outcome).toBe('ok');
    expect(result.summary).toMatchObject({ objects: 2, backendObjects: 1 });
    expect(await objectKeys(account.id)).toEqual(['expires-later', 'kept-shared']);
    expect(await usageOf(server, account.id)).toEqual({ used: 130, reserved: 7 });
    const listing = await backendListing(server, account.agentcacheUserId);
    expect(listing).toContain(sharedBlob.backendKey.replace(account.agentcacheUserId, '<user>'));
    expect(listing).not.toContain(alone.backendKey.replace(account.agentcacheUserId, '<user>'));

    // Nothing is left to do: a second run changes nothing.
    expect((await runJobNow(server, 'expire')).summary).toMatchObject({ objects: 0, reservations: 0 });
    expect(await usageOf(server, account.id)).toEqual({ used: 130, reserved: 7 });
  });
});

describe('gc', () => {
  /** One account with something of every kind gc collects and of every kind it must keep. */
  async function litter(account: Provisioned): Promise<void> {
    const user = account.agentcacheUserId;
    await storeObject(server, account, 'kept', Buffer.from('kept object'));
    // A blob no object points at (drift), with its backend object.
    await server.backend.put({ key: `users/${user}/blobs/orphan`, body: Readable.from([Buffer.from('orphan')]), contentLength: 6 });
    await server.db.query(
      `INSERT INTO blobs (account_id, sha256, md5, size_bytes, backend_key, refcount) VALUES ($1, $2, $3, 6, $4, 1)`,
      [account.id, 'e'.repeat(64), 'e'.repeat(32), `users/${user}/blobs/orphan`],
    );
    // Staged bytes of uploads that died two days ago, and of one in flight now.
    for (const name of ['dead-1', 'dead-2', 'dead-3', 'in-flight']) {
      await server.backend.put({ key: `users/${user}/blobs/${name}`, body: Readable.from([Buffer.from(name)]), contentLength: name.length });
      await server.db.query(`INSERT INTO staged_writes (backend_key, account_id, created_at) VALUES ($1, $2, now() - $3::interval)`, [
        `users/${user}/blobs/${name}`,
        account.id,
        name === 'in-flight' ? '1 minute' : '2 days',
      ]);
    }
    // A multipart upload left open eight days ago with a part, and a fresh one whose staged key is old.
    const client = s3Client(server, account);
    for (const [key, age] of [['stale-upload', '8 days'], ['fresh-upload', '0 days']] as const) {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: key }));
      await client.send(new UploadPartCommand({ Bucket: 'default', Key: key, UploadId, PartNumber: 1, Body: Buffer.from(`part of ${key}`) }));
      await server.db.query(`UPDATE multipart_uploads SET created_at = now() - $2::interval WHERE upload_id = $1`, [UploadId, age]);
      await server.db.query(
        `UPDATE staged_writes SET created_at = now() - interval '2 days' WHERE backend_key = (SELECT backend_key FROM multipart_uploads WHERE upload_id = $1)`,
        [UploadId],
      );
    }
    client.destroy();
  }

  /** What an account's rows and backend objects look like, without ids that differ between accounts. */
  async function state(account: Provisioned) {
    const rows = async (sql: string) => (await server.db.query(sql, [account.id])).rows.map((row) => JSON.stringify(row).replaceAll(account.agentcacheUserId, '<user>'));
    const backend = await backendListing(server, account.agentcacheUserId);
    return {
      objects: await rows('SELECT object_key, size_bytes FROM agentcache_assets WHERE account_id = $1 ORDER BY object_key'),
      blobs: await rows('SELECT size_bytes, refcount FROM blobs WHERE account_id = $1 ORDER BY size_bytes'),
      staged: await rows(`SELECT regexp_replace(backend_key, '[0-9a-f-]{36}$', '<uuid>') AS key FROM staged_writes WHERE account_id = $1 ORDER BY 1`),
      uploads: await rows('SELECT object_key, state FROM multipart_uploads WHERE account_id = $1 ORDER BY object_key'),
      usage: await usageOf(server, account.id),
      // Backend objects named by a random id are counted; the ones the test named are listed.
      backendNamed: backend.filter((key) => !/[0-9a-f-]{36}$/.test(key)),
      backendRandom: backend.filter((key) => /[0-9a-f-]{36}$/.test(key)).length,
    };
  }

  it('collects unreferenced blobs, old staged bytes and stale multipart uploads, keeping everything in use', async () => {
    const account = await provisionAccount(server);
    await litter(account);
    const result = await runJobNow(server, 'gc');
    expect(result.outcome).toBe('ok');
    const after = await state(account);
    expect(after.objects).toEqual(['{"object_key":"kept","size_bytes":11}']);
    expect(after.blobs).toEqual(['{"size_bytes":11,"refcount":1}']);
    // The in-flight upload's bytes and the fresh multipart upload's key stay; the stale upload is gone.
    expect(after.staged).toEqual(['{"key":"users/<user>/blobs/<uuid>"}', '{"key":"users/<user>/blobs/in-flight"}']);
    expect(after.uploads).toEqual(['{"object_key":"fresh-upload","state":"open"}']);
    expect(after.backendNamed).toEqual(['users/<user>/.keep', 'users/<user>/blobs/in-flight']);
    // The kept object's blob (the fresh upload's parts live in the backend's multipart area, not as objects).
    expect(after.backendRandom).toBe(1);
    // The fresh upload's part still counts; the stale one's no longer does.
    expect(after.usage).toEqual({ used: 11 + 'part of fresh-upload'.length, reserved: 0 });
  });

  it('ends, when cut short between two deletes and run again, exactly where one whole run ends', async () => {
    const interrupted = await provisionAccount(server);
    await litter(interrupted);
    const controller = new AbortController();
    let deletes = 0;
    // Stops the run after its second backend delete, as a kill between two batches would.
    const backend = backendCalling(server.backend, 'delete', () => {
      if (++deletes === 2) controller.abort(new Error('killed'));
    });
    const cut = await runJobNow(server, 'gc', { deps: { backend }, signal: controller.signal });
    expect(cut.outcome).toBe('interrupted');
    const halfway = await state(interrupted);
    expect(halfway.backendNamed.length).toBeGreaterThan(2);
    expect((await runJobNow(server, 'gc')).outcome).toBe('ok');

    const clean = await provisionAccount(server);
    await litter(clean);
    expect((await runJobNow(server, 'gc')).outcome).toBe('ok');
    expect(await state(interrupted)).toEqual(await state(clean));
  });
});
