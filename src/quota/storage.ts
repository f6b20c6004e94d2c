import type { Db, Queryable } from '../db/index.js';
import { formatBytes, QuotaError } from './errors.js';

/**
 * Storage accounting. Policy: fail closed. An upload reserves its size before a byte streams, with one
 * atomic statement that can only succeed while used + reserved + size <= quota, so concurrent uploads on
 * any number of gateway processes can never overshoot. Tenants are charged logical bytes: dedup lowers
 * the backend bill, not their usage.
 */

export const DEFAULT_RESERVATION_TTL_SECONDS = 15 * 60;

export interface Reservation {
  id: string;
  accountId: string;
  bytes: number;
}

interface QuotaRow {
  used: number;
  reserved: number;
  quota: number;
}

async function quotaExceeded(q: Queryable, accountId: string, bytes: number): Promise<QuotaError> {
  const { rows } = await q.query<QuotaRow>(
    `SELECT a.storage_used_bytes AS used, a.storage_reserved_bytes AS reserved, l.storage_quota_bytes AS quota
       FROM agentcache_accounts a JOIN account_limits l ON l.account_id = a.id WHERE a.id = $1`,
    [accountId],
  );
  const row = rows[0] ?? { used: 0, reserved: 0, quota: 0 };
  return new QuotaError(
    'QUOTA_STORAGE_EXCEEDED',
    `Storage quota exceeded: ${formatBytes(row.used)} used of ${formatBytes(row.quota)}` +
      (row.reserved > 0 ? ` (${formatBytes(row.reserved)} reserved by uploads in progress)` : '') +
      `; this request needs ${formatBytes(bytes)}.`,
    { used: row.used, quota: row.quota },
  );
}

/** Reserves `bytes` of the account's storage quota, or throws QUOTA_STORAGE_EXCEEDED. */
export async function reserveStorage(
  db: Db,
  accountId: string,
  bytes: number,
  ttlSeconds = DEFAULT_RESERVATION_TTL_SECONDS,
): Promise<Reservation> {
  // One statement, so the check, the reserved total and the reservation row commit together without a
  // transaction's extra round trips on the hot path.
  const { rows } = await db.query<{ id: string }>(
    `WITH reserved AS (
       UPDATE agentcache_accounts a
          SET storage_reserved_bytes = a.storage_reserved_bytes + $2
         FROM account_limits l
        WHERE a.id = $1 AND l.account_id = a.id
          AND a.storage_used_bytes + a.storage_reserved_bytes + $2 <= l.storage_quota_bytes
       RETURNING a.id)
     INSERT INTO storage_reservations (account_id, bytes, expires_at)
     SELECT id, $2, now() + make_interval(secs => $3) FROM reserved
     RETURNING id`,
    [accountId, bytes, ttlSeconds],
  );
  const reserved = rows[0]?.id ?? null;
  if (reserved === null) throw await quotaExceeded(db, accountId, bytes);
  return { id: reserved, accountId, bytes };
}

/**
 * Removes a reservation and its bytes from the account's reserved total. Inside a commit transaction it
 * pairs with applyStorageDelta; on failure it is called alone. Releasing twice is harmless.
 */
export async function releaseReservation(q: Queryable, reservation: Reservation): Promise<void> {
  await q.query(
    `WITH gone AS (DELETE FROM storage_reservations WHERE id = $1 RETURNING account_id, bytes)
     UPDATE agentcache_accounts a SET storage_reserved_bytes = GREATEST(a.storage_reserved_bytes - gone.bytes, 0)
       FROM gone WHERE a.id = gone.account_id`,
    [reservation.id],
  );
}

/**
 * Turns a reservation into usage inside the commit transaction: the reservation goes and the committed
 * delta (new size minus what it replaced) is applied, in one statement. The reservation already passed
 * the quota check for its full size, so no check is needed here.
 */
export async function settleReservation(q: Queryable, reservation: Reservation, delta: number): Promise<void> {
  await q.query(
    `WITH gone AS (DELETE FROM storage_reservations WHERE id = $1 RETURNING bytes)
     UPDATE agentcache_accounts
        SET storage_reserved_bytes = GREATEST(storage_reserved_bytes - COALESCE((SELECT bytes FROM gone), 0), 0),
            storage_used_bytes = GREATEST(storage_used_bytes + $3, 0)
      WHERE id = $2`,
    [reservation.id, reservation.accountId, delta],
  );
}

/**
 * Applies a committed change of logical bytes (new size minus the replaced object's size). A growth that
 * no reservation covered (a copy) must still fit the quota, checked in the same statement.
 */
export async function applyStorageDelta(q: Queryable, accountId: string, delta: number, options: { checkQuota: boolean }): Promise<void> {
  if (delta === 0) return;
  if (delta < 0 || !options.checkQuota) {
    await q.query(
      'UPDATE agentcache_accounts SET storage_used_bytes = GREATEST(storage_used_bytes + $2, 0) WHERE id = $1',
      [accountId, delta],
    );
    return;
  }
  const updated = await q.query(
    `UPDATE agentcache_accounts a SET storage_used_bytes = a.storage_used_bytes + $2
       FROM account_limits l
      WHERE a.id = $1 AND l.account_id = a.id
        AND a.storage_used_bytes + a.storage_reserved_bytes + $2 <= l.storage_quota_bytes`,
    [accountId, delta],
  );
  if (updated.rowCount === 0) throw await quotaExceeded(q, accountId, delta);
}

/** Releases reservations whose process died before commit or release. Returns how many went. */
export async function expireReservations(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH gone AS (DELETE FROM storage_reservations WHERE expires_at < now() RETURNING account_id, bytes),
          per_account AS (SELECT account_id, SUM(bytes) AS bytes, COUNT(*) AS n FROM gone GROUP BY account_id),
          updated AS (
            UPDATE agentcache_accounts a SET storage_reserved_bytes = GREATEST(a.storage_reserved_bytes - p.bytes, 0)
              FROM per_account p WHERE a.id = p.account_id RETURNING p.n)
     SELECT COALESCE(SUM(n), 0)::BIGINT AS n FROM updated`,
  );
  return rows[0]?.n ?? 0;
}
