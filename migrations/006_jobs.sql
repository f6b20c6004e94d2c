-- Background jobs (src/jobs): the last run of each job, for operators and for the scheduler, which runs a
-- job only when the cluster's last run of it is older than its interval.
CREATE TABLE job_runs (
  job VARCHAR(64) PRIMARY KEY,
  last_started_at TIMESTAMPTZ NOT NULL,
  last_finished_at TIMESTAMPTZ,
  -- ok, failed or interrupted (stopped at a safe point by shutdown or Ctrl-C; the next run resumes).
  last_outcome VARCHAR(16) CHECK (last_outcome IN ('ok', 'failed', 'interrupted')),
  last_duration_ms INTEGER,
  last_summary JSONB,
  last_error TEXT,
  -- When the last run that ended 'ok' finished.
  last_ok_at TIMESTAMPTZ
);

-- The usage roll-up's reading of each account at its last pass. Storage between two readings is taken to
-- be the earlier reading (so byte-hours are a sum of reading x time), and bandwidth is the growth of the
-- month's bandwidth_usage counter since the last reading, so an hour's rows sum to what quotas counted.
CREATE TABLE usage_meters (
  account_id UUID PRIMARY KEY REFERENCES agentcache_accounts (id) ON DELETE CASCADE,
  sampled_at TIMESTAMPTZ NOT NULL,
  storage_bytes BIGINT NOT NULL CHECK (storage_bytes >= 0),
  bandwidth_period DATE NOT NULL,
  bandwidth_bytes BIGINT NOT NULL CHECK (bandwidth_bytes >= 0)
);

-- Requests per account per hour for the roll-up, read without scanning the account's whole history.
CREATE INDEX idx_api_requests_account_created ON api_requests (account_id, created_at);
