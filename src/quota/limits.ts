import type { Queryable } from '../db/index.js';

/** The limits in force for an account: its overrides where set, else its tier's (the account_limits view). */
export interface Limits {
  tier: string;
  storageQuotaBytes: number;
  bandwidthQuotaBytes: number;
  rateLimitPerMinute: number;
  maxFileSizeBytes: number;
  jettySpeedEnabled: boolean;
}

/** The account_limits view's columns, for a query that names the view `l`; read back with toLimits. */
export const LIMIT_COLUMNS = 'l.tier, l.storage_quota_bytes, l.bandwidth_quota_bytes, l.rate_limit_per_minute, l.max_file_size_bytes, l.jetty_speed_enabled';

export interface LimitsRow {
  tier: string;
  storage_quota_bytes: number;
  bandwidth_quota_bytes: number;
  rate_limit_per_minute: number;
  max_file_size_bytes: number;
  jetty_speed_enabled: boolean;
}

export function toLimits(row: LimitsRow): Limits {
  return {
    tier: row.tier,
    storageQuotaBytes: row.storage_quota_bytes,
    bandwidthQuotaBytes: row.bandwidth_quota_bytes,
    rateLimitPerMinute: row.rate_limit_per_minute,
    maxFileSizeBytes: row.max_file_size_bytes,
    jettySpeedEnabled: row.jetty_speed_enabled,
  };
}

/**
 * The limits in force as the database holds them now, with the account's current usage. Requests read
 * the limits from the key record; this is for the paths that need the usage as well.
 */
export interface AccountLimits extends Limits {
  storageUsedBytes: number;
  storageReservedBytes: number;
}

export async function getAccountLimits(q: Queryable, accountId: string): Promise<AccountLimits> {
  const { rows } = await q.query<LimitsRow & { storage_used_bytes: number; storage_reserved_bytes: number }>(
    `SELECT ${LIMIT_COLUMNS}, a.storage_used_bytes, a.storage_reserved_bytes
       FROM account_limits l JOIN agentcache_accounts a ON a.id = l.account_id WHERE l.account_id = $1`,
    [accountId],
  );
  const row = rows[0];
  if (!row) throw Object.assign(new Error('account not found'), { code: 'ACCOUNT_NOT_FOUND' });
  return { ...toLimits(row), storageUsedBytes: row.storage_used_bytes, storageReservedBytes: row.storage_reserved_bytes };
}
