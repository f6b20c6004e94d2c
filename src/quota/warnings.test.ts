import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrate, type Db } from '../db/index.js';
import { openPglite } from '../db/pglite.js';
import { recordQuotaWarnings } from './warnings.js';

const JUNE = new Date('2031-06-15T12:00:00Z');

describe('recordQuotaWarnings', () => {
  let db: Db;
  let serial = 0;

  async function account(options: { used?: number; storageQuota?: number | null; bandwidthQuota?: number | null; status?: string; tier?: string; webhookUrl?: string }) {
    serial++;
    const { rows } = await db.query<{ id: string; agentcache_user_id: string }>(
      `INSERT INTO agentcache_accounts (agentcache_user_id, agentcache_email, agentcache_tier, api_key, api_secret_encrypted, s3_bucket_name, s3_prefix,
                                        storage_used_bytes, storage_quota_bytes_override, bandwidth_quota_bytes_override, status, webhook_url)
       VALUES ($1, 'u@example.com', $2, $3, 'x', 'b', 'p', $4, $5, $6, $7, $8) RETURNING id, agentcache_user_id`,
      [`user-${serial}`, options.tier ?? 'pro', `key-${serial}`, options.used ?? 0, options.storageQuota ?? null, options.bandwidthQuota ?? null, options.status ?? 'active', options.webhookUrl ?? null],
    );
    return rows[0]!;
  }

  async function downloaded(accountId: string, periodStart: string, bytes: number) {
    await db.query(`INSERT INTO bandwidth_usage (account_id, period_start, bytes) VALUES ($1, $2, $3)`, [accountId, periodStart, bytes]);
  }

  beforeAll(async () => {
    db = await openPglite(null);
    await migrate(db);
  });
  beforeEach(async () => {
    await db.query('DELETE FROM agentcache_accounts');
  });
  afterAll(async () => {
    await db?.close();
  });

  it('records a threshold at exactly its percentage, not a byte before', async () => {
    const below = await account({ used: 799, storageQuota: 1000 });
    const at = await account({ used: 800, storageQuota: 1000 });
    const keys = (await recordQuotaWarnings(db, { now: JUNE })).map((w) => w.dedupeKey);
    expect(keys).toEqual([`quota:${at.id}:storage:80:2031-06`]);
    expect(keys.some((key) => key.includes(below.id))).toBe(false);
  });

  it('records every threshold reached, each once per month', async () => {
    const full = await account({ used: 1000, storageQuota: 1000 });
    expect((await recordQuotaWarnings(db, { now: JUNE })).map((w) => w.dedupeKey)).toEqual(
      [80, 95, 100].map((threshold) => `quota:${full.id}:storage:${threshold}:2031-06`),
    );
    expect(await recordQuotaWarnings(db, { now: JUNE })).toEqual([]);
    expect(await recordQuotaWarnings(db, { now: new Date('2031-06-30T23:59:59Z') })).toEqual([]);
    expect(await recordQuotaWarnings(db, { now: new Date('2031-07-01T00:00:00Z') })).toHaveLength(3);
  });

  it('writes the event AgentCache receives, addressed to the account webhook when it has one', async () => {
    const hooked = await account({ used: 960, storageQuota: 1000, tier: 'business', webhookUrl: 'https://agentcache.example/hook' });
    const plain = await account({ bandwidthQuota: 2000 });
    await downloaded(plain.id, '2031-06-01', 1700);
    await recordQuotaWarnings(db, { now: JUNE });
    const { rows } = await db.query<{ id: string; account_id: string; event_type: string; payload: Record<string, unknown>; target_url: string | null }>(
      `SELECT id, account_id, event_type, payload, target_url FROM outbox ORDER BY dedupe_key`,
    );
    const hookedRow = rows.find((row) => row.account_id === hooked.id && row.payload.threshold_percent === 95)!;
    expect(hookedRow.event_type).toBe('quota.warning');
    expect(hookedRow.target_url).toBe('https://agentcache.example/hook');
    expect(hookedRow.payload).toEqual({
      id: hookedRow.id,
      type: 'quota.warning',
      created_at: '2031-06-15T12:00:00.000Z',
      account: { agentcache_user_id: hooked.agentcache_user_id, tier: 'business' },
      resource: 'storage',
      threshold_percent: 95,
      used_bytes: 960,
      quota_bytes: 1000,
      period: '2031-06',
    });
    const plainRow = rows.find((row) => row.account_id === plain.id)!;
    expect(plainRow.target_url).toBeNull();
    expect(plainRow.payload).toMatchObject({ resource: 'bandwidth', threshold_percent: 80, used_bytes: 1700, quota_bytes: 2000 });
  });

  it("counts only this month's bandwidth", async () => {
    const heavy = await account({ bandwidthQuota: 1000 });
    await downloaded(heavy.id, '2031-05-01', 1000);
    expect(await recordQuotaWarnings(db, { now: JUNE })).toEqual([]);
  });

  it('warns nobody with a quota of 0 and no deleted account; huge quotas do not overflow', async () => {
    const free = await account({ tier: 'free' });
    await downloaded(free.id, '2031-06-01', 5);
    await account({ used: 10, storageQuota: 0 });
    await account({ used: 1000, storageQuota: 1000, status: 'deleted' });
    const huge = await account({ used: 9_000_000_000_000_000_000, storageQuota: 9_200_000_000_000_000_000 });
    const keys = (await recordQuotaWarnings(db, { now: JUNE })).map((w) => w.dedupeKey);
    expect(keys).toEqual([`quota:${huge.id}:storage:80:2031-06`, `quota:${huge.id}:storage:95:2031-06`]);
  });
});
