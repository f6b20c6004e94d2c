import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimitStoreKind, ReadyConfig } from '../config.js';
import type { Db, Queryable } from '../db/index.js';
import { QuotaError } from './errors.js';

/**
 * Requests per minute per account (the tier's rate_limit_per_minute, or the account's override) and
 * requests per window per client address for unauthenticated and admin requests.
 *
 * Every counter is a fixed window kept by rate-limiter-flexible in one of three stores: memory (one
 * process), Redis or PostgreSQL (several processes share the counts).
 */

export type RateLimitStore = { kind: 'memory' } | { kind: 'redis'; client: Redis } | { kind: 'postgres'; db: Queryable };

export interface RateLimits {
  readonly store: RateLimitStoreKind;
  /** Counts one request of an account; throws QuotaError RATE_LIMITED once the minute's count passes `limitPerMinute`. */
  consumeAccount(accountId: string, limitPerMinute: number): Promise<void>;
  /**
   * Counts one request from an address on a listener where no tenant credential vouches for it; throws
   * QuotaError RATE_LIMITED past the limit. Each listener counts apart, so tenants failing to sign from
   * a shared address never lock the admin caller out.
   */
  consumeAddress(listener: 'gateway' | 'admin', address: string): Promise<void>;
  /** Stops the store's housekeeping, and closes the Redis client openRateLimits opened; the database is the caller's. */
  close(): Promise<void>;
}

export interface RateLimitOptions {
  store: RateLimitStore;
  /** Prefix of every counter's key, so deployments (or test runs) sharing one Redis never share counters. */
  keyPrefix: string;
  address: { windowMs: number; maxRequests: number };
  logger: Logger;
}

export const ACCOUNT_WINDOW_SECONDS = 60;

/** The table migrations/005_rate_limits.sql creates; the library is told it exists. */
export const RATE_LIMIT_TABLE = 'rate_limits';

/**
 * The limiters count without judging: their point budget is far above any limit (and within PostgreSQL's
 * integer column), and each request compares the count with the limit it reads at that moment. So one
 * counter per account serves every tier and override, and a changed limit applies to the very next
 * request, mid-window, with no counter to move. A limiter per limit value would restart the count on
 * every change instead.
 */
const COUNT_ONLY_BUDGET = 2_147_483_647;

// A store that fails is reported at most this often; every request falls back while it lasts.
const STORE_WARNING_INTERVAL_MS = 60_000;
// Expired PostgreSQL counters are deleted this often (the library's own cadence, which it is told to leave to us).
const POSTGRES_CLEANUP_INTERVAL_MS = 5 * 60_000;

interface Limiter {
  consume(key: string): Promise<RateLimiterRes>;
}

/** Seconds a refused client should wait: the rest of the window, rounded up, never 0. */
export function retryAfterSeconds(msBeforeNext: number): number {
  return Math.max(1, Math.ceil(msBeforeNext / 1000));
}

/** The library rejects with a RateLimiterRes once its budget is passed; either way the count is the answer. */
async function count(limiter: Limiter, key: string): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(key);
  } catch (error) {
    if (error instanceof RateLimiterRes) return error;
    throw error;
  }
}

/**
 * rate-limiter-flexible speaks to a pg Pool through `query({ name, text, values })`; this hands its
 * statements to our own pool (or PostgreSQL connection wrapper) instead of a second pool of its own.
 */
function poolShim(db: Queryable) {
  return {
    query: (statement: { text: string; values?: unknown[] }) => db.query(statement.text, statement.values),
  };
}

function storeLimiter(store: RateLimitStore, keyPrefix: string, durationSeconds: number): RateLimiterRedis | RateLimiterPostgres | RateLimiterMemory {
  const common = { keyPrefix, points: COUNT_ONLY_BUDGET, duration: durationSeconds };
  switch (store.kind) {
    case 'redis':
      // Not ready means the fallback at once, rather than requests queued behind a reconnect.
      return new RateLimiterRedis({ ...common, storeClient: store.client, rejectIfRedisNotReady: true });
    case 'postgres':
      return new RateLimiterPostgres({
        ...common,
        storeClient: poolShim(store.db),
        storeType: 'pool',
        tableName: RATE_LIMIT_TABLE,
        tableCreated: true,
        // Cleared by our own timer below, which close() can stop.
        clearExpiredByTimeout: false,
      });
    case 'memory':
      return new RateLimiterMemory(common);
  }
}

export function createRateLimits(options: RateLimitOptions): RateLimits {
  const { store, keyPrefix, logger } = options;
  const addressWindowSeconds = Math.ceil(options.address.windowMs / 1000);
  const addressLimit = options.address.maxRequests;

  const accounts = storeLimiter(store, `${keyPrefix}:account`, ACCOUNT_WINDOW_SECONDS);
  const addresses = storeLimiter(store, `${keyPrefix}:address`, addressWindowSeconds);
  // While the shared store is unreachable each process counts alone: limits hold per process instead of
  // across them, and the gateway keeps serving rather than failing every request with the store.
  const fallbackAccounts = new RateLimiterMemory({ keyPrefix: `${keyPrefix}:account`, points: COUNT_ONLY_BUDGET, duration: ACCOUNT_WINDOW_SECONDS });
  const fallbackAddresses = new RateLimiterMemory({ keyPrefix: `${keyPrefix}:address`, points: COUNT_ONLY_BUDGET, duration: addressWindowSeconds });

  let lastWarningAt = -Infinity;
  function warnStoreFailed(error: unknown): void {
    const now = Date.now();
    if (now - lastWarningAt < STORE_WARNING_INTERVAL_MS) return;
    lastWarningAt = now;
    logger.warn({ err: error, store: store.kind }, 'rate limit store failed; counting in this process alone until it answers');
  }

  async function countWithFallback(limiter: Limiter, fallback: Limiter, key: string): Promise<RateLimiterRes> {
    if (limiter === fallback) return count(limiter, key);
    try {
      return await count(limiter, key);
    } catch (error) {
      warnStoreFailed(error);
      return count(fallback, key);
    }
  }

  let cleanup: NodeJS.Timeout | undefined;
  if (store.kind === 'postgres') {
    const { db } = store;
    cleanup = setInterval(() => {
      // An hour's margin keeps the delete off rows a request is updating; a failure is retried next time.
      db.query(`DELETE FROM ${RATE_LIMIT_TABLE} WHERE expire < $1`, [Date.now() - 3_600_000]).catch((error: unknown) => warnStoreFailed(error));
    }, POSTGRES_CLEANUP_INTERVAL_MS);
    cleanup.unref();
  }

  const memoryOnly = store.kind === 'memory';
  return {
    store: store.kind,
    async consumeAccount(accountId, limitPerMinute) {
      const result = await countWithFallback(accounts, memoryOnly ? accounts : fallbackAccounts, accountId);
      if (result.consumedPoints <= limitPerMinute) return;
      throw new QuotaError('RATE_LIMITED', `Rate limit exceeded: ${limitPerMinute} requests per minute`, {
        limit: limitPerMinute,
        retryAfterSeconds: retryAfterSeconds(result.msBeforeNext),
      });
    },
    async consumeAddress(listener, address) {
      const result = await countWithFallback(addresses, memoryOnly ? addresses : fallbackAddresses, `${listener}:${address}`);
      if (result.consumedPoints <= addressLimit) return;
      throw new QuotaError('RATE_LIMITED', `Rate limit exceeded: ${addressLimit} requests per ${addressWindowSeconds} s from one address`, {
        limit: addressLimit,
        retryAfterSeconds: retryAfterSeconds(result.msBeforeNext),
      });
    },
    async close() {
      clearInterval(cleanup);
    },
  };
}

/**
 * The rate limits a server runs with, on the store its configuration names; close() also closes the
 * Redis client opened here. The database is the caller's.
 */
export async function openRateLimits(config: Pick<ReadyConfig, 'rateLimit' | 'rateLimitStore' | 'redisUrl'>, db: Db, logger: Logger): Promise<RateLimits> {
  const { kind, keyPrefix } = config.rateLimitStore;
  const address = config.rateLimit;
  if (kind === 'redis' && config.redisUrl) {
    const client = await openRateLimitRedis(config.redisUrl, logger);
    const limits = createRateLimits({ store: { kind, client }, keyPrefix, address, logger });
    return {
      ...limits,
      async close() {
        await limits.close();
        await closeRateLimitRedis(client);
      },
    };
  }
  // PGlite serves one process, whose memory is the cheaper counter.
  const store: RateLimitStore = kind === 'postgres' && db.kind === 'postgres' ? { kind, db } : { kind: 'memory' };
  return createRateLimits({ store, keyPrefix, address, logger });
}

/**
 * A Redis client for the counters that never holds a request up: commands fail at once while it is not
 * connected (the limits then count in memory) and it keeps reconnecting in the background. Resolves once
 * connected, or after the first failure with a warning, so an unreachable Redis never stops start-up.
 */
export async function openRateLimitRedis(url: string, logger: Logger): Promise<Redis> {
  // Loaded only here: the client library costs every process about 10 MB of RSS, and only the redis store uses it.
  const { Redis } = await import('ioredis');
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    commandTimeout: 1_000,
  });
  let lastWarningAt = -Infinity;
  client.on('error', (error: Error) => {
    const now = Date.now();
    if (now - lastWarningAt < STORE_WARNING_INTERVAL_MS) return;
    lastWarningAt = now;
    logger.warn({ err: error }, 'redis connection failed; rate limits count in this process alone until it reconnects');
  });
  await client.connect().catch(() => undefined);
  return client;
}

/** Closes the client politely when connected, else drops it (quit would wait for a connection). */
export async function closeRateLimitRedis(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else {
    client.disconnect();
  }
}
