import { CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { provisionAccount, type Provisioned } from '../helpers/admin.js';
import { backendListing, runJobNow, storeObject } from '../helpers/jobs.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

/** An account with objects, an unfinished multipart upload, usage and bandwidth, marked deleted. */
async function deletedAccount(): Promise<Provisioned> {
  const account = await provisionAccount(server);
  for (let i = 0; i < 6; i++) await storeObject(server, account, `file-${i}`, randomBytes(40));
  const client = s3Client(server, account);
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'big' }));
  await client.send(new UploadPartCommand({ Bucket: 'default', Key: 'big', UploadId, PartNumber: 1, Body: randomBytes(100) }));
  client.destroy();
  await server.db.query(`INSERT INTO bandwidth_usage (account_id, period_start, bytes) VALUES ($1, date_trunc('month', now())::date, 123)`, [account.id]);
  // As the admin delete leaves it, without starting the purge here.
  await server.db.query(`UPDATE agentcache_accounts SET status = 'deleted', deleted_at = now(), purge_state = 'pending' WHERE id = $1`, [account.id]);
  return account;
}

async function state(account: Provisioned) {
  const counts: Record<string, number> = {};
  for (const table of ['buckets', 'blobs', 'agentcache_assets', 'multipart_uploads', 'staged_writes', 'storage_reservations', 'bandwidth_usage']) {
    const { rows } = await server.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE account_id = $1`, [account.id]);
    counts[table] = rows[0]!.n;
  }
  const { rows } = await server.db.query(
    `SELECT status, purge_state, storage_used_bytes, storage_reserved_bytes, agentcache_email FROM agentcache_accounts WHERE id = $1`,
    [account.id],
  );
  return { counts, account: rows[0], backend: await backendListing(server, account.agentcacheUserId) };
}

/** Deletes only the first half of each batch it is given and then "dies": the run is aborted. */
function dyingMidBatch(controller: AbortController): Backend {
  return new Proxy(server.backend, {
    get(target, property, receiver) {
      if (property !== 'deleteMany') return Reflect.get(target, property, receiver);
      return async (input: { keys: string[] }) => {
        await target.deleteMany({ keys: input.keys.slice(0, Math.ceil(input.keys.length / 2)) });
        controller.abort(new Error('killed'));
        throw new Error('killed');
      };
    },
  });
}

describe('purge', () => {
  it('removes every backend object and row of a deleted account, and leaves a tombstone', async () => {
    const account = await deletedAccount();
    const neighbour = await provisionAccount(server);
    await storeObject(server, neighbour, 'stays', randomBytes(10));
    const result = await runJobNow(server, 'purge');
    expect(result).toMatchObject({ outcome: 'ok', summary: { purged: 1 } });
    expect(await state(account)).toEqual({
      counts: { buckets: 0, blobs: 0, agentcache_assets: 0, multipart_uploads: 0, staged_writes: 0, storage_reservations: 0, bandwidth_usage: 0 },
      account: { status: 'deleted', purge_state: 'done', storage_used_bytes: 0, storage_reserved_bytes: 0, agentcache_email: '' },
      backend: [],
    });
    expect(await backendListing(server, neighbour.agentcacheUserId)).toHaveLength(2); // .keep and its object
    expect((await runJobNow(server, 'purge')).summary).toEqual({ purged: 0 });
  });

  it('killed halfway through a batch and run again, ends where one clean run ends', async () => {
    const killed = await deletedAccount();
    const controller = new AbortController();
    const cut = await runJobNow(server, 'purge', { deps: { backend: dyingMidBatch(controller) }, signal: controller.signal });
    expect(cut.outcome).toBe('interrupted');
    const halfway = await state(killed);
    expect(halfway.account).toMatchObject({ purge_state: 'running' });
    expect(halfway.counts.agentcache_assets).toBe(6);
    expect(halfway.backend.length).toBeGreaterThan(0);
    expect(halfway.backend.length).toBeLessThan(7);

    expect((await runJobNow(server, 'purge')).outcome).toBe('ok');
    const clean = await deletedAccount();
    expect((await runJobNow(server, 'purge')).outcome).toBe('ok');
    const [afterKill, afterClean] = [await state(killed), await state(clean)];
    expect(afterKill).toEqual(afterClean);
    expect(afterKill.backend).toEqual([]);
  });
});
