-- Hourly usage per account for billing (the seed's table, in bytes).
CREATE TABLE storage_usage (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  storage_bytes BIGINT NOT NULL,
  storage_byte_hours NUMERIC(30, 2) NOT NULL DEFAULT 0,
  bandwidth_bytes BIGINT NOT NULL,
  request_count INTEGER NOT NULL,
  period_start TIMESTAMPTZ NOT NULL,
  period_end TIMESTAMPTZ NOT NULL,
  storage_cost NUMERIC(10, 4),
  bandwidth_cost NUMERIC(10, 4),
  total_cost NUMERIC(10, 4),
  recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (account_id, period_start)
);
CREATE INDEX idx_storage_usage_period ON storage_usage (period_start, period_end);

-- Request log (the seed's table).
CREATE TABLE api_requests (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID REFERENCES agentcache_accounts (id) ON DELETE SET NULL,
  method VARCHAR(10) NOT NULL,
  endpoint TEXT NOT NULL,
  operation VARCHAR(64),
  status_code INTEGER NOT NULL,
  response_time_ms INTEGER,
  bytes_transferred BIGINT,
  error_message TEXT,
  ip_address INET,
  user_agent TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_api_requests_account ON api_requests (account_id);
CREATE INDEX idx_api_requests_created ON api_requests (created_at);

-- AgentCache's inbound webhook events, kept so a replay answers what the first delivery answered.
CREATE TABLE webhook_events (
  event_id TEXT PRIMARY KEY,
  event_type VARCHAR(64) NOT NULL,
  status_code INTEGER NOT NULL,
  response JSONB NOT NULL,
  received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Notifications to AgentCache, delivered by a worker with retries until acknowledged.
CREATE TABLE outbox (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  event_type VARCHAR(64) NOT NULL,
  -- Makes "once per threshold per period" a unique constraint rather than a check in code.
  dedupe_key TEXT UNIQUE,
  payload JSONB NOT NULL,
  target_url TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_error TEXT,
  delivered_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
