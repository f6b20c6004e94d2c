-- Request counters of the rate limits when they are kept in PostgreSQL (RATE_LIMIT_STORE=postgres), so
-- every gateway process on this database counts against one limit. The shape is the one
-- rate-limiter-flexible's PostgreSQL store reads and writes: key, points consumed, window end in epoch ms.
-- UNLOGGED: a counter is worth no WAL write on every request; losing them in a crash resets the windows.
CREATE UNLOGGED TABLE rate_limits (
  key VARCHAR(255) PRIMARY KEY,
  points INTEGER NOT NULL DEFAULT 0,
  expire BIGINT
);
