import type { Queryable } from '../db/index.js';
import type { JobContext, JobSummary } from './runner.js';

/**
 * Hourly usage rows for billing (storage_usage, one per account and UTC hour):
 * - storage: each pass reads every account's storage_used_bytes (what quotas charge: logical bytes of
 *   objects and unfinished parts) and charges the reading it took last time for the time since, split at
 *   hour boundaries, as byte-hours; storage_bytes is the reading in force at the end of the hour. The job
 *   runs every few minutes, so a change is charged from within one interval of when it happened.
 * - bandwidth: the growth of the month's bandwidth_usage counter (the bytes downloads were charged) since
 *   the last pass, spread over the hours in between by their length, so a month's rows add up to what
 *   the bandwidth quota counted.
 * - requests: api_requests rows in the hour, counted afresh on each pass (and once more for the hour
 *   before, which may still have been flushing).
 * - costs: from PRICE_STORAGE_PER_GB_MONTH (GB = 2^30 bytes, month = 730 hours) and PRICE_BANDWIDTH_PER_GB.
 *
 * Each account's pass commits its rows and its new reading (usage_meters) together, so a run cut short
 * anywhere charges every interval exactly once, and a second run at the same moment adds nothing.
 * Hours without storage, bandwidth or requests get no row.
 */

const HOUR_MS = 3_600_000;
const ACCOUNTS_PER_PAGE = 200;

interface MeterRow {
  sampled_at: Date;
  storage_bytes: number;
  bandwidth_period: string;
  bandwidth_bytes: number;
}

interface HourSlice {
  startMs: number;
  /** Milliseconds of the interval inside this hour. */
  ms: number;
}

/** The UTC hours [fromMs, toMs) covers, with how much of each. */
export function hourSlices(fromMs: number, toMs: number): HourSlice[] {
  const slices: HourSlice[] = [];
  for (let start = Math.floor(fromMs / HOUR_MS) * HOUR_MS; start < toMs; start += HOUR_MS) {
    const ms = Math.min(start + HOUR_MS, toMs) - Math.max(start, fromMs);
    if (ms > 0) slices.push({ startMs: start, ms });
  }
  return slices;
}

/** Splits `total` whole bytes over `weights` in proportion; the rounding remainder goes to the last weighted one. */
export function spread(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (sum === 0 || total === 0) return weights.map(() => 0);
  const parts = weights.map((w) => Math.floor((total * w) / sum));
  let last = weights.length - 1;
  while (weights[last] === 0) last--;
  parts[last]! += total - parts.reduce((a, b) => a + b, 0);
  return parts;
}

/** The first day of t's month in UTC, as bandwidth_usage keys it. */
export function monthOf(t: Date | number): string {
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-01`;
}

function monthStartMs(month: string): number {
  return Date.parse(`${month}T00:00:00Z`);
}

async function bandwidthCounter(q: Queryable, accountId: string, month: string): Promise<number> {
  const { rows } = await q.query<{ bytes: number }>('SELECT bytes FROM bandwidth_usage WHERE account_id = $1 AND period_start = $2::date', [accountId, month]);
  return Number(rows[0]?.bytes ?? 0);
}

interface HourCharge {
  startMs: number;
  /** Byte-milliseconds: bytes held times how long, exact in integers; byte-hours are computed in SQL. */
  byteMs: bigint;
  bandwidthBytes: number;
  storageBytesAtEnd: number;
}

/** Charges one account from its last reading to `now`; returns the hours written. */
async function rollUpAccount(ctx: JobContext, accountId: string, now: Date): Promise<{ rows: number; byteMs: bigint; bandwidthBytes: number }> {
  return ctx.db.tx(async (q) => {
    const { rows: accounts } = await q.query<{ storage_used_bytes: number; purged: boolean }>(
      `SELECT storage_used_bytes, (status = 'deleted' AND purge_state = 'done') AS purged FROM agentcache_accounts WHERE id = $1`,
      [accountId],
    );
    const account = accounts[0];
    if (!account) return { rows: 0, byteMs: 0n, bandwidthBytes: 0 };
    const { rows: meters } = await q.query<MeterRow>(
      `SELECT sampled_at, storage_bytes, to_char(bandwidth_period, 'YYYY-MM-DD') AS bandwidth_period, bandwidth_bytes
         FROM usage_meters WHERE account_id = $1 FOR UPDATE`,
      [accountId],
    );
    const meter = meters[0];
    const month = monthOf(now);
    const storageNow = Number(account.storage_used_bytes);
    const bandwidthNow = await bandwidthCounter(q, accountId, month);
    const fromMs = meter ? new Date(meter.sampled_at).getTime() : now.getTime();
    const toMs = now.getTime();
    if (meter && toMs <= fromMs) return { rows: 0, byteMs: 0n, bandwidthBytes: 0 };

    const slices = hourSlices(fromMs, toMs);
    const charges: HourCharge[] = slices.map((slice, i) => ({
      startMs: slice.startMs,
      byteMs: BigInt(meter?.storage_bytes ?? 0) * BigInt(slice.ms),
      bandwidthBytes: 0,
      storageBytesAtEnd: i === slices.length - 1 ? storageNow : Number(meter?.storage_bytes ?? 0),
    }));
    if (meter) {
      // The counter's growth since the last reading; a counter that went down (a purge) grew by nothing.
      if (meter.bandwidth_period === month) {
        const grown = spread(Math.max(bandwidthNow - Number(meter.bandwidth_bytes), 0), slices.map((s) => s.ms));
        grown.forEach((bytes, i) => (charges[i]!.bandwidthBytes += bytes));
      } else {
        // A month turned: what the old month's counter still grew goes to its hours, the new month's to the rest.
        const boundary = monthStartMs(month);
        const oldGrowth = Math.max((await bandwidthCounter(q, accountId, meter.bandwidth_period)) - Number(meter.bandwidth_bytes), 0);
        const before = slices.map((s) => (s.startMs < boundary ? s.ms : 0));
        const after = slices.map((s) => (s.startMs >= boundary ? s.ms : 0));
        spread(oldGrowth, before).forEach((bytes, i) => (charges[i]!.bandwidthBytes += bytes));
        spread(bandwidthNow, after).forEach((bytes, i) => (charges[i]!.bandwidthBytes += bytes));
      }
    }

    // Requests per hour, from the hour before the first one charged (late log flushes) to now.
    const countFromMs = (slices[0]?.startMs ?? Math.floor(toMs / HOUR_MS) * HOUR_MS) - HOUR_MS;
    const { rows: counted } = await q.query<{ hour: number; n: number }>(
      `SELECT floor(extract(epoch FROM created_at) / 3600)::bigint AS hour, count(*)::bigint AS n FROM api_requests
        WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1`,
      [accountId, new Date(countFromMs), new Date(Math.ceil(toMs / HOUR_MS) * HOUR_MS)],
    );
    const requests = new Map(counted.map((row) => [Number(row.hour) * HOUR_MS, Number(row.n)]));

    let written = 0;
    const prices = ctx.config.prices;
    for (const charge of charges) {
      const requestCount = requests.get(charge.startMs) ?? 0;
      if (charge.byteMs === 0n && charge.bandwidthBytes === 0 && requestCount === 0) continue;
      await q.query(
        `INSERT INTO storage_usage (account_id, period_start, period_end, storage_bytes, storage_byte_hours, bandwidth_bytes, request_count)
         VALUES ($1, $2, $3, $4, $5::numeric / 3600000, $6, $7)
         ON CONFLICT (account_id, period_start) DO UPDATE
           SET storage_bytes = EXCLUDED.storage_bytes,
               storage_byte_hours = storage_usage.storage_byte_hours + EXCLUDED.storage_byte_hours,
               bandwidth_bytes = storage_usage.bandwidth_bytes + EXCLUDED.bandwidth_bytes,
               request_count = EXCLUDED.request_count,
               recorded_at = now()`,
        [accountId, new Date(charge.startMs), new Date(charge.startMs + HOUR_MS), charge.storageBytesAtEnd, charge.byteMs.toString(), charge.bandwidthBytes, requestCount],
      );
      written++;
    }
    // The hour before keeps its charges; only its request count may have grown since.
    const previousHour = requests.get(countFromMs);
    if (previousHour !== undefined) {
      await q.query('UPDATE storage_usage SET request_count = $3 WHERE account_id = $1 AND period_start = $2', [accountId, new Date(countFromMs), previousHour]);
    }
    await q.query(
      `UPDATE storage_usage
          SET storage_cost = round(storage_byte_hours / (1073741824::numeric * 730) * $3, 4),
              bandwidth_cost = round(bandwidth_bytes / 1073741824::numeric * $4, 4),
              total_cost = round(storage_byte_hours / (1073741824::numeric * 730) * $3, 4) + round(bandwidth_bytes / 1073741824::numeric * $4, 4)
        WHERE account_id = $1 AND period_start >= $2`,
      [accountId, new Date(countFromMs), prices.storagePerGbMonth, prices.bandwidthPerGb],
    );

    if (account.purged && storageNow === 0) {
      // Nothing is stored or sent any more: the reading is no longer needed.
      await q.query('DELETE FROM usage_meters WHERE account_id = $1', [accountId]);
    } else {
      await q.query(
        `INSERT INTO usage_meters (account_id, sampled_at, storage_bytes, bandwidth_period, bandwidth_bytes) VALUES ($1, $2, $3, $4::date, $5)
         ON CONFLICT (account_id) DO UPDATE SET sampled_at = EXCLUDED.sampled_at, storage_bytes = EXCLUDED.storage_bytes,
           bandwidth_period = EXCLUDED.bandwidth_period, bandwidth_bytes = EXCLUDED.bandwidth_bytes`,
        // A new reading starts the month's counter at zero, so bandwidth already counted this month lands in the next pass.
        [accountId, now, storageNow, month, meter ? bandwidthNow : 0],
      );
    }
    return { rows: written, byteMs: charges.reduce((sum, c) => sum + c.byteMs, 0n), bandwidthBytes: charges.reduce((sum, c) => sum + c.bandwidthBytes, 0) };
  });
}

export async function rollUpUsage(ctx: JobContext): Promise<JobSummary> {
  const now = ctx.now();
  // Accounts whose purge is done need one last pass only while a reading of theirs remains.
  const live = `(NOT (a.status = 'deleted' AND a.purge_state = 'done') OR EXISTS (SELECT 1 FROM usage_meters m WHERE m.account_id = a.id))`;
  const { rows: total } = await ctx.db.query<{ n: number }>(`SELECT count(*)::bigint AS n FROM agentcache_accounts a WHERE ${live}`);
  ctx.progress.phase('accounts', Number(total[0]!.n));
  let accounts = 0;
  let rows = 0;
  let byteMs = 0n;
  let bandwidthBytes = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    ctx.signal.throwIfAborted();
    const { rows: page } = await ctx.db.query<{ id: string }>(`SELECT a.id FROM agentcache_accounts a WHERE a.id > $1 AND ${live} ORDER BY a.id LIMIT $2`, [
      after,
      ACCOUNTS_PER_PAGE,
    ]);
    if (page.length === 0) break;
    for (const { id } of page) {
      ctx.signal.throwIfAborted();
      const charged = await rollUpAccount(ctx, id, now);
      accounts++;
      rows += charged.rows;
      byteMs += charged.byteMs;
      bandwidthBytes += charged.bandwidthBytes;
      ctx.progress.advance();
    }
    after = page[page.length - 1]!.id;
  }
  return { accounts, hourRows: rows, storageByteHours: Number(byteMs / BigInt(HOUR_MS)), bandwidthBytes };
}
