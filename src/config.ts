import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Thrown for a setting that cannot be used; `variable` names it so start-up can say so in one line. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
  }
}

export type StorageBackendKind = 'fs' | 's3';

export type RateLimitStoreKind = 'memory' | 'redis' | 'postgres';

export interface S3BackendConfig {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  /** Time to open a connection to the endpoint; a closed or unreachable one fails after this. */
  connectTimeoutMs?: number;
  /** A backend request with no byte sent or received this long fails. */
  socketTimeoutMs?: number;
}

export interface Config {
  /** True when no DATABASE_URL is set: PGlite and generated secrets under dataDir. */
  embedded: boolean;
  production: boolean;
  databaseUrl: string | null;
  /** Bounds on waiting for PostgreSQL: past them a request answers 503 instead of hanging. */
  database: { connectTimeoutMs: number; queryTimeoutMs: number };
  dataDir: string;
  gateway: { host: string; port: number };
  admin: { host: string; port: number };
  storageBackend: StorageBackendKind;
  /** The S3 backend's settings (the seed's LYVE_* names); null when the fs backend is used. */
  s3: S3BackendConfig | null;
  /** Base bucket name on the backend; also the fs backend's root folder name. */
  bucketName: string;
  /** 32 bytes; null until ensureEmbeddedSecrets fills it in embedded mode. */
  masterKey: Buffer | null;
  adminSecret: string | null;
  agentcacheApiUrl: string | null;
  jettySpeed: {
    enabled: boolean;
    cdnUrl: string | null;
    /** How often `<cdnUrl>/health` is asked, and how long an answer may take before JettySpeed counts as down. */
    healthIntervalMs: number;
    healthTimeoutMs: number;
  };
  /** Scheme, host and port tenants reach the gateway at, for the download URLs it signs; null: the request's own. */
  gatewayPublicUrl: string | null;
  /** How long a download URL handed out by the REST API stays valid. */
  downloadUrlExpiresSeconds: number;
  /** The per-address limit on unauthenticated and admin requests. */
  rateLimit: { windowMs: number; maxRequests: number };
  /**
   * Where request counters live: memory (one process), redis or postgres (shared by every process).
   * keyPrefix begins every counter's key, so deployments sharing one Redis keep apart.
   */
  rateLimitStore: { kind: RateLimitStoreKind; keyPrefix: string };
  s3Domain: string | null;
  redisUrl: string | null;
  logLevel: string;
  shutdownTimeoutMs: number;
  secretRotationGraceSeconds: number;
  /** A storage reservation not renewed this long belongs to an upload whose process died; it is released. */
  reservationTtlSeconds: number;
  multipart: {
    /** An upload left open this long is aborted by the collector (jobs/multipart-gc.ts) and its parts freed. */
    maxAgeHours: number;
    /** Open multipart uploads one account may hold; CreateMultipartUpload beyond it answers SlowDown. */
    maxOpenUploadsPerAccount: number;
  };
  outbox: {
    /** Where events go for an account provisioned without a webhook_url: AGENTCACHE_API_URL + AGENTCACHE_EVENTS_PATH; null when unset. */
    defaultTargetUrl: string | null;
    /** How often each process looks for due events. */
    pollMs: number;
    /** The first retry waits about retryMinMs, each later one twice as long, never more than retryMaxMs. */
    retryMinMs: number;
    retryMaxMs: number;
    /** One delivery attempt's bound; a receiver slower than this counts as down. */
    timeoutMs: number;
  };
  /** How often each process compares usage with quotas to record 80 / 95 / 100 % warnings. */
  quotaWarningScanMs: number;
  /** How often counted download bytes are written to bandwidth_usage: what a crash can lose, at most a second. */
  bandwidthFlushMs: number;
  requestLog: {
    /** Whether requests are written to api_requests (the per-request log line is written either way). */
    enabled: boolean;
    /** Entries waiting for the database at most; when it is slower than the traffic, newer ones are dropped. */
    maxBuffered: number;
    /** How often waiting entries are written in one INSERT. */
    flushMs: number;
  };
  jobs: JobsConfig;
  /** What the usage roll-up charges, in dollars; GB is 2^30 bytes and a month 730 hours. */
  prices: { storagePerGbMonth: number; bandwidthPerGb: number };
}

/** Every background job (src/jobs/index.ts) and how often the scheduler runs it, in seconds. */
export const JOB_DEFAULT_INTERVAL_SECONDS = Object.freeze({
  expire: 300,
  'usage-rollup': 300,
  purge: 600,
  gc: 3600,
  reconcile: 3600,
  'request-log-prune': 3600,
  'hash-pending': 600,
});
export type JobName = keyof typeof JOB_DEFAULT_INTERVAL_SECONDS;
export const JOB_NAMES = Object.keys(JOB_DEFAULT_INTERVAL_SECONDS) as JobName[];

export interface JobsConfig {
  /** Whether this process runs jobs on a schedule; `jettythunder jobs run` works either way. */
  enabled: boolean;
  /** Seconds between runs across the cluster; 0 leaves a job to `jettythunder jobs run` only. */
  intervalSeconds: Readonly<Record<JobName, number>>;
  /** Staged backend objects older than this belong to uploads that never committed: gc deletes them. */
  stagedWriteMaxAgeHours: number;
  /** api_requests rows older than this are deleted by request-log-prune. */
  requestLogRetentionDays: number;
}

/** Appended to AGENTCACHE_API_URL: where AgentCache receives JettyThunder's events. */
export const AGENTCACHE_EVENTS_PATH = '/webhooks/jettythunder';

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | null {
  const value = env[name];
  if (value === undefined) return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got "${raw}")`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be a whole number from ${min} to ${max} (got "${raw}")`);
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name);
  if (raw === null) return fallback;
  const lower = raw.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
  if (['0', 'false', 'no', 'off'].includes(lower)) return false;
  throw new ConfigError(name, `must be true or false (got "${raw}")`);
}

function url(env: Env, name: string, protocols: string[]): string | null {
  const raw = text(env, name);
  if (raw === null) return null;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'must be an absolute URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.map((p) => p.replace(':', '')).join(' or ')}`);
  }
  return raw.replace(/\/+$/, '');
}

function host(env: Env, name: string, fallback: string): string {
  const raw = text(env, name) ?? fallback;
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(raw)) throw new ConfigError(name, `is not a host name or address (got "${raw}")`);
  return raw;
}

function decimal(env: Env, name: string, fallback: number, max: number): number {
  const raw = text(env, name);
  if (raw === null) return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) > max) throw new ConfigError(name, `must be a number from 0 to ${max}, like 0.023 (got "${raw}")`);
  return Number(raw);
}

/** JOB_INTERVALS: `name=seconds` pairs separated by commas, each overriding that job's default. */
function jobIntervals(env: Env): Readonly<Record<JobName, number>> {
  const intervals: Record<JobName, number> = { ...JOB_DEFAULT_INTERVAL_SECONDS };
  const raw = text(env, 'JOB_INTERVALS');
  for (const pair of raw === null ? [] : raw.split(',')) {
    const match = /^\s*([a-z-]+)\s*=\s*(\d+)\s*$/.exec(pair);
    if (!match) throw new ConfigError('JOB_INTERVALS', `must be name=seconds pairs separated by commas (got "${pair.trim()}")`);
    const name = match[1] as JobName;
    if (!JOB_NAMES.includes(name)) throw new ConfigError('JOB_INTERVALS', `names no job "${name}"; the jobs are ${JOB_NAMES.join(', ')}`);
    const seconds = Number(match[2]);
    if (seconds > 30 * 86_400) throw new ConfigError('JOB_INTERVALS', `${name}: at most ${30 * 86_400} seconds (got ${seconds})`);
    intervals[name] = seconds;
  }
  return Object.freeze(intervals);
}

/** Accepts 32 bytes as 64 hex characters or as base64 / base64url. */
export function parseMasterKey(raw: string, variable = 'JT_MASTER_KEY'): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) throw new ConfigError(variable, 'must be 32 bytes, as 64 hex characters or base64');
  return key;
}

/**
 * Reads every setting from `env` once. Nothing else in the program reads the environment.
 * Secrets that embedded mode may generate are left null here; see ensureEmbeddedSecrets.
 */
export function loadConfig(env: Env): Config {
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const embedded = databaseUrl === null;
  const lyveEndpoint = url(env, 'LYVE_ENDPOINT', ['http:', 'https:']);

  const backendRaw = text(env, 'STORAGE_BACKEND') ?? (lyveEndpoint ? 's3' : 'fs');
  if (backendRaw !== 'fs' && backendRaw !== 's3') throw new ConfigError('STORAGE_BACKEND', `must be fs or s3 (got "${backendRaw}")`);
  const storageBackend: StorageBackendKind = backendRaw;

  const bucketName = text(env, 'LYVE_BUCKET_NAME') ?? 'agentcache-assets';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucketName)) {
    throw new ConfigError('LYVE_BUCKET_NAME', `is not a valid S3 bucket name (got "${bucketName}")`);
  }

  let s3: S3BackendConfig | null = null;
  if (storageBackend === 's3') {
    if (!lyveEndpoint) throw new ConfigError('LYVE_ENDPOINT', 'is required when STORAGE_BACKEND is s3');
    const accessKeyId = text(env, 'LYVE_ACCESS_KEY_ID');
    if (!accessKeyId) throw new ConfigError('LYVE_ACCESS_KEY_ID', 'is required when STORAGE_BACKEND is s3');
    const secretAccessKey = text(env, 'LYVE_SECRET_ACCESS_KEY');
    if (!secretAccessKey) throw new ConfigError('LYVE_SECRET_ACCESS_KEY', 'is required when STORAGE_BACKEND is s3');
    s3 = {
      endpoint: lyveEndpoint,
      region: text(env, 'LYVE_REGION') ?? 'us-east-1',
      accessKeyId,
      secretAccessKey,
      bucket: bucketName,
      connectTimeoutMs: integer(env, 'BACKEND_CONNECT_TIMEOUT_MS', 5_000, 100, 120_000),
      socketTimeoutMs: integer(env, 'BACKEND_TIMEOUT_MS', 60_000, 1_000, 3_600_000),
    };
  }

  const masterKeyRaw = text(env, 'JT_MASTER_KEY');
  const masterKey = masterKeyRaw === null ? null : parseMasterKey(masterKeyRaw);
  const adminSecret = text(env, 'AGENTCACHE_WEBHOOK_SECRET');
  if (adminSecret !== null && adminSecret.length < 16) {
    throw new ConfigError('AGENTCACHE_WEBHOOK_SECRET', 'must be at least 16 characters');
  }
  // A generated key would differ between processes sharing one database, so only embedded mode may generate.
  if (!embedded && masterKey === null) throw new ConfigError('JT_MASTER_KEY', 'is required when DATABASE_URL is set');
  if (!embedded && adminSecret === null) throw new ConfigError('AGENTCACHE_WEBHOOK_SECRET', 'is required when DATABASE_URL is set');

  const jettySpeedCdnUrl = url(env, 'JETTYSPEED_CDN_URL', ['http:', 'https:']);
  const jettySpeedEnabled = boolean(env, 'JETTYSPEED_ENABLED', false);
  if (jettySpeedEnabled && !jettySpeedCdnUrl) throw new ConfigError('JETTYSPEED_CDN_URL', 'is required when JETTYSPEED_ENABLED is true');
  const gatewayPublicUrl = url(env, 'GATEWAY_PUBLIC_URL', ['http:', 'https:']);
  // Signed URLs are path-style from the root: a path here would be signed but not routed.
  if (gatewayPublicUrl !== null && new URL(gatewayPublicUrl).pathname !== '/') {
    throw new ConfigError('GATEWAY_PUBLIC_URL', 'must be scheme, host and port only, without a path');
  }

  const s3Domain = text(env, 'S3_DOMAIN');
  if (s3Domain !== null && !/^[a-z0-9.-]+(:\d+)?$/i.test(s3Domain)) throw new ConfigError('S3_DOMAIN', `is not a domain name (got "${s3Domain}")`);

  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  // Shared counters wherever several processes may run: Redis when given, else the PostgreSQL database.
  // Embedded PGlite is one process by nature, so memory serves it.
  const rateLimitStoreRaw = text(env, 'RATE_LIMIT_STORE') ?? (redisUrl ? 'redis' : embedded ? 'memory' : 'postgres');
  if (rateLimitStoreRaw !== 'memory' && rateLimitStoreRaw !== 'redis' && rateLimitStoreRaw !== 'postgres') {
    throw new ConfigError('RATE_LIMIT_STORE', `must be memory, redis or postgres (got "${rateLimitStoreRaw}")`);
  }
  if (rateLimitStoreRaw === 'redis' && !redisUrl) throw new ConfigError('REDIS_URL', 'is required when RATE_LIMIT_STORE is redis');
  if (rateLimitStoreRaw === 'postgres' && embedded) throw new ConfigError('RATE_LIMIT_STORE', 'postgres needs DATABASE_URL; embedded mode counts in memory');
  const rateLimitKeyPrefix = text(env, 'RATE_LIMIT_KEY_PREFIX') ?? 'jettythunder';
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(rateLimitKeyPrefix)) {
    throw new ConfigError('RATE_LIMIT_KEY_PREFIX', `must be 1 to 64 letters, digits or . _ : - (got "${rateLimitKeyPrefix}")`);
  }

  const agentcacheApiUrl = url(env, 'AGENTCACHE_API_URL', ['http:', 'https:']);
  const outboxRetryMinMs = integer(env, 'OUTBOX_RETRY_MIN_MS', 1_000, 10, 3_600_000);
  const outboxRetryMaxMs = integer(env, 'OUTBOX_RETRY_MAX_MS', 600_000, 10, 86_400_000);
  if (outboxRetryMaxMs < outboxRetryMinMs) throw new ConfigError('OUTBOX_RETRY_MAX_MS', `must be at least OUTBOX_RETRY_MIN_MS (${outboxRetryMinMs})`);

  const logLevel = text(env, 'LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of fatal, error, warn, info, debug, trace, silent (got "${logLevel}")`);
  }

  return Object.freeze({
    embedded,
    production: text(env, 'NODE_ENV') === 'production',
    databaseUrl,
    database: Object.freeze({
      connectTimeoutMs: integer(env, 'DATABASE_CONNECT_TIMEOUT_MS', 5_000, 100, 120_000),
      queryTimeoutMs: integer(env, 'DATABASE_QUERY_TIMEOUT_MS', 30_000, 0, 3_600_000),
    }),
    dataDir: path.resolve(text(env, 'DATA_DIR') ?? './data'),
    gateway: Object.freeze({ host: host(env, 'GATEWAY_HOST', '0.0.0.0'), port: integer(env, 'GATEWAY_PORT', 9000, 0, 65535) }),
    admin: Object.freeze({ host: host(env, 'ADMIN_HOST', '127.0.0.1'), port: integer(env, 'ADMIN_PORT', 9001, 0, 65535) }),
    storageBackend,
    s3: s3 && Object.freeze(s3),
    bucketName,
    masterKey,
    adminSecret,
    agentcacheApiUrl,
    jettySpeed: Object.freeze({
      enabled: jettySpeedEnabled,
      cdnUrl: jettySpeedCdnUrl,
      healthIntervalMs: integer(env, 'JETTYSPEED_HEALTH_INTERVAL_MS', 10_000, 50, 3_600_000),
      healthTimeoutMs: integer(env, 'JETTYSPEED_HEALTH_TIMEOUT_MS', 2_000, 10, 60_000),
    }),
    gatewayPublicUrl,
    downloadUrlExpiresSeconds: integer(env, 'DOWNLOAD_URL_EXPIRES_SECONDS', 3_600, 1, 604_800),
    rateLimit: Object.freeze({
      windowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1_000, 86_400_000),
      maxRequests: integer(env, 'RATE_LIMIT_MAX_REQUESTS', 100, 1, 1_000_000),
    }),
    s3Domain: s3Domain?.toLowerCase() ?? null,
    rateLimitStore: Object.freeze({ kind: rateLimitStoreRaw, keyPrefix: rateLimitKeyPrefix }),
    redisUrl,
    logLevel,
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    secretRotationGraceSeconds: integer(env, 'SECRET_ROTATION_GRACE_SECONDS', 86_400, 0, 30 * 86_400),
    reservationTtlSeconds: integer(env, 'RESERVATION_TTL_SECONDS', 900, 1, 86_400),
    multipart: Object.freeze({
      maxAgeHours: integer(env, 'MULTIPART_MAX_AGE_HOURS', 7 * 24, 1, 365 * 24),
      maxOpenUploadsPerAccount: integer(env, 'MAX_OPEN_UPLOADS_PER_ACCOUNT', 1000, 1, 1_000_000),
    }),
    outbox: Object.freeze({
      defaultTargetUrl: agentcacheApiUrl === null ? null : `${agentcacheApiUrl}${AGENTCACHE_EVENTS_PATH}`,
      pollMs: integer(env, 'OUTBOX_POLL_MS', 2_000, 10, 600_000),
      retryMinMs: outboxRetryMinMs,
      retryMaxMs: outboxRetryMaxMs,
      timeoutMs: integer(env, 'OUTBOX_TIMEOUT_MS', 5_000, 100, 120_000),
    }),
    quotaWarningScanMs: integer(env, 'QUOTA_WARNING_SCAN_MS', 30_000, 10, 86_400_000),
    bandwidthFlushMs: integer(env, 'BANDWIDTH_FLUSH_MS', 1_000, 10, 1_000),
    requestLog: Object.freeze({
      enabled: boolean(env, 'REQUEST_LOG_ENABLED', true),
      maxBuffered: integer(env, 'REQUEST_LOG_BUFFER', 10_000, 1, 1_000_000),
      flushMs: integer(env, 'REQUEST_LOG_FLUSH_MS', 1_000, 10, 60_000),
    }),
    jobs: Object.freeze({
      enabled: boolean(env, 'JOBS_ENABLED', true),
      intervalSeconds: jobIntervals(env),
      stagedWriteMaxAgeHours: integer(env, 'STAGED_WRITE_MAX_AGE_HOURS', 24, 1, 365 * 24),
      requestLogRetentionDays: integer(env, 'REQUEST_LOG_RETENTION_DAYS', 30, 1, 3650),
    }),
    // S3 Standard's list prices (us-east-1): storage per GB-month, data transfer out per GB.
    prices: Object.freeze({
      storagePerGbMonth: decimal(env, 'PRICE_STORAGE_PER_GB_MONTH', 0.023, 1_000),
      bandwidthPerGb: decimal(env, 'PRICE_BANDWIDTH_PER_GB', 0.09, 1_000),
    }),
  });
}

async function readOrCreateSecretFile(file: string, create: () => string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const value = create();
  try {
    // 'wx' keeps a concurrent first start from overwriting a key another process just wrote.
    await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
    return value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(file, 'utf8')).trim();
    throw error;
  }
}

/**
 * In embedded mode, fills in a master key and an admin secret kept in dataDir (mode 0600) and reused on
 * the next start. Explicit settings always win. Returns the completed, frozen config.
 */
export async function ensureEmbeddedSecrets(config: Config): Promise<Config & { masterKey: Buffer; adminSecret: string }> {
  let { masterKey, adminSecret } = config;
  if (masterKey === null || adminSecret === null) {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  }
  if (masterKey === null) {
    const file = path.join(config.dataDir, 'master.key');
    masterKey = parseMasterKey(await readOrCreateSecretFile(file, () => randomBytes(32).toString('hex')), file);
  }
  if (adminSecret === null) {
    adminSecret = await readOrCreateSecretFile(path.join(config.dataDir, 'admin.secret'), () => randomBytes(24).toString('base64url'));
  }
  return Object.freeze({ ...config, masterKey, adminSecret });
}

export type ReadyConfig = Awaited<ReturnType<typeof ensureEmbeddedSecrets>>;
