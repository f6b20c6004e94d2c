import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildAdminApp } from './admin/app.js';
import { createKeyStore, followAccountChanges } from './auth/key-store.js';
import { openBackend } from './backend/index.js';
import { ensureEmbeddedSecrets, type Config, type ReadyConfig } from './config.js';
import { migrate, openDb } from './db/index.js';
import type { AppDeps } from './deps.js';
import { buildGatewayApp } from './gateway/app.js';
import { blobHashingSettled } from './jobs/hash-pending.js';
import { createLogger } from './log.js';

export interface RunningServer {
  config: ReadyConfig;
  gatewayUrl: string;
  adminUrl: string;
  db: AppDeps['db'];
  backend: AppDeps['backend'];
  /** Stops accepting, lets in-flight requests finish within the shutdown bound, then closes pools. */
  close(): Promise<void>;
}

function listenUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server is not listening on TCP');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Closes an app, forcing open connections shut once the bound passes so shutdown always ends. */
async function closeWithin(app: FastifyInstance, timeoutMs: number, logger: Logger): Promise<void> {
  const timer = setTimeout(() => {
    logger.warn({ timeoutMs }, 'shutdown bound reached; closing remaining connections');
    app.server.closeAllConnections();
  }, timeoutMs);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
}

export async function startServer(baseConfig: Config, options: { logger?: Logger } = {}): Promise<RunningServer> {
  const config = await ensureEmbeddedSecrets(baseConfig);
  const logger = options.logger ?? createLogger(config.logLevel);
  const db = await openDb(config, (error) => logger.error({ err: error }, 'database connection error'));
  let backend: AppDeps['backend'] | undefined;
  const opened: FastifyInstance[] = [];
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ migrations: applied.map((m) => `${m.version}_${m.name}`) }, 'applied migrations');
    backend = await openBackend(config);
    const keys = createKeyStore({ db, masterKey: config.masterKey });
    const stopFollowing = await followAccountChanges(db, keys);
    const deps: AppDeps = { config, db, backend, logger, keys };
    const gateway = await buildGatewayApp(deps);
    opened.push(gateway);
    const admin = await buildAdminApp(deps);
    opened.push(admin);
    await gateway.listen({ host: config.gateway.host, port: config.gateway.port });
    await admin.listen({ host: config.admin.host, port: config.admin.port });
    const gatewayUrl = listenUrl(gateway);
    const adminUrl = listenUrl(admin);
    logger.info({ gatewayUrl, adminUrl, embedded: config.embedded, backend: backend.kind, database: db.kind }, 'listening');

    let closing: Promise<void> | undefined;
    const openBackendRef = backend;
    return {
      config,
      gatewayUrl,
      adminUrl,
      db,
      backend,
      close() {
        closing ??= (async () => {
          await Promise.all([closeWithin(gateway, config.shutdownTimeoutMs, logger), closeWithin(admin, config.shutdownTimeoutMs, logger)]);
          await stopFollowing();
          // A dedup pass started by a completed multipart upload reads the backend and writes the database.
          await blobHashingSettled(deps);
          await openBackendRef.close();
          await db.close();
          logger.info('stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await Promise.allSettled(opened.map((app) => app.close()));
    await backend?.close().catch(() => undefined);
    await db.close().catch(() => undefined);
    throw error;
  }
}
