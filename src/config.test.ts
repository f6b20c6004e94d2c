import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ensureEmbeddedSecrets, loadConfig } from './config.js';

const production = {
  DATABASE_URL: 'postgres://jt@db.internal:5432/jt',
  JT_MASTER_KEY: 'ab'.repeat(32),
  AGENTCACHE_WEBHOOK_SECRET: 'a-long-enough-shared-secret',
};

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('needs no settings at all: embedded mode with safe defaults', () => {
    const config = loadConfig({});
    expect(config.embedded).toBe(true);
    expect(config.storageBackend).toBe('fs');
    expect(config.gateway).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9001 });
    expect(config.dataDir).toBe(path.resolve('./data'));
    expect(config.masterKey).toBeNull();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('bounds the waits on PostgreSQL and the backend, each configurable', () => {
    expect(loadConfig(production).database).toEqual({ connectTimeoutMs: 5_000, queryTimeoutMs: 30_000 });
    const config = loadConfig({
      ...production,
      DATABASE_CONNECT_TIMEOUT_MS: '1500',
      DATABASE_QUERY_TIMEOUT_MS: '0',
      LYVE_ENDPOINT: 'http://127.0.0.1:9999',
      LYVE_ACCESS_KEY_ID: 'AK',
      LYVE_SECRET_ACCESS_KEY: 'SK',
      BACKEND_CONNECT_TIMEOUT_MS: '2000',
      BACKEND_TIMEOUT_MS: '10000',
    });
    expect(config.database).toEqual({ connectTimeoutMs: 1_500, queryTimeoutMs: 0 });
    expect(config.s3).toMatchObject({ connectTimeoutMs: 2_000, socketTimeoutMs: 10_000 });
    expect(() => loadConfig({ ...production, DATABASE_CONNECT_TIMEOUT_MS: '0' })).toThrow(/DATABASE_CONNECT_TIMEOUT_MS/);
    expect(() => loadConfig({ ...production, LYVE_ENDPOINT: 'http://x', LYVE_ACCESS_KEY_ID: 'A', LYVE_SECRET_ACCESS_KEY: 'S', BACKEND_TIMEOUT_MS: 'soon' })).toThrow(/BACKEND_TIMEOUT_MS/);
  });

  it("keeps the seed's variable names", () => {
    const config = loadConfig({
      ...production,
      LYVE_ENDPOINT: 'https://s3.lyvecloud.seagate.com',
      LYVE_REGION: 'us-east-1',
      LYVE_ACCESS_KEY_ID: 'AK',
      LYVE_SECRET_ACCESS_KEY: 'SK',
      LYVE_BUCKET_NAME: 'agentcache-assets',
      AGENTCACHE_API_URL: 'https://agentcache.ai/api',
      JETTYSPEED_ENABLED: 'true',
      JETTYSPEED_CDN_URL: 'http://localhost:53777',
      RATE_LIMIT_WINDOW_MS: '60000',
      RATE_LIMIT_MAX_REQUESTS: '100',
    });
    expect(config.storageBackend).toBe('s3');
    expect(config.s3).toEqual({
      endpoint: 'https://s3.lyvecloud.seagate.com',
      region: 'us-east-1',
      accessKeyId: 'AK',
      secretAccessKey: 'SK',
      bucket: 'agentcache-assets',
      connectTimeoutMs: 5_000,
      socketTimeoutMs: 60_000,
    });
    expect(config.jettySpeed).toEqual({ enabled: true, cdnUrl: 'http://localhost:53777', healthIntervalMs: 10_000, healthTimeoutMs: 2_000 });
    expect(config.rateLimit).toEqual({ windowMs: 60000, maxRequests: 100 });
    expect(config.agentcacheApiUrl).toBe('https://agentcache.ai/api');
  });

  it.each([
    [{ GATEWAY_PORT: 'abc' }, 'GATEWAY_PORT'],
    [{ ADMIN_PORT: '70000' }, 'ADMIN_PORT'],
    [{ STORAGE_BACKEND: 'gcs' }, 'STORAGE_BACKEND'],
    [{ STORAGE_BACKEND: 's3' }, 'LYVE_ENDPOINT'],
    [{ LYVE_ENDPOINT: 'http://127.0.0.1:1' }, 'LYVE_ACCESS_KEY_ID'],
    [{ LYVE_ENDPOINT: 'not a url' }, 'LYVE_ENDPOINT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://x/y' }, 'JT_MASTER_KEY'],
    [{ DATABASE_URL: 'postgres://x/y', JT_MASTER_KEY: 'ab'.repeat(32) }, 'AGENTCACHE_WEBHOOK_SECRET'],
    [{ JT_MASTER_KEY: 'too-short' }, 'JT_MASTER_KEY'],
    [{ AGENTCACHE_WEBHOOK_SECRET: 'short' }, 'AGENTCACHE_WEBHOOK_SECRET'],
    [{ JETTYSPEED_ENABLED: 'maybe' }, 'JETTYSPEED_ENABLED'],
    [{ JETTYSPEED_ENABLED: 'true' }, 'JETTYSPEED_CDN_URL'],
    [{ JETTYSPEED_HEALTH_TIMEOUT_MS: '0' }, 'JETTYSPEED_HEALTH_TIMEOUT_MS'],
    [{ GATEWAY_PUBLIC_URL: 'https://s3.example.com/prefix' }, 'GATEWAY_PUBLIC_URL'],
    [{ DOWNLOAD_URL_EXPIRES_SECONDS: '604801' }, 'DOWNLOAD_URL_EXPIRES_SECONDS'],
    [{ RATE_LIMIT_WINDOW_MS: '-5' }, 'RATE_LIMIT_WINDOW_MS'],
    [{ LYVE_BUCKET_NAME: 'Bad_Bucket' }, 'LYVE_BUCKET_NAME'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ])('refuses %o naming %s', (env, variable) => {
    const error = configError(env);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.message).not.toContain('\n');
  });

  it('never echoes a secret value in its error', () => {
    const error = configError({ JT_MASTER_KEY: 'my-secret-master-key-value' });
    expect(error.message).not.toContain('my-secret-master-key-value');
  });
});

describe('ensureEmbeddedSecrets', () => {
  it('generates a master key and admin secret once, mode 0600, and reuses them', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jt-config-'));
    const first = await ensureEmbeddedSecrets(loadConfig({ DATA_DIR: dataDir }));
    const second = await ensureEmbeddedSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(first.masterKey).toHaveLength(32);
    expect(second.masterKey.equals(first.masterKey)).toBe(true);
    expect(second.adminSecret).toBe(first.adminSecret);
    for (const file of ['master.key', 'admin.secret']) {
      expect((await stat(path.join(dataDir, file))).mode & 0o777).toBe(0o600);
    }
    expect((await readFile(path.join(dataDir, 'admin.secret'), 'utf8')).trim()).toBe(first.adminSecret);
  });

  it('lets explicit settings win over generated ones', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jt-config-'));
    const config = await ensureEmbeddedSecrets(loadConfig({ DATA_DIR: dataDir, JT_MASTER_KEY: 'cd'.repeat(32), AGENTCACHE_WEBHOOK_SECRET: 'explicit-admin-secret' }));
    expect(config.masterKey.toString('hex')).toBe('cd'.repeat(32));
    expect(config.adminSecret).toBe('explicit-admin-secret');
  });
});

describe('loadConfig: background jobs and prices', () => {
  it('has documented defaults', () => {
    const config = loadConfig({});
    expect(config.jobs).toEqual({
      enabled: true,
      intervalSeconds: { expire: 300, 'usage-rollup': 300, purge: 600, gc: 3600, reconcile: 3600, 'request-log-prune': 3600, 'hash-pending': 600 },
      stagedWriteMaxAgeHours: 24,
      requestLogRetentionDays: 30,
    });
    expect(config.prices).toEqual({ storagePerGbMonth: 0.023, bandwidthPerGb: 0.09 });
  });

  it('takes interval overrides by job name, 0 for on demand only, and names a bad one', () => {
    const config = loadConfig({ JOB_INTERVALS: 'gc=1800, reconcile=0', JOBS_ENABLED: 'false', PRICE_STORAGE_PER_GB_MONTH: '0.0066' });
    expect(config.jobs.intervalSeconds).toMatchObject({ gc: 1800, reconcile: 0, expire: 300 });
    expect(config.jobs.enabled).toBe(false);
    expect(config.prices.storagePerGbMonth).toBe(0.0066);
    expect(configError({ JOB_INTERVALS: 'gcc=10' }).message).toMatch(/^JOB_INTERVALS: names no job "gcc"/);
    expect(configError({ JOB_INTERVALS: 'gc' }).variable).toBe('JOB_INTERVALS');
    expect(configError({ PRICE_BANDWIDTH_PER_GB: '-1' }).variable).toBe('PRICE_BANDWIDTH_PER_GB');
    expect(configError({ REQUEST_LOG_RETENTION_DAYS: '0' }).variable).toBe('REQUEST_LOG_RETENTION_DAYS');
  });
});
