import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * AgentCache's webhook signatures.
 *
 *   X-AgentCache-Timestamp: <unix seconds>
 *   X-AgentCache-Signature: v1=<hex HMAC-SHA256(AGENTCACHE_WEBHOOK_SECRET, "<timestamp>.<raw body>")>
 *
 * The timestamp is inside the MAC so a captured delivery cannot be replayed later with a fresh header,
 * and a delivery more than WEBHOOK_TOLERANCE_SECONDS away from our clock (either way) is refused. The
 * signature header may list several comma-separated `v1=` values (any one matching suffices), so a
 * sender can sign with an old and a new secret while the secret is being changed; `v1` names the scheme
 * so a later one can be added beside it.
 */

export const WEBHOOK_TIMESTAMP_HEADER = 'x-agentcache-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'x-agentcache-signature';
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

function mac(secret: string, timestamp: string, rawBody: Buffer | string): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`, 'utf8').update(rawBody).digest();
}

/** The header value a sender puts in X-AgentCache-Signature (used by tests and by AgentCache's side). */
export function signWebhook(secret: string, timestamp: number | string, rawBody: Buffer | string): string {
  return `v1=${mac(secret, String(timestamp), rawBody).toString('hex')}`;
}

export type WebhookVerdict = 'valid' | 'bad-signature' | 'stale';

export interface WebhookVerifyInput {
  secret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  rawBody: Buffer;
  nowSeconds: number;
}

/**
 * 'bad-signature' for anything not signed with the secret (missing or malformed headers included);
 * 'stale' only for a correctly signed delivery outside the tolerance, so that hint goes to the secret's
 * holders alone.
 */
export function verifyWebhook(input: WebhookVerifyInput): WebhookVerdict {
  const { timestamp, signature } = input;
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp) || signature === undefined) return 'bad-signature';
  const expected = mac(input.secret, timestamp, input.rawBody);
  let matched = false;
  for (const part of signature.split(',')) {
    const match = /^\s*v1=([0-9a-fA-F]{64})\s*$/.exec(part);
    // Every candidate is compared, so the time taken does not tell which one (if any) matched.
    if (match && timingSafeEqual(Buffer.from(match[1]!, 'hex'), expected)) matched = true;
  }
  if (!matched) return 'bad-signature';
  return Math.abs(input.nowSeconds - Number(timestamp)) > WEBHOOK_TOLERANCE_SECONDS ? 'stale' : 'valid';
}
