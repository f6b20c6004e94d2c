import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TargetName } from './config.js';
import type { TargetEndpoint } from './http-client.js';
import { BENCH_DIR, startService, waitForServiceUrl, type Cleanup, type ServiceProcess } from './processes.js';

/** A target under load: its S3 endpoint and the process whose CPU and memory are measured. */
export interface RunningTarget {
  name: TargetName;
  endpoint: TargetEndpoint;
  /** The measured process. */
  pid: number;
  service: ServiceProcess;
  /**
   * The PostgreSQL backends serving this target's own database (none for the proxies), so its
   * PostgreSQL CPU is counted and another database's load on a shared server is not.
   */
  postgresPids(): Promise<number[]>;
}

const noPostgres = async (): Promise<number[]> => [];

export interface StartContext {
  cleanup: Cleanup;
  /** Temp dir of the run: logs, the fs backend's data. */
  workDir: string;
  postgresUrl: string;
  gatewayLogLevel: string;
  /** How to run the gateway: src/cli.ts through tsx, or a transpiled cli.js (--compiled). */
  gatewayCli: { script: string; tsx: boolean };
  /** Where each gateway writes a V8 CPU profile when it exits (--profile); null: no profiling. */
  profileDir: string | null;
}

const BACKEND_BUCKET = 'bench';
const GATEWAY_BUCKET = 'default';
const BENCH_USER = 'bench-user';
/** Credentials for the endpoints that do not check signatures. */
const ANY_CREDENTIALS = { accessKeyId: 'bench', secretAccessKey: 'bench-secret', region: 'us-east-1' };

export async function makeWorkDir(cleanup: Cleanup): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'jt-bench-'));
  cleanup.add(`temp dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function startNullS3(ctx: StartContext): Promise<RunningTarget> {
  const service = startService({ name: 'null-s3', script: path.join(BENCH_DIR, 'null-s3.ts'), env: {}, logDir: ctx.workDir, cleanup: ctx.cleanup });
  const url = await waitForServiceUrl(service);
  return { name: 'null-s3', endpoint: { url, bucket: BACKEND_BUCKET, credentials: ANY_CREDENTIALS }, pid: service.pid, service, postgresPids: noPostgres };
}

export async function startPassthrough(ctx: StartContext, upstreamUrl: string): Promise<RunningTarget> {
  const service = startService({
    name: 'passthrough',
    script: path.join(BENCH_DIR, 'passthrough.ts'),
    env: { PASSTHROUGH_UPSTREAM: upstreamUrl },
    logDir: ctx.workDir,
    cleanup: ctx.cleanup,
  });
  const url = await waitForServiceUrl(service);
  return { name: 'passthrough', endpoint: { url, bucket: BACKEND_BUCKET, credentials: ANY_CREDENTIALS }, pid: service.pid, service, postgresPids: noPostgres };
}

/** A fresh database of the run's own on the PostgreSQL server, dropped at cleanup. */
async function createDatabase(ctx: StartContext, label: string): Promise<{ name: string; url: string }> {
  const name = `jt_bench_${Date.now().toString(36)}_${label}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ctx.postgresUrl, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  ctx.cleanup.add(`database ${name}`, async () => {
    const client = new pg.Client({ connectionString: ctx.postgresUrl, connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await client.end();
    }
  });
  const url = new URL(ctx.postgresUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/** Lists the server's backends connected to `database`, over one connection kept for the run. */
async function backendsOf(ctx: StartContext, database: string): Promise<() => Promise<number[]>> {
  const client = new pg.Client({ connectionString: ctx.postgresUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  ctx.cleanup.add(`pg_stat_activity reader for ${database}`, () => client.end());
  return async () => {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [database]);
    return rows.map((row) => row.pid);
  };
}

async function adminPost(adminUrl: string, secret: string, route: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${adminUrl}/api/agentcache/${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: kept as text for the error message.
  }
  return { status: response.status, json };
}

/**
 * Starts `jettythunder serve` from source as a child process with its own database, provisions the
 * bench account through the admin API and lifts its limits. Throws with the reason when any step fails;
 * the caller reports the gateway's rows as n/a with it.
 */
export async function startGateway(ctx: StartContext, backend: 's3' | 'fs', nullS3Url: string): Promise<RunningTarget> {
  const name: TargetName = backend === 's3' ? 'gateway-s3' : 'gateway-fs';
  const database = await createDatabase(ctx, backend);
  const postgresPids = await backendsOf(ctx, database.name);
  const adminSecret = randomBytes(24).toString('hex');
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    JT_MASTER_KEY: randomBytes(32).toString('hex'),
    AGENTCACHE_WEBHOOK_SECRET: adminSecret,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    LOG_LEVEL: ctx.gatewayLogLevel,
    NODE_ENV: 'production',
    // Within startService's 5 s grace before SIGKILL, so a stopped gateway exits cleanly (and writes its profile).
    SHUTDOWN_TIMEOUT_MS: '3000',
    DATA_DIR: path.join(ctx.workDir, `${name}-data`),
    LYVE_BUCKET_NAME: BACKEND_BUCKET,
  };
  if (backend === 's3') {
    Object.assign(env, { STORAGE_BACKEND: 's3', LYVE_ENDPOINT: nullS3Url, LYVE_ACCESS_KEY_ID: 'bench', LYVE_SECRET_ACCESS_KEY: 'bench-secret', LYVE_REGION: 'us-east-1' });
  } else {
    env.STORAGE_BACKEND = 'fs';
  }
  // The profile is written when the gateway exits on SIGTERM; open it in Chrome DevTools or speedscope.
  const nodeArgs = ctx.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${name}.cpuprofile`];
  const service = startService({ name, script: ctx.gatewayCli.script, tsx: ctx.gatewayCli.tsx, nodeArgs, args: ['serve'], env, logDir: ctx.workDir, cleanup: ctx.cleanup });
  const listening = await service.waitForJsonLine<{ gatewayUrl?: string; adminUrl?: string }>('listening', 60_000).catch((error: Error) => {
    throw new Error(`${name} did not start: ${firstLine(error.message)}`);
  });
  if (!listening.gatewayUrl || !listening.adminUrl) throw new Error(`${name} logged no gatewayUrl/adminUrl`);

  const provisioned = await adminPost(listening.adminUrl, adminSecret, 'provision', {
    agentcache_user_id: BENCH_USER,
    agentcache_email: 'bench@example.com',
    tier: 'enterprise',
  }).catch((error: Error) => ({ status: 0, json: error.message }));
  const account = (provisioned.json as { account?: { api_key?: string; api_secret?: string } } | null)?.account;
  if (provisioned.status !== 201 || !account?.api_key || !account.api_secret) {
    throw new Error(`provision answered ${provisioned.status}: ${JSON.stringify(provisioned.json).slice(0, 200)}`);
  }
  // Lift every limit, so the bench measures the data path and never a quota answer.
  const overrides = await adminPost(listening.adminUrl, adminSecret, 'overrides', {
    agentcache_user_id: BENCH_USER,
    storage_quota_bytes: 2 ** 50,
    bandwidth_quota_bytes: 2 ** 50,
    rate_limit_per_minute: 1_000_000_000,
    max_file_size_bytes: 2 ** 40,
  }).catch((error: Error) => ({ status: 0, json: error.message }));
  if (overrides.status !== 200) {
    process.stderr.write(`bench: ${name}: overrides answered ${overrides.status}; running with the enterprise tier's limits\n`);
  }
  return {
    name,
    endpoint: { url: listening.gatewayUrl, bucket: GATEWAY_BUCKET, credentials: { accessKeyId: account.api_key, secretAccessKey: account.api_secret, region: 'us-east-1' } },
    pid: service.pid,
    service,
    postgresPids,
  };
}

function firstLine(text: string): string {
  const lines = text.split('\n');
  const error = lines.find((line) => /error/i.test(line) && line.length < 400);
  return error ?? lines[0] ?? text;
}

/** The server's version for the report, or why it cannot be reached (the gateways then fail to start). */
export async function postgresVersion(postgresUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version.split(' ')[0] ?? 'unknown';
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}
