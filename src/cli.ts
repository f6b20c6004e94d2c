#!/usr/bin/env node
import { ConfigError, loadConfig, ensureEmbeddedSecrets, type ReadyConfig } from './config.js';
import { migrate, openDb } from './db/index.js';
import { runJobsCommand } from './jobs/cli.js';
import { startServer, type RunningServer } from './main.js';

const USAGE = `Usage: jettythunder <command>

Commands:
  serve      start the S3 gateway and the admin API (applies pending migrations first)
  migrate    apply pending database migrations and exit
  jobs list  the background jobs, their schedule and their last run
  jobs run <name>
             run one background job now (expire, usage-rollup, purge, gc, reconcile,
             request-log-prune, hash-pending); a progress bar on a terminal, plain lines otherwise
  help       show this text

Settings are read from the environment; see .env.example. With none at all, JettyThunder runs
embedded: PGlite and local files under ./data.`;

function displayHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/** Embedded mode greets a newcomer with the exact commands that work against this instance. */
function printWelcome(server: RunningServer): void {
  const { config } = server;
  const s3Endpoint = `http://${displayHost(config.gateway.host)}:${new URL(server.gatewayUrl).port}`;
  const adminEndpoint = `http://${displayHost(config.admin.host)}:${new URL(server.adminUrl).port}`;
  const lines = [
    '',
    'JettyThunder is running (embedded: PGlite and local files under ' + config.dataDir + ')',
    `  S3 endpoint:     ${s3Endpoint}`,
    `  Admin endpoint:  ${adminEndpoint}`,
    '',
    'Provision a first account:',
    `  curl -X POST ${adminEndpoint}/api/agentcache/provision \\`,
    `    -H "Authorization: Bearer ${config.adminSecret}" \\`,
    '    -H "Content-Type: application/json" \\',
    `    -d '{"agentcache_user_id": "test-user-123", "agentcache_email": "test@example.com", "tier": "pro"}'`,
    '',
    'Then use its api_key and api_secret with any S3 tool, e.g.:',
    `  AWS_ACCESS_KEY_ID=<api_key> AWS_SECRET_ACCESS_KEY=<api_secret> aws --endpoint-url ${s3Endpoint} s3 ls`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

async function serve(): Promise<void> {
  const server = await startServer(loadConfig(process.env));
  if (server.config.embedded) printWelcome(server);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`received ${signal}, stopping\n`);
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function runMigrations(): Promise<void> {
  const config: ReadyConfig = await ensureEmbeddedSecrets(loadConfig(process.env));
  const db = await openDb(config);
  try {
    const applied = await migrate(db);
    process.stdout.write(applied.length === 0 ? 'database is up to date\n' : applied.map((m) => `applied ${m.version}_${m.name}\n`).join(''));
  } finally {
    await db.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'help';
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate':
      return runMigrations();
    case 'jobs':
      process.exitCode = await runJobsCommand(argv.slice(1));
      return;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      process.stderr.write(`jettythunder: unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`jettythunder: configuration error: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`jettythunder: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
