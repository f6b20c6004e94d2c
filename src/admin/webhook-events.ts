import { setTimeout as sleep } from 'node:timers/promises';
import { decryptSecret, encryptSecret } from '../auth/secret-box.js';
import { HttpError } from '../http-errors.js';
import { changeTier, markDeleted, provision, reactivate, suspend, type AccountDeps } from './accounts.js';
import { adminErrorResponse } from './errors.js';

export const WEBHOOK_EVENT_TYPES = ['user.created', 'user.tier_changed', 'user.suspended', 'user.reactivated', 'user.deleted'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** An event AgentCache sends; which `data` fields each type needs is in the route's schema. */
export interface WebhookEvent {
  /** Unique per event; a delivery of an id seen before is answered from the record of the first. */
  id: string;
  type: WebhookEventType;
  created_at: string;
  data: {
    agentcache_user_id: string;
    agentcache_email?: string;
    tier?: string;
    new_tier?: string;
    webhook_url?: string | null;
  };
}

export interface WebhookAnswer {
  statusCode: number;
  body: unknown;
}

/** Each event does what its admin endpoint does, and answers what that endpoint answers. */
async function apply(deps: AccountDeps, event: WebhookEvent): Promise<WebhookAnswer> {
  const ref = { agentcache_user_id: event.data.agentcache_user_id };
  switch (event.type) {
    case 'user.created': {
      const { agentcache_email, tier, webhook_url } = event.data;
      return { statusCode: 201, body: await provision(deps, { ...ref, agentcache_email: agentcache_email!, tier: tier!, webhook_url }) };
    }
    case 'user.tier_changed':
      return { statusCode: 200, body: await changeTier(deps, { ...ref, new_tier: event.data.new_tier! }) };
    case 'user.suspended':
      return { statusCode: 200, body: await suspend(deps, ref) };
    case 'user.reactivated':
      return { statusCode: 200, body: await reactivate(deps, ref) };
    case 'user.deleted':
      return { statusCode: 202, body: await markDeleted(deps, ref) };
  }
}

// The stored answer of user.created holds the new secret; it is kept encrypted like every other copy.
// Bound to its event, so the sealed value cannot be moved onto another event's record.
function webhookBinding(eventId: string): string {
  return `webhook_events:${eventId}`;
}

type StoredBody = { account?: { api_secret?: string; api_secret_sealed?: string } } & Record<string, unknown>;

function seal(body: unknown, masterKey: Buffer, eventId: string): unknown {
  const stored = JSON.parse(JSON.stringify(body)) as StoredBody;
  if (typeof stored.account?.api_secret === 'string') {
    stored.account.api_secret_sealed = encryptSecret(stored.account.api_secret, masterKey, webhookBinding(eventId));
    delete stored.account.api_secret;
  }
  return stored;
}

function unseal(stored: StoredBody, masterKey: Buffer, eventId: string): unknown {
  if (typeof stored.account?.api_secret_sealed !== 'string') return stored;
  const { api_secret_sealed: sealed, ...account } = stored.account;
  // Key order as first answered: api_secret follows api_key.
  const entries = Object.entries(account);
  const at = entries.findIndex(([name]) => name === 'api_key') + 1;
  entries.splice(at, 0, ['api_secret', decryptSecret(sealed, masterKey, webhookBinding(eventId))]);
  return { ...stored, account: Object.fromEntries(entries) };
}

/** status_code 0 marks an event being handled right now; its answer is written when it is done. */
const IN_PROGRESS = 0;
// A claim older than this was left by a process that died mid-event; another delivery may take it over.
const ABANDONED_CLAIM_SECONDS = 60;
const WAIT_FOR_FIRST_DELIVERY_MS = 10_000;
const POLL_MS = 100;

type Claim = { kind: 'claimed' } | { kind: 'answered'; answer: WebhookAnswer } | { kind: 'in-progress' };

async function claim(deps: AccountDeps, event: WebhookEvent): Promise<Claim> {
  // The primary key settles concurrent deliveries of one id: exactly one insert wins.
  const inserted = await deps.db.query(
    `INSERT INTO webhook_events (event_id, event_type, status_code, response) VALUES ($1, $2, $3, '{}'::jsonb)
     ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
    [event.id, event.type, IN_PROGRESS],
  );
  if (inserted.rowCount > 0) return { kind: 'claimed' };
  const takenOver = await deps.db.query(
    `UPDATE webhook_events SET received_at = now()
      WHERE event_id = $1 AND status_code = $2 AND received_at < now() - $3::integer * interval '1 second'
      RETURNING event_id`,
    [event.id, IN_PROGRESS, ABANDONED_CLAIM_SECONDS],
  );
  if (takenOver.rowCount > 0) return { kind: 'claimed' };
  const { rows } = await deps.db.query<{ status_code: number; response: StoredBody }>(
    'SELECT status_code, response FROM webhook_events WHERE event_id = $1',
    [event.id],
  );
  const row = rows[0];
  // Gone between the statements: the first delivery failed unexpectedly and released it; try again.
  if (!row) return claim(deps, event);
  if (row.status_code === IN_PROGRESS) return { kind: 'in-progress' };
  return { kind: 'answered', answer: { statusCode: row.status_code, body: unseal(row.response, deps.config.masterKey, event.id) } };
}

/**
 * Applies an event once. A repeated id changes nothing and gets the first delivery's answer, errors
 * included: the id names one intent, and AgentCache sends a new event to try something again. Only an
 * unexpected failure (a 5xx) is not recorded, so AgentCache's retry of the same id can still apply it.
 */
export async function handleWebhookEvent(deps: AccountDeps, event: WebhookEvent): Promise<WebhookAnswer> {
  const deadline = Date.now() + WAIT_FOR_FIRST_DELIVERY_MS;
  let claimed = await claim(deps, event);
  // A duplicate that arrives while the first delivery is still being handled waits for its answer.
  while (claimed.kind === 'in-progress' && Date.now() < deadline) {
    await sleep(POLL_MS);
    claimed = await claim(deps, event);
  }
  if (claimed.kind === 'answered') return claimed.answer;
  if (claimed.kind === 'in-progress') {
    throw new HttpError(409, 'EVENT_IN_PROGRESS', 'This event is still being handled by an earlier delivery; retry later');
  }

  let answer: WebhookAnswer;
  try {
    answer = await apply(deps, event);
  } catch (error) {
    const response = adminErrorResponse(error);
    if (response.unexpected) {
      await deps.db.query('DELETE FROM webhook_events WHERE event_id = $1 AND status_code = $2', [event.id, IN_PROGRESS]);
      throw error;
    }
    answer = { statusCode: response.statusCode, body: response.body };
  }
  await deps.db.query('UPDATE webhook_events SET status_code = $2, response = $3::jsonb WHERE event_id = $1', [
    event.id,
    answer.statusCode,
    JSON.stringify(seal(answer.body, deps.config.masterKey, event.id)),
  ]);
  deps.logger.info({ eventId: event.id, eventType: event.type, status: answer.statusCode }, 'webhook event applied');
  return answer;
}
