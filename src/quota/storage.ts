import type { Db, Queryable } from '../db/index.js';
import { ReservedBytes } from './byte-limit.js';
import { formatBytes, QuotaError } from './errors.js';

/**
 * Storage accounting. Policy: fail closed. An upload reserves its size before a byte streams, with one
 * atomic statement that can only succeed while used + reserved + size <= quota, so concurrent uploads on
 * any number of gateway processes can never overshoot. Tenants are charged logical bytes: dedup lowers
 * the backend bill, not their usage.
 */

export const DEFAULT_RESERVATION_TTL_SECONDS = 15 * 60;

/**
 * How far ahead of a body of unknown length its reservation grows: by as much as it holds already, within
 * these bounds. A stalled upload then holds at most about twice what it has sent (so it cannot starve the
 * uploads beside it of quota), and a large one costs one statement per UNKNOWN_LENGTH_MAX_STEP.
 */
export const UNKNOWN_LENGTH_MIN_STEP = 1024 * 1024;
export const UNKNOWN_LENGTH_MAX_STEP = 64 * 1024 * 1024;

export interface Reservation {
  id: string;
  accountId: string;
  /** Bytes held now; extendReservation grows it. */
  bytes: number;
  /** How long the reservation outlives its last renewal; the process holding it renews it while it streams. */
  ttlSeconds: number;
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

/**
 * The reservation as common table expressions over ($1 account, $2 bytes, $3 TTL seconds): `reserved`
 * holds the account's id only when the bytes fit (used + reserved + bytes <= quota) and were added to
 * its reserved total; `reservation` the new reservation row's id. Empty both, when they do not fit.
 */
const RESERVE_CTES = `reserved AS (
       UPDATE agentcache_accounts a
          SET storage_reserved_bytes = a.storage_reserved_bytes + $2
         FROM account_limits l
        WHERE a.id = $1 AND l.account_id = a.id
          AND a.storage_used_bytes + a.storage_reserved_bytes + $2 <= l.storage_quota_bytes
       RETURNING a.id),
     reservation AS (
       INSERT INTO storage_reservations (account_id, bytes, expires_at)
       SELECT id, $2, now() + make_interval(secs => $3) FROM reserved
       RETURNING id)`;

/** Reserves `bytes` of the account's storage quota, or throws QUOTA_STORAGE_EXCEEDED. */
export async function reserveStorage(
  db: Db,
  accountId: string,
  bytes: number,
  ttlSeconds = DEFAULT_RESERVATION_TTL_SECONDS,
): Promise<Reservation> {
  // One statement, so the check, the reserved total and the reservation row commit together without a
  // transaction's extra round trips on the hot path.
  const { rows } = await db.query<{ id: string }>(`WITH ${RESERVE_CTES} SELECT id FROM reservation`, [accountId, bytes, ttlSeconds]);
  const reserved = rows[0]?.id ?? null;
  if (reserved === null) throw await quotaExceeded(db, accountId, bytes);
  return { id: reserved, accountId, bytes, ttlSeconds };
}

export interface StagedWrite {
  /** The backend object the upload will write, recorded in staged_writes before its first byte goes out. */
  backendKey: string;
  /** The SHA-256 (hex) the client declared for the body: when the account stores that content already, nothing is staged. */
  claimedSha256?: string;
}

/**
 * reserveStorage and, in the same statement, what a single PUT does next: find the account's blob with
 * the claimed content, else stage the backend object about to be written (see store/blobs.ts). One
 * round trip and one commit instead of three. A refused reservation stages nothing. Returns the blob
 * found, if any; then nothing was staged.
 */
export async function reserveStorageAndStage(
  db: Db,
  accountId: string,
  bytes: number,
  ttlSeconds: number,
  write: StagedWrite,
): Promise<{ reservation: Reservation; stored: { id: string; backendKey: string } | null }> {
  const { rows } = await db.query<{ id: string; stored_id: string | null; stored_key: string | null }>(
    `WITH ${RESERVE_CTES},
          stored AS (SELECT id, backend_key FROM blobs WHERE account_id = $1 AND sha256 = $5),
          staged AS (
       INSERT INTO staged_writes (backend_key, account_id)
       SELECT $4, id FROM reserved WHERE NOT EXISTS (SELECT 1 FROM stored))
     SELECT reservation.id, stored.id AS stored_id, stored.backend_key AS stored_key FROM reservation LEFT JOIN stored ON true`,
    [accountId, bytes, ttlSeconds, write.backendKey, write.claimedSha256 ?? null],
  );
  const row = rows[0];
  if (!row) throw await quotaExceeded(db, accountId, bytes);
  return {
    reservation: { id: row.id, accountId, bytes, ttlSeconds },
    stored: row.stored_id === null || row.stored_key === null ? null : { id: row.stored_id, backendKey: row.stored_key },
  };
}

/**
 * Grows a reservation while a body of unknown length streams, so the storage it holds never runs ahead of
 * the bytes received by more than `wanted` and never past the quota. Asks for `wanted` more bytes; when
 * the quota has less left, takes what is left as long as that covers `needed`. Throws
 * QUOTA_STORAGE_EXCEEDED when even `needed` does not fit.
 */
export async function extendReservation(db: Db, reservation: Reservation, bytes: { needed: number; wanted: number }): Promise<void> {
  let ask = Math.max(bytes.needed, bytes.wanted);
  // Another upload may take what a first refusal showed as left: a few tries, each for what is left then.
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await growBy(db, reservation, ask)) {
      reservation.bytes += ask;
      return;
    }
    const left = await storageLeft(db, reservation.accountId);
    if (left < bytes.needed) break;
    ask = Math.min(ask, left);
  }
  const held = await db.query('SELECT 1 FROM storage_reservations WHERE id = $1', [reservation.id]);
  if (held.rowCount === 0) throw reservationLapsed();
  throw await quotaExceeded(db, reservation.accountId, reservation.bytes + bytes.needed);
}

async function growBy(db: Db, reservation: Reservation, bytes: number): Promise<boolean> {
  // The reservation row is locked before the account row, the order releaseReservation and
  // expireReservations take them in. Nothing is added for a reservation that expired meanwhile.
  const { rowCount } = await db.query(
    `WITH held AS (SELECT id FROM storage_reservations WHERE id = $1 FOR UPDATE),
          grown AS (
            UPDATE agentcache_accounts a
               SET storage_reserved_bytes = a.storage_reserved_bytes + $3
              FROM account_limits l, held
             WHERE a.id = $2 AND l.account_id = a.id
               AND a.storage_used_bytes + a.storage_reserved_bytes + $3 <= l.storage_quota_bytes
            RETURNING a.id)
     UPDATE storage_reservations r SET bytes = r.bytes + $3, expires_at = now() + make_interval(secs => $4)
       FROM grown WHERE r.id = $1`,
    [reservation.id, reservation.accountId, bytes, reservation.ttlSeconds],
  );
  return rowCount === 1;
}

async function storageLeft(db: Db, accountId: string): Promise<number> {
  const { rows } = await db.query<QuotaRow>(
    `SELECT a.storage_used_bytes AS used, a.storage_reserved_bytes AS reserved, l.storage_quota_bytes AS quota
       FROM agentcache_accounts a JOIN account_limits l ON l.account_id = a.id WHERE a.id = $1`,
    [accountId],
  );
  const row = rows[0];
  return row ? Number(row.quota) - Number(row.used) - Number(row.reserved) : 0;
}

function reservationLapsed(): Error {
  // The upload stalled for longer than a reservation lives: it is treated as a dead one.
  return Object.assign(new Error('The upload stalled for longer than its storage reservation lives.'), { code: 'RequestTimeout' });
}

/**
 * Pushes a live reservation's expiry out by its lifetime, so an upload still streaming is never taken for
 * one whose process died. False when it is gone already.
 */
export async function renewReservation(q: Queryable, reservation: Reservation): Promise<boolean> {
  const { rowCount } = await q.query('UPDATE storage_reservations SET expires_at = now() + make_interval(secs => $2) WHERE id = $1', [
    reservation.id,
    reservation.ttlSeconds,
  ]);
  return rowCount === 1;
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
 * the quota check for its full size, so no check is needed here. A reservation that expired meanwhile
 * (its bytes may have gone to other uploads) covers nothing: the delta must then fit the quota as it is.
 */
export async function settleReservation(q: Queryable, reservation: Reservation, delta: number): Promise<void> {
  const settled = await q.query(
    `WITH gone AS (DELETE FROM storage_reservations WHERE id = $1 RETURNING bytes)
     UPDATE agentcache_accounts a
        SET storage_reserved_bytes = GREATEST(a.storage_reserved_bytes - gone.bytes, 0),
            storage_used_bytes = GREATEST(a.storage_used_bytes + $3, 0)
       FROM gone
      WHERE a.id = $2`,
    [reservation.id, reservation.accountId, delta],
  );
  if (settled.rowCount === 0) await applyStorageDelta(q, reservation.accountId, delta, { checkQuota: true });
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

/**
 * The stream stage that holds an upload's body to its reservation (see ReservedBytes): placed after the
 * decoders, it counts decoded bytes, grows the reservation of a body of unknown length a step at a time
 * up to `maxBytes`, and renews it while bytes flow.
 */
export function reservationMeter(db: Db, reservation: Reservation, limit: { maxBytes: number; tooLarge: () => Error }): ReservedBytes {
  return new ReservedBytes({
    maxBytes: limit.maxBytes,
    tooLarge: limit.tooLarge,
    reservedBytes: reservation.bytes,
    reserveUpTo: async (total) => {
      const needed = total - reservation.bytes;
      const step = Math.min(Math.max(reservation.bytes, UNKNOWN_LENGTH_MIN_STEP), UNKNOWN_LENGTH_MAX_STEP);
      const wanted = Math.min(Math.max(needed, step), limit.maxBytes - reservation.bytes);
      await extendReservation(db, reservation, { needed, wanted });
      return reservation.bytes;
    },
    renew: async () => {
      // A reservation that lapsed anyway is caught at commit: settleReservation then checks the quota.
      await renewReservation(db, reservation);
    },
    renewEveryMs: (reservation.ttlSeconds * 1000) / 3,
  });
}
