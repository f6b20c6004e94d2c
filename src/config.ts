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

export interface S3BackendConfig {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

export interface Config {
  /** True when no DATABASE_URL is set: PGlite and generated secrets under dataDir. */
  embedded: boolean;
  production: boolean;
  databaseUrl: string | null;
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
  jettySpeed: { enabled: boolean; cdnUrl: string | null };
  rateLimit: { windowMs: number; maxRequests: number };
  s3Domain: string | null;
  redisUrl: string | null;
  logLevel: string;
  shutdownTimeoutMs: number;
  secretRotationGraceSeconds: number;
  multipart: {
    /** An upload left open this long is aborted by the collector (jobs/multipart-gc.ts) and its parts freed. */
    maxAgeHours: number;
    /** Open multipart uploads one account may hold; CreateMultipartUpload beyond it answers SlowDown. */
    maxOpenUploadsPerAccount: number;
  };
}

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
    s3 = { endpoint: lyveEndpoint, region: text(env, 'LYVE_REGION') ?? 'us-east-1', accessKeyId, secretAccessKey, bucket: bucketName };
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

  const s3Domain = text(env, 'S3_DOMAIN');
  if (s3Domain !== null && !/^[a-z0-9.-]+(:\d+)?$/i.test(s3Domain)) throw new ConfigError('S3_DOMAIN', `is not a domain name (got "${s3Domain}")`);

  const logLevel = text(env, 'LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of fatal, error, warn, info, debug, trace, silent (got "${logLevel}")`);
  }

  return Object.freeze({
    embedded,
    production: text(env, 'NODE_ENV') === 'production',
    databaseUrl,
    dataDir: path.resolve(text(env, 'DATA_DIR') ?? './data'),
    gateway: Object.freeze({ host: host(env, 'GATEWAY_HOST', '0.0.0.0'), port: integer(env, 'GATEWAY_PORT', 9000, 0, 65535) }),
    admin: Object.freeze({ host: host(env, 'ADMIN_HOST', '127.0.0.1'), port: integer(env, 'ADMIN_PORT', 9001, 0, 65535) }),
    storageBackend,
    s3: s3 && Object.freeze(s3),
    bucketName,
    masterKey,
    adminSecret,
    agentcacheApiUrl: url(env, 'AGENTCACHE_API_URL', ['http:', 'https:']),
    jettySpeed: Object.freeze({ enabled: jettySpeedEnabled, cdnUrl: jettySpeedCdnUrl }),
    rateLimit: Object.freeze({
      windowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1_000, 86_400_000),
      maxRequests: integer(env, 'RATE_LIMIT_MAX_REQUESTS', 100, 1, 1_000_000),
    }),
    s3Domain: s3Domain?.toLowerCase() ?? null,
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    logLevel,
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    secretRotationGraceSeconds: integer(env, 'SECRET_ROTATION_GRACE_SECONDS', 86_400, 0, 30 * 86_400),
    multipart: Object.freeze({
      maxAgeHours: integer(env, 'MULTIPART_MAX_AGE_HOURS', 7 * 24, 1, 365 * 24),
      maxOpenUploadsPerAccount: integer(env, 'MAX_OPEN_UPLOADS_PER_ACCOUNT', 1000, 1, 1_000_000),
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
