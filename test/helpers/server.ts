import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { runCli, waitForListening, type CliProcess } from './cli.js';
import { createPostgresDatabase, primaryDbKind } from './db.js';

export const TEST_MASTER_KEY = 'a'.repeat(64);
export const TEST_ADMIN_SECRET = 'test-admin-secret-0123456789';

export interface TestServer extends RunningServer {
  dataDir: string;
  adminSecret: string;
  /** Every log line the server wrote, as parsed JSON. */
  logs: Record<string, unknown>[];
  /** The raw log text, for searching for secrets. */
  logText(): string;
}

/**
 * Starts the whole gateway in this process on free ports, with a fresh database (PostgreSQL when
 * TEST_DATABASE_URL is set, else PGlite) and the fs backend in a temporary folder, and captures its logs.
 */
export async function startTestServer(env: Record<string, string> = {}, options: { clock?: () => Date } = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'jt-test-'));
  // A DATABASE_URL given by the caller (a database of its own, shared by two servers) is used as it is.
  const database = primaryDbKind === 'postgres' && env.DATABASE_URL === undefined ? await createPostgresDatabase() : null;
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString('utf8'));
      done();
    },
  });
  const config = loadConfig({
    DATA_DIR: dataDir,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: '0',
    ADMIN_PORT: '0',
    LOG_LEVEL: 'info',
    JT_MASTER_KEY: TEST_MASTER_KEY,
    AGENTCACHE_WEBHOOK_SECRET: TEST_ADMIN_SECRET,
    // Scheduled jobs would change rows under tests that did not ask for them; tests run jobs themselves.
    JOBS_ENABLED: 'false',
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...env,
  });
  let server: RunningServer;
  try {
    server = await startServer(config, { logger: createLogger('info', sink), ...(options.clock && { clock: options.clock }) });
  } catch (error) {
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const logText = () => raw.join('');
  return {
    ...server,
    dataDir,
    adminSecret: server.config.adminSecret,
    get logs() {
      return logText()
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    logText,
    async close() {
      await server.close();
      await database?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ChildGateway extends CliProcess {
  gatewayUrl: string;
  adminUrl: string;
}

/**
 * Starts `jettythunder serve` as a separate process on free loopback ports with the test keys, for tests
 * of several gateway processes; `env` adds to (or overrides) that, and must name the shared DATABASE_URL.
 */
export async function startChildGateway(env: Record<string, string>): Promise<ChildGateway> {
  const cli = runCli(['serve'], {
    env: {
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      ADMIN_PORT: '0',
      JT_MASTER_KEY: TEST_MASTER_KEY,
      AGENTCACHE_WEBHOOK_SECRET: TEST_ADMIN_SECRET,
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  try {
    return { ...cli, ...(await waitForListening(cli)) };
  } catch (error) {
    cli.child.kill('SIGKILL');
    throw error;
  }
}
