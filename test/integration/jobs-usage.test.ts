import { CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileUsage } from '../../src/jobs/reconcile.js';
import { provisionAccount } from '../helpers/admin.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { runJobNow, storeObject, usageOf } from '../helpers/jobs.js';
import { s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const GiB = 1024 ** 3;

let server: TestServer;
beforeAll(async () => {
  // Prices that make costs easy to read: a GiB-hour of storage costs 1, a GiB downloaded 2.
  server = await startTestServer({ PRICE_STORAGE_PER_GB_MONTH: '730', PRICE_BANDWIDTH_PER_GB: '2' });
});
afterAll(async () => {
  await server?.close();
});

describe('usage-rollup', () => {
  it('charges a known history by the hour: byte-hours, bytes at the end, bandwidth across a month turn, requests, costs', async () => {
    const account = await provisionAccount(server);
    const at = (iso: string) => ({ now: () => new Date(iso) });
    const setStorage = (bytes: number) => server.db.query('UPDATE agentcache_accounts SET storage_used_bytes = $2 WHERE id = $1', [account.id, bytes]);
    const setBandwidth = (month: string, bytes: number) =>
      server.db.query(
        `INSERT INTO bandwidth_usage (account_id, period_start, bytes) VALUES ($1, $2, $3) ON CONFLICT (account_id, period_start) DO UPDATE SET bytes = $3`,
        [account.id, month, bytes],
      );
    const request = (iso: string) =>
      server.db.query(`INSERT INTO api_requests (account_id, method, endpoint, status_code, created_at) VALUES ($1, 'GET', '/default/x', 200, $2)`, [account.id, iso]);

    // 22:30 on 31 January: the first reading, 1 GiB stored.
    await setStorage(GiB);
    expect((await runJobNow(server, 'usage-rollup', at('2030-01-31T22:30:00Z'))).outcome).toBe('ok');
    // By 23:15: 3 GiB stored, 1 GiB downloaded, two requests at 22:40 and one at 23:10.
    await setStorage(3 * GiB);
    await setBandwidth('2030-01-01', GiB);
    await request('2030-01-31T22:40:00Z');
    await request('2030-01-31T22:41:00Z');
    await request('2030-01-31T23:10:00Z');
    await runJobNow(server, 'usage-rollup', at('2030-01-31T23:15:00Z'));
    // By 00:30 on 1 February: 300 more bytes counted in January, 500 in February, one request at 00:05.
    await setBandwidth('2030-01-01', GiB + 300);
    await setBandwidth('2030-02-01', 500);
    await request('2030-02-01T00:05:00Z');
    await runJobNow(server, 'usage-rollup', at('2030-02-01T00:30:00Z'));
    // The same moment again adds nothing.
    await runJobNow(server, 'usage-rollup', at('2030-02-01T00:30:00Z'));

    const { rows } = await server.db.query(
      `SELECT period_start, period_end, storage_bytes, storage_byte_hours, bandwidth_bytes, request_count, storage_cost, bandwidth_cost, total_cost
         FROM storage_usage WHERE account_id = $1 ORDER BY period_start`,
      [account.id],
    );
    const third = Math.floor((GiB * 30) / 45); // the 22:30-23:15 download split by time: 30 of 45 minutes
    expect(rows).toEqual([
      {
        period_start: new Date('2030-01-31T22:00:00Z'),
        period_end: new Date('2030-01-31T23:00:00Z'),
        storage_bytes: GiB,
        storage_byte_hours: GiB * 0.5,
        bandwidth_bytes: third,
        request_count: 2,
        storage_cost: 0.5,
        bandwidth_cost: 1.3333,
        total_cost: 1.8333,
      },
      {
        period_start: new Date('2030-01-31T23:00:00Z'),
        period_end: new Date('2030-02-01T00:00:00Z'),
        storage_bytes: 3 * GiB,
        storage_byte_hours: GiB * 0.25 + 3 * GiB * 0.75,
        bandwidth_bytes: GiB - third + 300,
        request_count: 1,
        storage_cost: 2.5,
        bandwidth_cost: 0.6667,
        total_cost: 3.1667,
      },
      {
        period_start: new Date('2030-02-01T00:00:00Z'),
        period_end: new Date('2030-02-01T01:00:00Z'),
        storage_bytes: 3 * GiB,
        storage_byte_hours: 3 * GiB * 0.5,
        bandwidth_bytes: 500,
        request_count: 1,
        storage_cost: 1.5,
        bandwidth_cost: 0,
        total_cost: 1.5,
      },
    ]);

    // The README's billing export query, as printed there.
    const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const exportSql = /### Billing export[\s\S]*?```sql\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(exportSql).toBeDefined();
    const bill = await server.db.query(exportSql!.replace(/;\s*$/, ''));
    expect(bill.rows.find((row) => row.agentcache_user_id === account.agentcacheUserId)).toEqual({
      agentcache_user_id: account.agentcacheUserId,
      storage_gb_months: Number((3 / 730).toFixed(6)),
      bandwidth_gb: Number(((GiB + 300) / GiB).toFixed(6)),
      requests: 3,
      storage_cost: 3,
      bandwidth_cost: 2,
      total_cost: 5,
    });
  });
});

describe('reconcile', () => {
  it("finds no drift in usage the gateway charged, and fixes and reports drift it finds", async () => {
    const account = await provisionAccount(server);
    const client = s3Client(server, account);
    await client.send(new PutObjectCommand({ Bucket: 'default', Key: 'a', Body: randomBytes(300) }));
    await client.send(new PutObjectCommand({ Bucket: 'default', Key: 'a', Body: randomBytes(200) })); // an overwrite
    await client.send(new PutObjectCommand({ Bucket: 'default', Key: 'b', Body: randomBytes(50) }));
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'default', Key: 'big' }));
    await client.send(new UploadPartCommand({ Bucket: 'default', Key: 'big', UploadId, PartNumber: 1, Body: randomBytes(70) }));
    client.destroy();
    // Expired but not yet collected: still charged.
    await storeObject(server, account, 'expired', randomBytes(9), { expiresAt: new Date(Date.now() - 1000) });
    const charged = { used: 200 + 50 + 70 + 9, reserved: 0 };
    expect(await usageOf(server, account.id)).toEqual(charged);
    expect((await reconcileUsage(server.db)).filter((drift) => drift.accountId === account.id)).toEqual([]);

    // Drift: usage off by 999, reserved bytes without reservations beside one live reservation of 7.
    await server.db.query(`INSERT INTO storage_reservations (account_id, bytes, expires_at) VALUES ($1, 7, now() + interval '5 minutes')`, [account.id]);
    await server.db.query('UPDATE agentcache_accounts SET storage_used_bytes = storage_used_bytes + 999, storage_reserved_bytes = 5000 WHERE id = $1', [account.id]);
    const drift = await reconcileUsage(server.db);
    expect(drift.filter((entry) => entry.accountId === account.id)).toEqual([
      {
        accountId: account.id,
        agentcacheUserId: account.agentcacheUserId,
        before: { storageUsedBytes: charged.used + 999, storageReservedBytes: 5000 },
        after: { storageUsedBytes: charged.used, storageReservedBytes: 7 },
      },
    ]);
    expect(await usageOf(server, account.id)).toEqual({ used: charged.used, reserved: 7 });
    const again = await runJobNow(server, 'reconcile');
    expect(again).toMatchObject({ outcome: 'ok', summary: { drifted: 0 } });
  });
});

describe('request-log-prune', () => {
  it('deletes api_requests rows older than REQUEST_LOG_RETENTION_DAYS (30) and keeps newer ones', async () => {
    const marker = `/prune-${randomBytes(4).toString('hex')}`;
    for (const daysAgo of [45, 31, 29, 0]) {
      await server.db.query(
        `INSERT INTO api_requests (method, endpoint, status_code, created_at) VALUES ('GET', $1, 200, now() - make_interval(days => $2))`,
        [`${marker}/${daysAgo}`, daysAgo],
      );
    }
    const result = await runJobNow(server, 'request-log-prune');
    expect(result.outcome).toBe('ok');
    const { rows } = await server.db.query<{ endpoint: string }>('SELECT endpoint FROM api_requests WHERE starts_with(endpoint, $1) ORDER BY endpoint', [marker]);
    expect(rows.map((row) => row.endpoint)).toEqual([`${marker}/0`, `${marker}/29`]);
  });
});
