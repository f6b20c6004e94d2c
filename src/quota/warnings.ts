import type { Logger } from 'pino';
import type { Queryable } from '../db/index.js';
import { runEvery, type PeriodicTask } from '../jobs/periodic.js';

/**
 * Quota warnings: when an account's storage or this month's bandwidth reaches 80, 95 or 100 % of its
 * quota, one `quota.warning` event per threshold per period goes into the outbox (jobs/outbox.ts
 * delivers it to AgentCache).
 *
 * The period is the calendar month in UTC for both resources. Bandwidth starts from zero each month, so
 * its warnings come again only when it climbs again; storage carries over, so an account that stays
 * above a threshold is reminded once a month. Every threshold reached gets its own event, so a jump
 * from 10 % to 100 % records three. A quota of 0 (the free tier stores nothing) warns about nothing.
 *
 * "Once" is the outbox's unique dedupe_key, `quota:<account id>:<storage|bandwidth>:<threshold>:<YYYY-MM>`,
 * with ON CONFLICT DO NOTHING: every process may scan at any time, without locks, and a threshold
 * already recorded this month is never recorded again.
 */

export const QUOTA_WARNING_EVENT = 'quota.warning';
export const QUOTA_WARNING_THRESHOLDS = [80, 95, 100] as const;

export type QuotaResource = 'storage' | 'bandwidth';

/** The body AgentCache receives (before signing). */
export interface QuotaWarningEvent {
  /** The outbox row's id: a redelivery carries the same id, so the receiver can drop it. */
  id: string;
  type: typeof QUOTA_WARNING_EVENT;
  created_at: string;
  account: { agentcache_user_id: string; tier: string };
  resource: QuotaResource;
  threshold_percent: number;
  used_bytes: number;
  quota_bytes: number;
  /** The calendar month (UTC) the warning belongs to, `YYYY-MM`. */
  period: string;
}

export interface RecordedWarning {
  id: string;
  dedupeKey: string;
}

// $1: the moment the scan stands for (NULL: the database's clock); $2: the thresholds.
const SCAN_SQL = `
WITH clock AS (
  SELECT COALESCE($1::timestamptz, now()) AS at
), period AS (
  SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date AS start,
         to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') AS label,
         to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at
    FROM clock
), usage AS (
  SELECT a.id AS account_id, a.agentcache_user_id, a.agentcache_tier AS tier, a.webhook_url,
         'storage' AS resource, a.storage_used_bytes AS used_bytes, l.storage_quota_bytes AS quota_bytes
    FROM agentcache_accounts a
    JOIN account_limits l ON l.account_id = a.id
   WHERE a.status <> 'deleted'
  UNION ALL
  SELECT a.id, a.agentcache_user_id, a.agentcache_tier, a.webhook_url,
         'bandwidth', b.bytes, l.bandwidth_quota_bytes
    FROM bandwidth_usage b
    JOIN period p ON b.period_start = p.start
    JOIN agentcache_accounts a ON a.id = b.account_id
    JOIN account_limits l ON l.account_id = a.id
   WHERE a.status <> 'deleted'
), crossed AS (
  SELECT gen_random_uuid() AS id, u.*, t.threshold
    FROM usage u
    CROSS JOIN unnest($2::int[]) AS t(threshold)
   -- numeric: a quota near the BIGINT limit times 100 would overflow
   WHERE u.quota_bytes > 0 AND u.used_bytes::numeric * 100 >= u.quota_bytes::numeric * t.threshold
)
INSERT INTO outbox (id, account_id, event_type, dedupe_key, payload, target_url)
SELECT c.id, c.account_id, '${QUOTA_WARNING_EVENT}',
       concat_ws(':', 'quota', c.account_id, c.resource, c.threshold, p.label),
       jsonb_build_object(
         'id', c.id,
         'type', '${QUOTA_WARNING_EVENT}',
         'created_at', p.created_at,
         'account', jsonb_build_object('agentcache_user_id', c.agentcache_user_id, 'tier', c.tier),
         'resource', c.resource,
         'threshold_percent', c.threshold,
         'used_bytes', c.used_bytes,
         'quota_bytes', c.quota_bytes,
         'period', p.label),
       c.webhook_url
  FROM crossed c CROSS JOIN period p
 ORDER BY c.account_id, c.resource, c.threshold
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, dedupe_key`;

/**
 * One statement: records every threshold reached and not yet recorded this period, and returns the new
 * rows. `now` stands in for the database's clock (tests of a month's turn).
 */
export async function recordQuotaWarnings(db: Queryable, options: { now?: Date } = {}): Promise<RecordedWarning[]> {
  const { rows } = await db.query<{ id: string; dedupe_key: string }>(SCAN_SQL, [options.now ?? null, [...QUOTA_WARNING_THRESHOLDS]]);
  return rows.map((row) => ({ id: row.id, dedupeKey: row.dedupe_key }));
}

/**
 * Scans every QUOTA_WARNING_SCAN_MS; `onRecorded` hears of new events (to deliver them without waiting).
 * `clock`, when given, is the one bandwidth counting uses, so both agree on the month.
 */
export function startQuotaWarnings(
  deps: { db: Queryable; logger: Logger; config: { quotaWarningScanMs: number }; clock?: () => Date },
  onRecorded: (warnings: RecordedWarning[]) => void,
): PeriodicTask {
  return runEvery(
    'quota-warnings',
    deps.config.quotaWarningScanMs,
    async () => {
      const recorded = await recordQuotaWarnings(deps.db, deps.clock ? { now: deps.clock() } : {});
      if (recorded.length === 0) return;
      deps.logger.info({ warnings: recorded.map((warning) => warning.dedupeKey) }, 'recorded quota warnings');
      onRecorded(recorded);
    },
    deps.logger,
  );
}
