import type { Logger } from 'pino';
import { signWebhook, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER } from '../auth/webhook-signature.js';
import type { ReadyConfig } from '../config.js';
import type { Queryable } from '../db/index.js';
import { runEvery, type PeriodicTask } from './periodic.js';

/**
 * Delivers the outbox's events to AgentCache: each row is POSTed as JSON, signed like AgentCache's own
 * webhooks (HMAC-SHA256 under AGENTCACHE_WEBHOOK_SECRET over "<timestamp>.<raw body>"), until a 2xx
 * answers it; every other outcome retries later, with exponential backoff and jitter, without end.
 *
 * Any number of processes may run this. A row is claimed with a lease (its next_attempt_at moved past
 * the attempt's time bound) under FOR UPDATE SKIP LOCKED, so two processes never send one row at the
 * same time, and a process that dies mid-send leaves a row that becomes due again when the lease ends.
 * A crash between the receiver's 2xx and our marking the row delivered sends it once more: delivery is
 * at least once, and the event's `id` lets the receiver drop the repeat.
 */

export interface OutboxDeps {
  db: Queryable;
  logger: Logger;
  config: Pick<ReadyConfig, 'adminSecret' | 'outbox'>;
}

export interface DeliverOptions {
  /** Rows claimed per pass. */
  batchSize?: number;
  fetch?: typeof fetch;
  /** Unix milliseconds, for the signature's timestamp. */
  now?: () => number;
  /** [0, 1), for the backoff's jitter. */
  random?: () => number;
}

export interface DeliverResult {
  claimed: number;
  delivered: number;
  failed: number;
}

interface ClaimedRow {
  id: string;
  event_type: string;
  payload: unknown;
  target_url: string | null;
  attempts: number;
}

const DEFAULT_BATCH_SIZE = 20;
// Beyond the attempt's own bound, so a lease never ends while its attempt may still be running.
const LEASE_MARGIN_MS = 30_000;
const MAX_ERROR_LENGTH = 300;

// $1: lease in ms; $2: whether rows without a target of their own can go to the default target; $3: batch.
const CLAIM_SQL = `
UPDATE outbox
   SET next_attempt_at = now() + $1::bigint * interval '1 millisecond', attempts = attempts + 1
 WHERE id IN (SELECT id FROM outbox
               WHERE delivered_at IS NULL AND next_attempt_at <= now() AND (target_url IS NOT NULL OR $2::boolean)
               ORDER BY next_attempt_at, created_at
               LIMIT $3
                 FOR UPDATE SKIP LOCKED)
RETURNING id, event_type, payload, target_url, attempts`;

const DELIVERED_SQL = `UPDATE outbox SET delivered_at = now(), last_error = NULL WHERE id = $1 AND delivered_at IS NULL`;

const RETRY_SQL = `
UPDATE outbox SET next_attempt_at = now() + $2::bigint * interval '1 millisecond', last_error = $3
 WHERE id = $1 AND delivered_at IS NULL`;

const UNROUTABLE_SQL = `SELECT count(*) AS waiting FROM outbox WHERE delivered_at IS NULL AND target_url IS NULL`;

/**
 * The wait before the next attempt once `attempts` have failed: retryMinMs, doubling with each failure,
 * capped at retryMaxMs, and drawn from the upper half of that so many senders do not retry in step.
 */
export function backoffMs(attempts: number, bounds: { retryMinMs: number; retryMaxMs: number }, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 40);
  const ceiling = Math.min(bounds.retryMaxMs, bounds.retryMinMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** The request one delivery sends: the body is the payload's JSON, signed as it goes out. */
export function signedRequest(payload: unknown, secret: string, nowMs: number): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(payload);
  const timestamp = Math.floor(nowMs / 1000);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'JettyThunder',
      [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
      [WEBHOOK_SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
    },
  };
}

/**
 * Why an attempt failed, for last_error and the log: a status or a network error's code and message.
 * Never the request (it carries the signature) nor the target's query or credentials.
 */
export function describeFailure(error: unknown, timeoutMs: number): string {
  let text: string;
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    text = `no answer within ${timeoutMs} ms`;
  } else if (error instanceof Error) {
    const cause = (error as Error & { cause?: unknown }).cause;
    text = cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
  } else {
    text = String(error);
  }
  return text.length > MAX_ERROR_LENGTH ? `${text.slice(0, MAX_ERROR_LENGTH)}…` : text;
}

/** Where a log line may say an event went: scheme, host and path only. */
function loggableTarget(target: string): string {
  try {
    const parsed = new URL(target);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '[unparsable url]';
  }
}

/** One attempt; resolves to null when the receiver acknowledged with a 2xx, else to the reason. */
async function attempt(deps: OutboxDeps, row: ClaimedRow, target: string, options: DeliverOptions): Promise<string | null> {
  const { timeoutMs } = deps.config.outbox;
  const request = signedRequest(row.payload, deps.config.adminSecret, (options.now ?? Date.now)());
  try {
    const response = await (options.fetch ?? fetch)(target, {
      method: 'POST',
      headers: request.headers,
      body: request.body,
      // A redirect is not an acknowledgement, and following one would send the signed body elsewhere.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel().catch(() => undefined);
    return response.status >= 200 && response.status < 300 ? null : `HTTP ${response.status}`;
  } catch (error) {
    return describeFailure(error, timeoutMs);
  }
}

/** One pass: claims up to a batch of due rows and attempts each once, all at the same time. */
export async function deliverDueEvents(deps: OutboxDeps, options: DeliverOptions = {}): Promise<DeliverResult> {
  const { defaultTargetUrl, timeoutMs, retryMinMs, retryMaxMs } = deps.config.outbox;
  const { rows } = await deps.db.query<ClaimedRow>(CLAIM_SQL, [timeoutMs + LEASE_MARGIN_MS, defaultTargetUrl !== null, options.batchSize ?? DEFAULT_BATCH_SIZE]);
  const result: DeliverResult = { claimed: rows.length, delivered: 0, failed: 0 };
  await Promise.all(
    rows.map(async (row) => {
      // A claimed row without a target of its own was claimed only because a default exists.
      const target = row.target_url ?? defaultTargetUrl!;
      const log = { eventId: row.id, eventType: row.event_type, attempts: row.attempts, target: loggableTarget(target) };
      const failure = await attempt(deps, row, target, options);
      if (failure === null) {
        await deps.db.query(DELIVERED_SQL, [row.id]);
        result.delivered++;
        deps.logger.info(log, 'delivered an event to AgentCache');
        return;
      }
      const delayMs = backoffMs(row.attempts, { retryMinMs, retryMaxMs }, options.random);
      await deps.db.query(RETRY_SQL, [row.id, delayMs, failure]);
      result.failed++;
      deps.logger.warn({ ...log, error: failure, retryInMs: delayMs }, 'could not deliver an event to AgentCache; retrying later');
    }),
  );
  return result;
}

/**
 * Delivers every OUTBOX_POLL_MS, and at once after a pass that filled its batch or a wake(). Stopping
 * lets the attempts in flight end (each within OUTBOX_TIMEOUT_MS) and record their outcome.
 */
export function startOutboxDelivery(deps: OutboxDeps, options: DeliverOptions = {}): PeriodicTask {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  let reportedUnroutable = false;
  return runEvery(
    'outbox',
    deps.config.outbox.pollMs,
    async (signal) => {
      if (deps.config.outbox.defaultTargetUrl === null && !reportedUnroutable) {
        const { rows } = await deps.db.query<{ waiting: number }>(UNROUTABLE_SQL);
        if (Number(rows[0]?.waiting ?? 0) > 0) {
          reportedUnroutable = true;
          deps.logger.warn(
            { waiting: Number(rows[0]?.waiting) },
            'events for AgentCache are waiting: their account has no webhook_url and AGENTCACHE_API_URL is not set',
          );
        }
      }
      const { claimed } = await deliverDueEvents(deps, { ...options, batchSize });
      return claimed === batchSize && !signal.aborted;
    },
    deps.logger,
  );
}
