import type { Logger } from 'pino';
import type { Queryable } from '../db/index.js';
import { requestLogDropped } from './metrics.js';

/** One row of api_requests, as the request hook hands it over. */
export interface RequestLogEntry {
  accountId: string | null;
  method: string;
  endpoint: string;
  operation: string | null;
  statusCode: number;
  responseTimeMs: number;
  /** Body bytes received plus body bytes sent. */
  bytesTransferred: number;
  /** The error code the client was given (S3 code or the JSON API's `code`); null on success. */
  errorCode: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  at: Date;
}

/**
 * The api_requests writer. `record` never waits and never throws: the log is worth less than the request
 * it describes, so when the database falls behind, entries are dropped (and counted in
 * jt_request_log_dropped_total) rather than held in memory without bound or made to slow requests down.
 */
export interface RequestLog {
  record(entry: RequestLogEntry): void;
  /** Writes what waits now; resolves once written or dropped. */
  flush(): Promise<void>;
  /** Stops taking entries and writes what is left, within the close bound; what is still unwritten then is dropped. */
  close(): Promise<void>;
}

export interface RequestLogOptions {
  db: Queryable;
  logger: Logger;
  /** Entries waiting for the database at most; beyond this, new ones are dropped. */
  maxBuffered: number;
  /** Rows per INSERT; a batch this size is written without waiting for the timer. */
  batchSize?: number;
  flushIntervalMs?: number;
  closeTimeoutMs?: number;
}

const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_FLUSH_INTERVAL_MS = 1_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
const DROP_WARNING_INTERVAL_MS = 60_000;

// Column widths of api_requests, and caps that keep a full buffer's memory bounded whatever clients send.
const METHOD_MAX = 10;
const OPERATION_MAX = 64;
const ENDPOINT_MAX = 2_048;
const USER_AGENT_MAX = 512;

const INSERT_BATCH = `
INSERT INTO api_requests (account_id, method, endpoint, operation, status_code, response_time_ms, bytes_transferred,
                          error_message, ip_address, user_agent, created_at)
SELECT a.id, r.method, r.endpoint, r.operation, r.status_code, r.response_time_ms, r.bytes_transferred,
       r.error_message, r.ip_address, r.user_agent, r.created_at
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bigint[],
              $8::text[], $9::inet[], $10::text[], $11::timestamptz[])
       AS r(account_id, method, endpoint, operation, status_code, response_time_ms, bytes_transferred,
            error_message, ip_address, user_agent, created_at)
  -- An account removed since its request would fail the foreign key and, with it, the whole batch.
  LEFT JOIN agentcache_accounts a ON a.id = r.account_id`;

/** Accepts every entry and writes none: REQUEST_LOG_ENABLED=false. */
export const disabledRequestLog: RequestLog = {
  record() {},
  flush: async () => undefined,
  close: async () => undefined,
};

function cap(value: string | null, max: number): string | null {
  return value === null || value.length <= max ? value : value.slice(0, max);
}

function toColumns(batch: RequestLogEntry[]): unknown[] {
  return [
    batch.map((e) => e.accountId),
    batch.map((e) => cap(e.method, METHOD_MAX)),
    batch.map((e) => cap(e.endpoint, ENDPOINT_MAX)),
    batch.map((e) => cap(e.operation, OPERATION_MAX)),
    batch.map((e) => e.statusCode),
    batch.map((e) => Math.min(Math.round(e.responseTimeMs), 2 ** 31 - 1)),
    batch.map((e) => e.bytesTransferred),
    batch.map((e) => e.errorCode),
    batch.map((e) => e.ipAddress),
    batch.map((e) => cap(e.userAgent, USER_AGENT_MAX)),
    batch.map((e) => e.at.toISOString()),
  ];
}

export function createRequestLog(options: RequestLogOptions): RequestLog {
  const { db, logger, maxBuffered } = options;
  const batchSize = Math.max(1, Math.min(options.batchSize ?? DEFAULT_BATCH_SIZE, maxBuffered));
  const closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
  let buffer: RequestLogEntry[] = [];
  let writing: Promise<void> | null = null;
  let closed = false;
  let droppedSinceWarning = 0;
  let lastWarningAt = -Infinity;

  function dropped(count: number, reason: string, error?: unknown): void {
    requestLogDropped.inc(count);
    droppedSinceWarning += count;
    const now = Date.now();
    // One warning a minute at most: a database that is down must not turn every request into a log line.
    if (now - lastWarningAt < DROP_WARNING_INTERVAL_MS) return;
    lastWarningAt = now;
    logger.warn({ dropped: droppedSinceWarning, reason, ...(error === undefined ? {} : { err: error }) }, 'request log entries dropped');
    droppedSinceWarning = 0;
  }

  async function writeBatches(): Promise<void> {
    // One INSERT at a time: a slow database gets one statement from the log, not a pile of them.
    while (buffer.length > 0) {
      const batch = buffer.length <= batchSize ? buffer : buffer.slice(0, batchSize);
      buffer = batch === buffer ? [] : buffer.slice(batchSize);
      try {
        await db.query(INSERT_BATCH, toColumns(batch));
      } catch (error) {
        dropped(batch.length, 'insert failed', error);
      }
    }
  }

  function startWriting(): Promise<void> {
    writing ??= writeBatches().finally(() => {
      writing = null;
    });
    return writing;
  }

  const timer = setInterval(() => {
    if (buffer.length > 0) void startWriting();
  }, options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS);
  timer.unref();

  async function flush(): Promise<void> {
    // A batch written while entries arrived leaves them for the next round; wait for that one too.
    while (writing || buffer.length > 0) await startWriting();
  }

  return {
    flush,

    record(entry) {
      if (closed) return;
      if (buffer.length >= maxBuffered) {
        dropped(1, 'buffer full');
        return;
      }
      buffer.push(entry);
      if (buffer.length >= batchSize) void startWriting();
    },

    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      let bound: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        flush().then(() => false),
        new Promise<boolean>((resolve) => {
          bound = setTimeout(() => resolve(true), closeTimeoutMs);
        }),
      ]).finally(() => clearTimeout(bound));
      if (timedOut && buffer.length > 0) {
        const left = buffer.length;
        buffer = [];
        dropped(left, 'shutdown bound reached');
      }
    },
  };
}
