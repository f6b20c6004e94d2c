import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../../db/index.js';
import type { AppDeps } from '../../deps.js';
import type { BandwidthMeter } from '../../quota/bandwidth.js';
import { bytesToGb, percentUsed } from '../../units.js';
import { tenantOf } from './tenant.js';

/** The seed's quota document (Part 4), computed from bytes: GB of 2^30 bytes to 2 decimals. */
export interface QuotaDocument {
  tier: string;
  storage: { quota_gb: number; used_gb: number; available_gb: number; percent_used: number };
  bandwidth: { quota_gb: number; used_gb: number; available_gb: number };
}

interface QuotaRow {
  tier: string;
  storage_quota_bytes: number;
  storage_used_bytes: number;
  bandwidth_quota_bytes: number;
  bandwidth_used_bytes: number;
}

/**
 * `bandwidth` names the month (by the same clock the quota is enforced with) and adds the bytes this
 * process counted but has not written yet.
 */
export async function readQuota(
  q: Queryable,
  accountId: string,
  bandwidth: Pick<BandwidthMeter, 'periodStart' | 'unflushedBytes'>,
): Promise<QuotaDocument | null> {
  const periodStart = bandwidth.periodStart();
  const { rows } = await q.query<QuotaRow>(
    `SELECT l.tier, l.storage_quota_bytes, a.storage_used_bytes, l.bandwidth_quota_bytes, COALESCE(b.bytes, 0) AS bandwidth_used_bytes
       FROM agentcache_accounts a
       JOIN account_limits l ON l.account_id = a.id
       LEFT JOIN bandwidth_usage b ON b.account_id = a.id AND b.period_start = $2::date
      WHERE a.id = $1`,
    [accountId, periodStart],
  );
  const row = rows[0];
  if (!row) return null;
  row.bandwidth_used_bytes += bandwidth.unflushedBytes(accountId, periodStart);
  return {
    tier: row.tier,
    storage: {
      quota_gb: bytesToGb(row.storage_quota_bytes),
      used_gb: bytesToGb(row.storage_used_bytes),
      available_gb: bytesToGb(Math.max(0, row.storage_quota_bytes - row.storage_used_bytes)),
      percent_used: percentUsed(row.storage_used_bytes, row.storage_quota_bytes),
    },
    bandwidth: {
      quota_gb: bytesToGb(row.bandwidth_quota_bytes),
      used_gb: bytesToGb(row.bandwidth_used_bytes),
      available_gb: bytesToGb(Math.max(0, row.bandwidth_quota_bytes - row.bandwidth_used_bytes)),
    },
  };
}

const gbFigures = (names: string[]) => ({
  type: 'object',
  required: names,
  properties: Object.fromEntries(names.map((name) => [name, { type: 'number' }])),
});

const quotaResponse = {
  type: 'object',
  required: ['tier', 'storage', 'bandwidth'],
  properties: {
    tier: { type: 'string' },
    storage: gbFigures(['quota_gb', 'used_gb', 'available_gb', 'percent_used']),
    bandwidth: gbFigures(['quota_gb', 'used_gb', 'available_gb']),
  },
} as const;

/** GET /api/agentcache/quota: the calling account's limits and usage (seed Part 4). */
export async function quotaRoutes(app: FastifyInstance, options: { deps: AppDeps }): Promise<void> {
  app.get('/agentcache/quota', { schema: { response: { 200: quotaResponse } } }, async (request) => {
    const quota = await readQuota(options.deps.db, tenantOf(request).accountId, options.deps.bandwidth);
    // Authenticated a moment ago: only an account row removed in between gets here.
    if (!quota) throw new Error('account vanished after authentication');
    return quota;
  });
}
