import { performance } from 'node:perf_hooks';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import type { KeyRecord } from '../auth/key-store.js';
import type { Queryable } from '../db/index.js';
import { formatBytes, QuotaError } from './errors.js';

/**
 * Bandwidth accounting: the body bytes that downloads hand to clients count against a monthly quota
 * (calendar month, UTC), kept per account and month in bandwidth_usage.
 *
 * Policy: fail closed, batched. A download is admitted before a byte is fetched, and only while
 *   used + pending + in flight + this response's length <= quota,
 * where `used` is the account's row as of this process's last flush, `pending` the bytes this process
 * counted since, and `in flight` what it admitted and has not sent yet. The length is known before
 * the body starts (the object's size, the range's or the part's length), and the check and the hold are
 * one synchronous step, so however many downloads race in one process the month's total never passes
 * the quota by a byte.
 *
 * Bytes are counted as they are handed to the client, so a client that leaves midway is charged what it
 * was sent, never the rest. They reach the database once per flush interval (at most a second): one
 * statement adds every account's pending bytes and returns the new totals, which are also how this
 * process learns what other processes sent. A crash loses at most the bytes of one interval. A failed
 * flush keeps the bytes for the next one (one counter per account and month, so memory is bounded by
 * the accounts served, not by the bytes) and logs a warning. A download that runs across the turn of a
 * month is charged to the month that admitted it.
 *
 * Across N processes the bound is looser: each sees the others' usage as of its last flush, at most
 * one interval old, and not what they hold for downloads in progress. Each still stops at the quota by
 * its own view, so the month can end over the quota by at most what the other processes admitted
 * that this one had not yet seen: never more than (N - 1) times the quota that was left.
 */

export const DEFAULT_BANDWIDTH_FLUSH_MS = 1_000;
const DEFAULT_IDLE_MS = 5 * 60_000;
// A failing database is reported on the first failed flush, then on every 60th (a minute at the default).
const WARN_EVERY_FAILURES = 60;

/** An admitted download: what it may send, counted as it is sent. */
export interface BandwidthGrant {
  /** Bytes admitted: the most this download can be charged. */
  readonly bytes: number;
  /**
   * The body, counting each chunk as it passes on to the client. The grant is released when the
   * returned stream ends, fails or is destroyed (the client left), so only what passed is charged.
   */
  meter(body: Readable): Readable;
  /** Charges bytes handed to the client, for a caller that counts them itself; capped at `bytes`. */
  count(sentBytes: number): void;
  /** Frees what was admitted and not sent. Called by meter's stream on close; later calls do nothing. */
  release(): void;
}

export interface BandwidthMeter {
  /**
   * Admits a response body of `length` bytes for the account, holding that much of its month, or throws
   * QuotaError QUOTA_BANDWIDTH_EXCEEDED (with used and quota). Call it before fetching the body, and
   * release the grant if the body is not sent after all.
   */
  admit(account: Pick<KeyRecord, 'accountId' | 'limits'>, length: number): Promise<BandwidthGrant>;
  /** The first day (YYYY-MM-DD, UTC) of the month bandwidth counts in now, by the meter's clock. */
  periodStart(): string;
  /** Bytes this process counted for the account in that month that the database does not hold yet. */
  unflushedBytes(accountId: string, periodStart?: string): number;
  /** Writes pending bytes now; failures are logged and the bytes kept for the next flush. */
  flush(): Promise<void>;
  /** Stops the timer and writes what is pending: call before the database closes. */
  close(): Promise<void>;
}

export interface BandwidthMeterOptions {
  db: Queryable;
  logger: Pick<Logger, 'warn' | 'error' | 'info'>;
  /** Decides the month; tests move it across a month's turn. */
  clock?: () => Date;
  /** How often pending bytes are written; 0 starts no timer (flush is then called by hand). */
  flushIntervalMs?: number;
  /** How long an account's figures stay in memory, and are refreshed, after its last download. */
  idleMs?: number;
}

/** The first day of the month (UTC) that `at` falls in, as the DATE bandwidth_usage keys by. */
export function monthStart(at: Date): string {
  return `${at.toISOString().slice(0, 7)}-01`;
}

function nextMonthStart(periodStart: string): string {
  const [year, month] = periodStart.split('-').map(Number) as [number, number];
  return monthStart(new Date(Date.UTC(year, month, 1)));
}

/** One account's month as this process sees it. */
interface Tally {
  accountId: string;
  periodStart: string;
  /** The database's total as of the last flush or read. */
  stored: number;
  /** Counted, not yet written. */
  pending: number;
  /** Being written by the flush in progress. */
  flushing: number;
  /** Admitted, not yet sent. */
  held: number;
  /** Settles once `stored` has been read the first time. */
  loading: Promise<void>;
  loaded: boolean;
  touchedAt: number;
}

interface TotalRow {
  account_id: string;
  period_start: string;
  bytes: number;
}

const tallyKey = (accountId: string, periodStart: string) => `${accountId}/${periodStart}`;

// One statement per flush: adds every pending count (accounts deleted meanwhile are skipped, not a
// failure for the others), returns the new totals, and reads the current totals of the other accounts
// this process serves. Rows are added in key order so two processes flushing at once cannot deadlock.
const FLUSH_SQL = `
  WITH added AS (
    INSERT INTO bandwidth_usage AS u (account_id, period_start, bytes)
    SELECT p.account_id, p.period_start, p.bytes
      FROM unnest($1::uuid[], $2::date[], $3::bigint[]) AS p(account_id, period_start, bytes)
      JOIN agentcache_accounts a ON a.id = p.account_id
     ORDER BY p.account_id, p.period_start
    ON CONFLICT (account_id, period_start) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes
    RETURNING u.account_id, u.period_start, u.bytes)
  SELECT account_id::text, period_start::text, bytes FROM added
  UNION ALL
  SELECT u.account_id::text, u.period_start::text, u.bytes
    FROM bandwidth_usage u
    JOIN unnest($4::uuid[], $5::date[]) AS w(account_id, period_start)
      ON u.account_id = w.account_id AND u.period_start = w.period_start`;

export function createBandwidthMeter(options: BandwidthMeterOptions): BandwidthMeter {
  const { db, logger } = options;
  const clock = options.clock ?? (() => new Date());
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  const tallies = new Map<string, Tally>();
  let flushing: Promise<void> | null = null;
  let failedFlushes = 0;

  function tallyFor(accountId: string, periodStart: string): Tally {
    const key = tallyKey(accountId, periodStart);
    let tally = tallies.get(key);
    if (!tally) {
      const created: Tally = { accountId, periodStart, stored: 0, pending: 0, flushing: 0, held: 0, loading: Promise.resolve(), loaded: false, touchedAt: performance.now() };
      created.loading = db
        .query<{ bytes: number }>('SELECT bytes FROM bandwidth_usage WHERE account_id = $1 AND period_start = $2::date', [accountId, periodStart])
        .then(
          ({ rows }) => {
            created.stored = rows[0]?.bytes ?? 0;
            created.loaded = true;
          },
          (error: unknown) => {
            // Forgotten, so the next download asks again instead of trusting a figure never read.
            if (tallies.get(key) === created) tallies.delete(key);
            throw error;
          },
        );
      tallies.set(key, created);
      tally = created;
    }
    return tally;
  }

  const countedBytes = (tally: Tally) => tally.stored + tally.flushing + tally.pending;

  function exceeded(tally: Tally, quota: number, length: number): QuotaError {
    const used = countedBytes(tally);
    return new QuotaError(
      'QUOTA_BANDWIDTH_EXCEEDED',
      `Bandwidth quota exceeded: ${formatBytes(used)} used of ${formatBytes(quota)} this month` +
        (tally.held > 0 ? ` (${formatBytes(tally.held)} held by downloads in progress)` : '') +
        `; this download needs ${formatBytes(length)}. The quota renews on ${nextMonthStart(tally.periodStart)} (UTC).`,
      { used, quota },
    );
  }

  function grant(tally: Tally, bytes: number): BandwidthGrant {
    let unsent = bytes;
    const count = (sentBytes: number) => {
      const charged = Math.min(Math.max(sentBytes, 0), unsent);
      unsent -= charged;
      tally.held -= charged;
      tally.pending += charged;
    };
    const release = () => {
      tally.held -= unsent;
      unsent = 0;
    };
    return {
      bytes,
      count,
      release,
      meter(body) {
        const counter = new Transform({
          transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
            count(chunk.length);
            done(null, chunk);
          },
        });
        counter.once('close', release);
        // pipeline carries a failure either way: a backend error fails the response, a client gone
        // stops the backend read. The error itself reaches whoever reads `counter`.
        pipeline(body, counter, () => undefined);
        return counter;
      },
    };
  }

  async function admit(account: Pick<KeyRecord, 'accountId' | 'limits'>, length: number): Promise<BandwidthGrant> {
    for (;;) {
      const periodStart = monthStart(clock());
      const tally = tallyFor(account.accountId, periodStart);
      tally.touchedAt = performance.now();
      await tally.loading;
      // Dropped while this waited (the month turned): start again on the current one.
      if (tallies.get(tallyKey(account.accountId, periodStart)) !== tally) continue;
      // From here to the hold nothing awaits: no other download of this process can slip in between.
      const quota = account.limits.bandwidthQuotaBytes;
      const committed = countedBytes(tally) + tally.held;
      // At the quota nothing more is served, not even an empty body.
      if (committed + length > quota || committed >= quota) throw exceeded(tally, quota, length);
      tally.held += length;
      return grant(tally, length);
    }
  }

  async function writePending(): Promise<void> {
    const batch: Tally[] = [];
    const watched: Tally[] = [];
    const now = performance.now();
    const currentPeriod = monthStart(clock());
    for (const [key, tally] of tallies) {
      if (tally.pending > 0) {
        tally.flushing = tally.pending;
        tally.pending = 0;
        batch.push(tally);
      } else if (tally.loaded && tally.held === 0 && (tally.periodStart !== currentPeriod || now - tally.touchedAt > idleMs)) {
        tallies.delete(key);
      } else {
        watched.push(tally);
      }
    }
    // One not yet read the first time has its own read in flight.
    const watchedLoaded = watched.filter((tally) => tally.loaded);
    if (batch.length === 0 && watchedLoaded.length === 0) return;
    let rows: TotalRow[];
    try {
      ({ rows } = await db.query<TotalRow>(FLUSH_SQL, [
        batch.map((t) => t.accountId),
        batch.map((t) => t.periodStart),
        batch.map((t) => t.flushing),
        watchedLoaded.map((t) => t.accountId),
        watchedLoaded.map((t) => t.periodStart),
      ]));
    } catch (error) {
      for (const tally of batch) {
        tally.pending += tally.flushing;
        tally.flushing = 0;
      }
      failedFlushes += 1;
      if (failedFlushes % WARN_EVERY_FAILURES === 1) {
        const pendingBytes = batch.reduce((sum, tally) => sum + tally.pending, 0);
        logger.warn({ err: error, pendingBytes, accounts: batch.length, failedFlushes }, 'bandwidth flush failed; bytes kept for the next flush');
      }
      return;
    }
    if (failedFlushes > 0) logger.info({ failedFlushes }, 'bandwidth flush recovered');
    failedFlushes = 0;
    for (const row of rows) {
      const tally = tallies.get(tallyKey(row.account_id, row.period_start));
      if (tally) tally.stored = row.bytes;
    }
    // Written, or dropped with an account deleted since: no row is left to charge.
    for (const tally of batch) tally.flushing = 0;
  }

  function flush(): Promise<void> {
    // One flush at a time: a second caller waits for the one in progress, then writes what came since.
    const previous = flushing ?? Promise.resolve();
    const next = previous.then(writePending).finally(() => {
      if (flushing === next) flushing = null;
    });
    flushing = next;
    return next;
  }

  const intervalMs = options.flushIntervalMs ?? DEFAULT_BANDWIDTH_FLUSH_MS;
  const timer = intervalMs > 0 ? setInterval(() => void flush(), intervalMs) : null;
  // The timer alone never keeps a process alive; close() writes the last bytes.
  timer?.unref();

  return {
    admit,
    periodStart: () => monthStart(clock()),
    unflushedBytes(accountId, periodStart = monthStart(clock())) {
      const tally = tallies.get(tallyKey(accountId, periodStart));
      return tally ? tally.pending + tally.flushing : 0;
    },
    flush,
    async close() {
      if (timer) clearInterval(timer);
      await flush();
      const lost = [...tallies.values()].reduce((sum, tally) => sum + tally.pending, 0);
      if (lost > 0) logger.error({ lostBytes: lost }, 'bandwidth bytes could not be written before shutdown');
    },
  };
}
