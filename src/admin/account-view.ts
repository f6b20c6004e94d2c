import type { AccountStatus } from '../auth/key-store.js';
import type { Queryable } from '../db/index.js';
import { bytesToGb } from '../units.js';

/** An account as the admin API shows it: limits in force, overrides, usage. Never a secret. */
export interface AccountView {
  id: string;
  agentcache_user_id: string;
  agentcache_email: string;
  tier: string;
  status: AccountStatus;
  purge_state: 'pending' | 'running' | 'done' | null;
  /** The access key is an identifier, like a user name; only the secret is withheld. */
  api_key: string;
  previous_secret_expires_at: Date | null;
  jetty_speed_enabled: boolean;
  webhook_url: string | null;
  limits: {
    storage_quota_bytes: number;
    storage_quota_gb: number;
    bandwidth_quota_bytes: number;
    bandwidth_quota_gb: number;
    rate_limit_per_minute: number;
    max_file_size_bytes: number;
  };
  /** Per-account figures that replace the tier's; null where the tier's applies. */
  overrides: {
    storage_quota_bytes: number | null;
    bandwidth_quota_bytes: number | null;
    rate_limit_per_minute: number | null;
    max_file_size_bytes: number | null;
  };
  usage: {
    storage_used_bytes: number;
    storage_used_gb: number;
    storage_reserved_bytes: number;
    /** Bytes downloaded in the current calendar month (UTC), which the bandwidth quota limits. */
    bandwidth_used_bytes: number;
    bandwidth_used_gb: number;
    bandwidth_period_start: string;
  };
  created_at: Date;
  updated_at: Date;
  last_accessed: Date | null;
  deleted_at: Date | null;
}

interface AccountViewRow {
  id: string;
  agentcache_user_id: string;
  agentcache_email: string;
  tier: string;
  status: AccountStatus;
  purge_state: AccountView['purge_state'];
  api_key: string;
  previous_secret_expires_at: Date | null;
  webhook_url: string | null;
  jetty_speed_enabled: boolean;
  storage_quota_bytes: number;
  bandwidth_quota_bytes: number;
  rate_limit_per_minute: number;
  max_file_size_bytes: number;
  storage_quota_bytes_override: number | null;
  bandwidth_quota_bytes_override: number | null;
  rate_limit_per_minute_override: number | null;
  max_file_size_bytes_override: number | null;
  storage_used_bytes: number;
  storage_reserved_bytes: number;
  bandwidth_used_bytes: number;
  bandwidth_period_start: string;
  created_at: Date;
  updated_at: Date;
  last_accessed: Date | null;
  deleted_at: Date | null;
}

/** The month bandwidth_usage counts in: the first day of the current month in UTC. */
export const CURRENT_PERIOD_SQL = `(date_trunc('month', now() AT TIME ZONE 'UTC'))::date`;

/**
 * Columns are named one by one: the encrypted secrets stay out of every read that does not need them.
 * `$where` is filled by the callers below with fixed SQL, never with input.
 */
const SELECT_VIEW = `
  SELECT a.id, a.agentcache_user_id, a.agentcache_email, a.agentcache_tier AS tier, a.status, a.purge_state,
         a.api_key, CASE WHEN a.previous_secret_expires_at > now() THEN a.previous_secret_expires_at END AS previous_secret_expires_at,
         a.webhook_url, l.jetty_speed_enabled,
         l.storage_quota_bytes, l.bandwidth_quota_bytes, l.rate_limit_per_minute, l.max_file_size_bytes,
         a.storage_quota_bytes_override, a.bandwidth_quota_bytes_override,
         a.rate_limit_per_minute_override, a.max_file_size_bytes_override,
         a.storage_used_bytes, a.storage_reserved_bytes,
         COALESCE(b.bytes, 0) AS bandwidth_used_bytes, to_char(${CURRENT_PERIOD_SQL}, 'YYYY-MM-DD') AS bandwidth_period_start,
         a.created_at, a.updated_at, a.last_accessed, a.deleted_at
    FROM agentcache_accounts a
    JOIN account_limits l ON l.account_id = a.id
    LEFT JOIN bandwidth_usage b ON b.account_id = a.id AND b.period_start = ${CURRENT_PERIOD_SQL}`;

function toView(row: AccountViewRow): AccountView {
  return {
    id: row.id,
    agentcache_user_id: row.agentcache_user_id,
    agentcache_email: row.agentcache_email,
    tier: row.tier,
    status: row.status,
    purge_state: row.purge_state,
    api_key: row.api_key,
    previous_secret_expires_at: row.previous_secret_expires_at,
    jetty_speed_enabled: row.jetty_speed_enabled,
    webhook_url: row.webhook_url,
    limits: {
      storage_quota_bytes: row.storage_quota_bytes,
      storage_quota_gb: bytesToGb(row.storage_quota_bytes),
      bandwidth_quota_bytes: row.bandwidth_quota_bytes,
      bandwidth_quota_gb: bytesToGb(row.bandwidth_quota_bytes),
      rate_limit_per_minute: row.rate_limit_per_minute,
      max_file_size_bytes: row.max_file_size_bytes,
    },
    overrides: {
      storage_quota_bytes: row.storage_quota_bytes_override,
      bandwidth_quota_bytes: row.bandwidth_quota_bytes_override,
      rate_limit_per_minute: row.rate_limit_per_minute_override,
      max_file_size_bytes: row.max_file_size_bytes_override,
    },
    usage: {
      storage_used_bytes: row.storage_used_bytes,
      storage_used_gb: bytesToGb(row.storage_used_bytes),
      storage_reserved_bytes: row.storage_reserved_bytes,
      bandwidth_used_bytes: row.bandwidth_used_bytes,
      bandwidth_used_gb: bytesToGb(row.bandwidth_used_bytes),
      bandwidth_period_start: row.bandwidth_period_start,
    },
    created_at: row.created_at,
    updated_at: row.updated_at,
    last_accessed: row.last_accessed,
    deleted_at: row.deleted_at,
  };
}

export async function selectAccountView(q: Queryable, agentcacheUserId: string): Promise<AccountView | null> {
  const { rows } = await q.query<AccountViewRow>(`${SELECT_VIEW} WHERE a.agentcache_user_id = $1`, [agentcacheUserId]);
  return rows[0] ? toView(rows[0]) : null;
}

export interface AccountPageQuery {
  tier?: string;
  status?: AccountStatus;
  /** Exclusive: the page starts after this agentcache_user_id. */
  after?: string;
  limit: number;
}

/** One page in agentcache_user_id byte order, which is stable however rows are added or removed. */
export async function selectAccountPage(q: Queryable, query: AccountPageQuery): Promise<AccountView[]> {
  const { rows } = await q.query<AccountViewRow>(
    `${SELECT_VIEW}
      WHERE ($1::text IS NULL OR a.agentcache_tier = $1)
        AND ($2::text IS NULL OR a.status = $2)
        AND ($3::text IS NULL OR a.agentcache_user_id COLLATE "C" > $3)
      ORDER BY a.agentcache_user_id COLLATE "C"
      LIMIT $4`,
    [query.tier ?? null, query.status ?? null, query.after ?? null, query.limit],
  );
  return rows.map(toView);
}
