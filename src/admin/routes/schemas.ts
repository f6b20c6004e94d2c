/**
 * JSON schemas of the admin API: Fastify validates requests and serializes responses with them, and the
 * OpenAPI document at /docs/json is generated from them. A response schema also keeps a field that is not
 * listed (a secret, say) from ever being serialized.
 */

export const agentcacheUserId = {
  type: 'string',
  // The id names the account's users/<id>/ prefix on the backend, so it must be a safe path segment;
  // the same pattern is a CHECK on agentcache_accounts.
  pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$',
  description: "AgentCache's user id (a UUID, or 1-128 of A-Z a-z 0-9 _ - starting with a letter or digit)",
  examples: ['test-user-123'],
} as const;

// Not an enum: an unknown tier answers the seed's 400 "Invalid tier", checked against tier_configs.
export const tier = {
  type: 'string',
  minLength: 1,
  maxLength: 20,
  description: 'free, starter, pro, business or enterprise (the rows of tier_configs)',
  examples: ['pro'],
} as const;

export const accountStatus = { type: 'string', enum: ['active', 'suspended', 'deleted'] } as const;
export const purgeState = { type: ['string', 'null'], enum: ['pending', 'running', 'done', null] } as const;

export const email = { type: 'string', format: 'email', maxLength: 255 } as const;
export const webhookUrl = {
  type: ['string', 'null'],
  format: 'uri',
  pattern: '^https?://',
  maxLength: 2048,
  description: 'Where JettyThunder sends notifications about this account (quota warnings)',
} as const;

const bytes = { type: ['integer', 'null'], minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
export const overrideFields = {
  storage_quota_bytes: { ...bytes, description: "Storage quota in bytes; null returns to the tier's" },
  bandwidth_quota_bytes: { ...bytes, description: "Monthly download quota in bytes; null returns to the tier's" },
  rate_limit_per_minute: { type: ['integer', 'null'], minimum: 1, maximum: 1_000_000_000, description: "Requests per minute; null returns to the tier's" },
  max_file_size_bytes: { ...bytes, description: "Largest object in bytes; null returns to the tier's" },
} as const;

const dateTime = { type: 'string', format: 'date-time' } as const;
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;

export const errorResponse = {
  type: 'object',
  description: 'Every error: a message and a stable code; validation errors also name the field',
  required: ['error', 'code'],
  properties: { error: { type: 'string' }, code: { type: 'string' }, field: { type: 'string' } },
  additionalProperties: true,
} as const;

export const accountRefBody = {
  type: 'object',
  required: ['agentcache_user_id'],
  additionalProperties: false,
  properties: { agentcache_user_id: agentcacheUserId },
} as const;

export const provisionBody = {
  type: 'object',
  required: ['agentcache_user_id', 'agentcache_email', 'tier'],
  additionalProperties: false,
  properties: { agentcache_user_id: agentcacheUserId, agentcache_email: email, tier, webhook_url: webhookUrl },
} as const;

export const provisionResponse = {
  type: 'object',
  required: ['success', 'account'],
  properties: {
    success: { type: 'boolean' },
    account: {
      type: 'object',
      required: ['id', 'api_key', 'api_secret', 'tier', 'storage_quota_gb', 'bandwidth_quota_gb', 'jetty_speed_enabled', 'created_at'],
      properties: {
        id: { type: 'string', format: 'uuid' },
        api_key: { type: 'string', description: 'Access key: jt_live_… in production, jt_test_… otherwise' },
        api_secret: { type: 'string', description: 'jts_…; returned here and by /rotate only, never again' },
        tier: { type: 'string' },
        storage_quota_gb: { type: 'number' },
        bandwidth_quota_gb: { type: 'number' },
        jetty_speed_enabled: { type: 'boolean' },
        created_at: dateTime,
      },
    },
  },
} as const;

export const upgradeBody = {
  type: 'object',
  required: ['agentcache_user_id', 'new_tier'],
  additionalProperties: false,
  properties: { agentcache_user_id: agentcacheUserId, new_tier: tier },
} as const;

export const upgradeResponse = {
  type: 'object',
  properties: {
    success: { type: 'boolean' },
    account: {
      type: 'object',
      properties: { id: { type: 'string', format: 'uuid' }, tier: { type: 'string' }, storage_quota_gb: { type: 'number' } },
    },
  },
} as const;

export const statusResponse = {
  type: 'object',
  properties: {
    success: { type: 'boolean' },
    account: {
      type: 'object',
      properties: { id: { type: 'string', format: 'uuid' }, agentcache_user_id: { type: 'string' }, status: accountStatus },
    },
  },
} as const;

export const deleteResponse = {
  type: 'object',
  properties: {
    success: { type: 'boolean' },
    account: {
      type: 'object',
      properties: { id: { type: 'string', format: 'uuid' }, agentcache_user_id: { type: 'string' }, status: accountStatus, purge_state: purgeState },
    },
  },
} as const;

export const rotateResponse = {
  type: 'object',
  properties: {
    success: { type: 'boolean' },
    account: {
      type: 'object',
      properties: {
        id: { type: 'string', format: 'uuid' },
        api_key: { type: 'string' },
        api_secret: { type: 'string', description: 'The new secret; returned once' },
        previous_secret_expires_at: { ...dateTime, description: 'Until then the previous secret keeps working too' },
      },
    },
  },
} as const;

export const overridesBody = {
  type: 'object',
  required: ['agentcache_user_id'],
  additionalProperties: false,
  properties: { agentcache_user_id: agentcacheUserId, ...overrideFields },
} as const;

const integer = { type: 'integer' } as const;
const gb = { type: 'number', description: 'GB of 2^30 bytes, 2 decimals' } as const;
const nullableInteger = { type: ['integer', 'null'] } as const;

export const accountView = {
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    agentcache_user_id: { type: 'string' },
    agentcache_email: { type: 'string' },
    tier: { type: 'string' },
    status: accountStatus,
    purge_state: purgeState,
    api_key: { type: 'string' },
    previous_secret_expires_at: { ...nullableDateTime, description: 'Set while a rotated-out secret still works' },
    jetty_speed_enabled: { type: 'boolean' },
    webhook_url: { type: ['string', 'null'] },
    limits: {
      type: 'object',
      description: 'The limits in force: each override where set, else the tier',
      properties: {
        storage_quota_bytes: integer,
        storage_quota_gb: gb,
        bandwidth_quota_bytes: integer,
        bandwidth_quota_gb: gb,
        rate_limit_per_minute: integer,
        max_file_size_bytes: integer,
      },
    },
    overrides: {
      type: 'object',
      properties: {
        storage_quota_bytes: nullableInteger,
        bandwidth_quota_bytes: nullableInteger,
        rate_limit_per_minute: nullableInteger,
        max_file_size_bytes: nullableInteger,
      },
    },
    usage: {
      type: 'object',
      properties: {
        storage_used_bytes: integer,
        storage_used_gb: gb,
        storage_reserved_bytes: { type: 'integer', description: 'Held by uploads in progress' },
        bandwidth_used_bytes: { type: 'integer', description: 'Downloaded this calendar month (UTC)' },
        bandwidth_used_gb: gb,
        bandwidth_period_start: { type: 'string', format: 'date' },
      },
    },
    created_at: dateTime,
    updated_at: dateTime,
    last_accessed: nullableDateTime,
    deleted_at: nullableDateTime,
  },
} as const;

export const overridesResponse = {
  type: 'object',
  properties: { success: { type: 'boolean' }, account: accountView },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tier,
    status: accountStatus,
    cursor: { type: 'string', maxLength: 256, description: "The previous page's next_cursor" },
    limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
  },
} as const;

export const listResponse = {
  type: 'object',
  properties: {
    accounts: { type: 'array', items: accountView },
    next_cursor: { type: ['string', 'null'], description: 'null on the last page' },
  },
} as const;

/** The error answers a route documents, besides its success. */
export function errors(...statusCodes: number[]): Record<number, typeof errorResponse> {
  return Object.fromEntries(statusCodes.map((status) => [status, errorResponse]));
}
