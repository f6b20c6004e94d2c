-- Tiers: the seed's table and values. Quotas here are in GB (2^30 bytes); accounts work in bytes.
CREATE TABLE tier_configs (
  tier VARCHAR(20) PRIMARY KEY,
  storage_quota_gb INTEGER NOT NULL CHECK (storage_quota_gb >= 0),
  bandwidth_quota_gb INTEGER NOT NULL CHECK (bandwidth_quota_gb >= 0),
  jetty_speed_enabled BOOLEAN NOT NULL DEFAULT false,
  rate_limit_per_minute INTEGER NOT NULL DEFAULT 60 CHECK (rate_limit_per_minute > 0),
  max_file_size_mb INTEGER NOT NULL DEFAULT 100 CHECK (max_file_size_mb >= 0)
);

INSERT INTO tier_configs (tier, storage_quota_gb, bandwidth_quota_gb, jetty_speed_enabled, rate_limit_per_minute, max_file_size_mb) VALUES
  ('free', 0, 0, false, 10, 10),
  ('starter', 2, 10, false, 60, 50),
  ('pro', 20, 50, true, 300, 500),
  ('business', 100, 200, true, 1000, 1000),
  ('enterprise', 1000, 5000, true, 10000, 5000);

CREATE TABLE agentcache_accounts (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Names the account's users/<id>/ prefix on the backend, so it is limited to a safe path segment.
  agentcache_user_id TEXT NOT NULL UNIQUE
    CHECK (agentcache_user_id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$'),
  agentcache_email VARCHAR(255) NOT NULL,
  agentcache_tier VARCHAR(20) NOT NULL REFERENCES tier_configs (tier),

  api_key TEXT NOT NULL UNIQUE,
  -- SigV4 needs the secret itself, so it is encrypted (AES-256-GCM under JT_MASTER_KEY), never hashed.
  api_secret_encrypted TEXT NOT NULL,
  -- After a rotation the previous secret keeps working until previous_secret_expires_at.
  previous_secret_encrypted TEXT,
  previous_secret_expires_at TIMESTAMPTZ,

  -- Per-account overrides; NULL means the tier's value applies.
  storage_quota_bytes_override BIGINT CHECK (storage_quota_bytes_override >= 0),
  bandwidth_quota_bytes_override BIGINT CHECK (bandwidth_quota_bytes_override >= 0),
  rate_limit_per_minute_override INTEGER CHECK (rate_limit_per_minute_override > 0),
  max_file_size_bytes_override BIGINT CHECK (max_file_size_bytes_override >= 0),

  -- Committed logical bytes of the account's objects (and open multipart parts), and bytes reserved
  -- by uploads in flight. A reservation is also a row in storage_reservations so it can expire.
  storage_used_bytes BIGINT NOT NULL DEFAULT 0 CHECK (storage_used_bytes >= 0),
  storage_reserved_bytes BIGINT NOT NULL DEFAULT 0 CHECK (storage_reserved_bytes >= 0),

  s3_bucket_name VARCHAR(255) NOT NULL,
  s3_prefix VARCHAR(255) NOT NULL,
  webhook_url TEXT,

  status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
  purge_state VARCHAR(20) CHECK (purge_state IN ('pending', 'running', 'done')),

  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_accessed TIMESTAMPTZ,
  deleted_at TIMESTAMPTZ
);

CREATE INDEX idx_agentcache_accounts_email ON agentcache_accounts (agentcache_email);
CREATE INDEX idx_agentcache_accounts_tier_status ON agentcache_accounts (agentcache_tier, status);

-- The limits in force for each account: the override where set, else the tier's figure in bytes.
CREATE VIEW account_limits AS
SELECT a.id AS account_id,
       a.agentcache_tier AS tier,
       COALESCE(a.storage_quota_bytes_override, t.storage_quota_gb::BIGINT * 1073741824) AS storage_quota_bytes,
       COALESCE(a.bandwidth_quota_bytes_override, t.bandwidth_quota_gb::BIGINT * 1073741824) AS bandwidth_quota_bytes,
       COALESCE(a.rate_limit_per_minute_override, t.rate_limit_per_minute) AS rate_limit_per_minute,
       COALESCE(a.max_file_size_bytes_override, t.max_file_size_mb::BIGINT * 1048576) AS max_file_size_bytes,
       t.jetty_speed_enabled
FROM agentcache_accounts a
JOIN tier_configs t ON t.tier = a.agentcache_tier;

-- Uploads in flight. A reservation whose process died is released once expires_at passes.
CREATE TABLE storage_reservations (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  bytes BIGINT NOT NULL CHECK (bytes >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_storage_reservations_expiry ON storage_reservations (expires_at);
CREATE INDEX idx_storage_reservations_account ON storage_reservations (account_id);

-- Bytes sent by GETs per calendar month (UTC).
CREATE TABLE bandwidth_usage (
  account_id UUID NOT NULL REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  period_start DATE NOT NULL,
  bytes BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
  PRIMARY KEY (account_id, period_start)
);
