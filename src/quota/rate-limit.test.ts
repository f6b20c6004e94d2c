import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.js';
import { toJsonError } from '../http-errors.js';
import { createLogger } from '../log.js';
import { QuotaError } from './errors.js';
import { createRateLimits, retryAfterSeconds, type RateLimitStore } from './rate-limit.js';

function capturedLogger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: createLogger('info', sink), lines };
}

function limits(store: RateLimitStore = { kind: 'memory' }, address = { windowMs: 60_000, maxRequests: 3 }) {
  const { logger, lines } = capturedLogger();
  return { rateLimits: createRateLimits({ store, keyPrefix: 'unit', address, logger }), lines };
}

async function refusal(attempt: Promise<void>): Promise<QuotaError> {
  const error = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof QuotaError)) throw new Error(`expected a QuotaError, got ${String(error)}`);
  return error;
}

describe('account rate limit', () => {
  it('allows the limit in a minute and refuses the next request with the limit and when to retry', async () => {
    const { rateLimits } = limits();
    for (let i = 0; i < 3; i++) await rateLimits.consumeAccount('acct-a', 3);
    const error = await refusal(rateLimits.consumeAccount('acct-a', 3));
    expect(error.code).toBe('RATE_LIMITED');
    expect(error.message).toBe('Rate limit exceeded: 3 requests per minute');
    expect(error.details.limit).toBe(3);
    expect(error.details.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(error.details.retryAfterSeconds).toBeLessThanOrEqual(60);
  });

  it('counts each account apart', async () => {
    const { rateLimits } = limits();
    await rateLimits.consumeAccount('acct-a', 1);
    await expect(rateLimits.consumeAccount('acct-a', 1)).rejects.toBeInstanceOf(QuotaError);
    await expect(rateLimits.consumeAccount('acct-b', 1)).resolves.toBeUndefined();
  });

  it('applies a changed limit to the very next request, within the same minute', async () => {
    const { rateLimits } = limits();
    await rateLimits.consumeAccount('acct-a', 2);
    await rateLimits.consumeAccount('acct-a', 2);
    await expect(rateLimits.consumeAccount('acct-a', 2)).rejects.toBeInstanceOf(QuotaError);
    // Raised: the count so far (3) is within the new limit.
    await expect(rateLimits.consumeAccount('acct-a', 10)).resolves.toBeUndefined();
    // Lowered again: refused at once, without waiting for a new window.
    await expect(rateLimits.consumeAccount('acct-a', 1)).rejects.toBeInstanceOf(QuotaError);
  });
});

describe('address rate limit', () => {
  it('allows RATE_LIMIT_MAX_REQUESTS per window per address', async () => {
    const { rateLimits } = limits({ kind: 'memory' }, { windowMs: 10_000, maxRequests: 2 });
    await rateLimits.consumeAddress('gateway', '192.0.2.1');
    await rateLimits.consumeAddress('gateway', '192.0.2.1');
    const error = await refusal(rateLimits.consumeAddress('gateway', '192.0.2.1'));
    expect(error.message).toBe('Rate limit exceeded: 2 requests per 10 s from one address');
    expect(error.details.limit).toBe(2);
    expect(error.details.retryAfterSeconds).toBeLessThanOrEqual(10);
    await expect(rateLimits.consumeAddress('gateway', '2001:db8::1')).resolves.toBeUndefined();
  });

  it('counts each listener apart, and apart from accounts', async () => {
    const { rateLimits } = limits({ kind: 'memory' }, { windowMs: 60_000, maxRequests: 1 });
    await rateLimits.consumeAddress('gateway', '192.0.2.1');
    await expect(rateLimits.consumeAddress('gateway', '192.0.2.1')).rejects.toBeInstanceOf(QuotaError);
    await expect(rateLimits.consumeAddress('admin', '192.0.2.1')).resolves.toBeUndefined();
    await expect(rateLimits.consumeAccount('gateway:192.0.2.1', 1)).resolves.toBeUndefined();
  });
});

describe('a shared store that does not answer', () => {
  it('counts in memory instead and warns once, so the gateway keeps serving within the limit', async () => {
    // Never connected: the Redis limiter refuses at once, as with a Redis that went away.
    const client = new Redis({ lazyConnect: true, enableOfflineQueue: false });
    try {
      const { rateLimits, lines } = limits({ kind: 'redis', client });
      await rateLimits.consumeAccount('acct-a', 2);
      await rateLimits.consumeAccount('acct-a', 2);
      await expect(rateLimits.consumeAccount('acct-a', 2)).rejects.toMatchObject({ code: 'RATE_LIMITED' });
      const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((l) => l.level === 40);
      expect(warnings.map((w) => w.msg)).toEqual(['rate limit store failed; counting in this process alone until it answers']);
    } finally {
      client.disconnect();
    }
  });
});

describe('retryAfterSeconds', () => {
  it.each([
    [0, 1],
    [1, 1],
    [1_000, 1],
    [1_001, 2],
    [59_999, 60],
  ])('%i ms before the window ends -> %i s', (ms, seconds) => {
    expect(retryAfterSeconds(ms)).toBe(seconds);
  });
});

describe('the REST answer to a rate limit', () => {
  it('is 429 with Retry-After and { error, code }', () => {
    const response = toJsonError(new QuotaError('RATE_LIMITED', 'Rate limit exceeded: 5 requests per minute', { limit: 5, retryAfterSeconds: 42 }));
    expect(response.statusCode).toBe(429);
    expect(response.headers).toEqual({ 'retry-after': '42' });
    expect(response.body).toEqual({ error: 'Rate limit exceeded: 5 requests per minute', code: 'RATE_LIMITED', limit: 5, retry_after_seconds: 42 });
    expect(response.unexpected).toBe(false);
  });
});

describe('RATE_LIMIT_STORE', () => {
  const server = { DATABASE_URL: 'postgres://jt@db.internal:5432/jt', JT_MASTER_KEY: 'ab'.repeat(32), AGENTCACHE_WEBHOOK_SECRET: 'a-long-enough-shared-secret' };

  it('defaults to memory when embedded, postgres with a database, redis with REDIS_URL', () => {
    expect(loadConfig({}).rateLimitStore).toEqual({ kind: 'memory', keyPrefix: 'jettythunder' });
    expect(loadConfig(server).rateLimitStore.kind).toBe('postgres');
    expect(loadConfig({ ...server, REDIS_URL: 'redis://cache:6379' }).rateLimitStore.kind).toBe('redis');
    expect(loadConfig({ ...server, REDIS_URL: 'redis://cache:6379', RATE_LIMIT_STORE: 'memory' }).rateLimitStore.kind).toBe('memory');
  });

  it.each([
    [{ RATE_LIMIT_STORE: 'etcd' }, 'RATE_LIMIT_STORE'],
    [{ RATE_LIMIT_STORE: 'redis' }, 'REDIS_URL'],
    [{ RATE_LIMIT_STORE: 'postgres' }, 'RATE_LIMIT_STORE'],
    [{ RATE_LIMIT_KEY_PREFIX: 'has space' }, 'RATE_LIMIT_KEY_PREFIX'],
  ])('refuses %j naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    try {
      loadConfig(env);
    } catch (error) {
      expect((error as ConfigError).variable).toBe(variable);
    }
  });
});
