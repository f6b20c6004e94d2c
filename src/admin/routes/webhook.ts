import type { FastifyInstance } from 'fastify';
import {
  verifyWebhook,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  WEBHOOK_TOLERANCE_SECONDS,
} from '../../auth/webhook-signature.js';
import { HttpError } from '../../http-errors.js';
import type { AccountDeps } from '../accounts.js';
import { handleWebhookEvent, WEBHOOK_EVENT_TYPES, type WebhookEvent } from '../webhook-events.js';
import { agentcacheUserId, email, errors, tier, webhookUrl } from './schemas.js';

/** `data` fields each event type must carry, besides agentcache_user_id. */
const REQUIRED_DATA: Record<string, string[]> = {
  'user.created': ['agentcache_email', 'tier'],
  'user.tier_changed': ['new_tier'],
};

const webhookEventSchema = {
  type: 'object',
  required: ['id', 'type', 'created_at', 'data'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7E]+$', description: 'Unique per event; replays of an id are answered from the first delivery' },
    type: { type: 'string', enum: [...WEBHOOK_EVENT_TYPES] },
    created_at: { type: 'string', format: 'date-time', description: 'When AgentCache created the event' },
    data: {
      type: 'object',
      required: ['agentcache_user_id'],
      additionalProperties: false,
      properties: { agentcache_user_id: agentcacheUserId, agentcache_email: email, tier, new_tier: tier, webhook_url: webhookUrl },
    },
  },
  allOf: Object.entries(REQUIRED_DATA).map(([type, required]) => ({
    if: { properties: { type: { const: type } } },
    then: { properties: { data: { type: 'object', required } } },
  })),
} as const;

function single(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * POST /api/webhook/agentcache. Authenticated by its HMAC signature rather than the admin bearer, so it
 * lives in a scope of its own whose JSON parser keeps the raw bytes the signature covers.
 */
export async function webhookRoutes(app: FastifyInstance, options: { deps: AccountDeps }): Promise<void> {
  const { deps } = options;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  // Before validation, so nobody without the secret learns how a body is judged; parsing waits until
  // the bytes are known to come from AgentCache.
  app.addHook('preValidation', async (request) => {
    const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const verdict = verifyWebhook({
      secret: deps.config.adminSecret,
      timestamp: single(request.headers[WEBHOOK_TIMESTAMP_HEADER]),
      signature: single(request.headers[WEBHOOK_SIGNATURE_HEADER]),
      rawBody,
      nowSeconds: Math.floor(Date.now() / 1000),
    });
    if (verdict === 'bad-signature') throw new HttpError(401, 'INVALID_SIGNATURE', 'Invalid signature');
    if (verdict === 'stale') {
      throw new HttpError(401, 'STALE_TIMESTAMP', `Timestamp is more than ${WEBHOOK_TOLERANCE_SECONDS} seconds away from the server's clock`);
    }
    try {
      request.body = JSON.parse(rawBody.toString('utf8'));
    } catch {
      throw new HttpError(400, 'INVALID_JSON', 'Request body is not valid JSON');
    }
  });

  app.post<{ Body: WebhookEvent }>(
    '/api/webhook/agentcache',
    {
      schema: {
        tags: ['webhooks'],
        summary: "AgentCache's user events",
        description:
          'Signed, not bearer-authenticated: X-AgentCache-Timestamp is the unix time in seconds and X-AgentCache-Signature is ' +
          '`v1=` + hex HMAC-SHA256(AGENTCACHE_WEBHOOK_SECRET, timestamp + "." + raw body). A timestamp more than 5 minutes ' +
          'from the server clock is refused. Each type does what its endpoint does and answers the same: user.created ' +
          '-> /provision (201), user.tier_changed -> /upgrade, user.suspended -> /suspend, user.reactivated -> /reactivate, ' +
          'user.deleted -> /delete (202). A repeated event id changes nothing and gets the first answer again.',
        headers: {
          type: 'object',
          required: [WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER],
          properties: {
            [WEBHOOK_TIMESTAMP_HEADER]: { type: 'string', description: 'Unix time in seconds' },
            [WEBHOOK_SIGNATURE_HEADER]: { type: 'string', description: 'v1=<hex HMAC-SHA256>; several may be comma-separated' },
          },
        },
        body: webhookEventSchema,
        response: errors(400, 401, 404, 409, 413),
      },
    },
    async (request, reply) => {
      const answer = await handleWebhookEvent(deps, request.body);
      return reply.code(answer.statusCode).send(answer.body);
    },
  );
}
