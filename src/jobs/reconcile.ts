import type { Db } from '../db/index.js';
import { expireReservations } from '../quota/storage.js';
import { lockAccount } from '../store/objects.js';
import type { JobContext, JobSummary } from './runner.js';

export interface UsageFigures {
  storageUsedBytes: number;
  storageReservedBytes: number;
}

export interface UsageDrift {
  accountId: string;
  agentcacheUserId: string;
  before: UsageFigures;
  after: UsageFigures;
}

const BATCH = 200;

/**
 * Recomputes one account's usage from its rows, the way writes charge it, and fixes the account row:
 * - used: every object row's size, expired ones too (they are charged until expire deletes them), plus
 *   every stored part of its unfinished multipart uploads (parts count from upload until completion or
 *   abort, which deletes them);
 * - reserved: the bytes of its storage reservations.
 * The account row is locked first, as every write of usage locks it, so the sums are read after any
 * write holding it has committed, and a write that has not reached it yet applies its delta on top.
 */
async function reconcileAccount(db: Db, accountId: string): Promise<UsageDrift | null> {
  return db.tx(async (q) => {
    await lockAccount(q, accountId);
    const { rows } = await q.query<{
      agentcache_user_id: string;
      used_before: number;
      reserved_before: number;
      used_after: number;
      reserved_after: number;
    }>(
      `SELECT a.agentcache_user_id, a.storage_used_bytes AS used_before, a.storage_reserved_bytes AS reserved_before,
              (SELECT COALESCE(SUM(o.size_bytes), 0) FROM agentcache_assets o WHERE o.account_id = a.id)
            + (SELECT COALESCE(SUM(p.size_bytes), 0) FROM multipart_parts p JOIN multipart_uploads u ON u.id = p.upload_id WHERE u.account_id = a.id)
              AS used_after,
              (SELECT COALESCE(SUM(r.bytes), 0) FROM storage_reservations r WHERE r.account_id = a.id) AS reserved_after
         FROM agentcache_accounts a WHERE a.id = $1`,
      [accountId],
    );
    const row = rows[0];
    if (!row) return null;
    const before = { storageUsedBytes: Number(row.used_before), storageReservedBytes: Number(row.reserved_before) };
    const after = { storageUsedBytes: Number(row.used_after), storageReservedBytes: Number(row.reserved_after) };
    if (before.storageUsedBytes === after.storageUsedBytes && before.storageReservedBytes === after.storageReservedBytes) return null;
    await q.query('UPDATE agentcache_accounts SET storage_used_bytes = $2, storage_reserved_bytes = $3 WHERE id = $1', [
      accountId,
      after.storageUsedBytes,
      after.storageReservedBytes,
    ]);
    return { accountId, agentcacheUserId: row.agentcache_user_id, before, after };
  });
}

export interface ReconcileOptions {
  signal?: AbortSignal;
  /** Called once per account checked. */
  onAccount?: () => void;
}

/**
 * Recomputes every account's storage usage from its rows and fixes what drifted. Reservations whose
 * process died are released first, so what remains is what uploads in flight hold. Returns the drift
 * fixed, one entry per account that had any.
 */
export async function reconcileUsage(db: Db, options: ReconcileOptions = {}): Promise<UsageDrift[]> {
  await expireReservations(db);
  const drift: UsageDrift[] = [];
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    options.signal?.throwIfAborted();
    const { rows } = await db.query<{ id: string }>('SELECT id FROM agentcache_accounts WHERE id > $1 ORDER BY id LIMIT $2', [after, BATCH]);
    if (rows.length === 0) return drift;
    for (const { id } of rows) {
      options.signal?.throwIfAborted();
      const fixed = await reconcileAccount(db, id);
      if (fixed) drift.push(fixed);
      options.onAccount?.();
    }
    after = rows[rows.length - 1]!.id;
  }
}

export async function reconcileJob(ctx: JobContext): Promise<JobSummary> {
  const { rows } = await ctx.db.query<{ n: number }>('SELECT count(*)::bigint AS n FROM agentcache_accounts');
  ctx.progress.phase('accounts', Number(rows[0]!.n));
  const drift = await reconcileUsage(ctx.db, { signal: ctx.signal, onAccount: () => ctx.progress.advance() });
  for (const entry of drift) ctx.logger.warn(entry, 'storage usage drifted from the account rows; fixed');
  return {
    accounts: Number(rows[0]!.n),
    drifted: drift.length,
    usedBytesFixed: drift.reduce((sum, d) => sum + Math.abs(d.after.storageUsedBytes - d.before.storageUsedBytes), 0),
    reservedBytesFixed: drift.reduce((sum, d) => sum + Math.abs(d.after.storageReservedBytes - d.before.storageReservedBytes), 0),
  };
}
