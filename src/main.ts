import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildAdminApp } from './admin/app.js';
import { createKeyStore, followAccountChanges } from './auth/key-store.js';
import { openBackend } from './backend/index.js';
import { ensureEmbeddedSecrets, type Config, type ReadyConfig } from './config.js';
import { migrate, openDb } from './db/index.js';
import type { AppDeps } from './deps.js';
import { buildGatewayApp } from './gateway/app.js';
import { startJettySpeedProbe } from './jettyspeed.js';
import { blobHashingSettled } from './jobs/hash-pending.js';
import { JOBS, startJobScheduler } from './jobs/index.js';
import { startOutboxDelivery } from './jobs/outbox.js';
import { createLogger } from './log.js';
import { countBackendErrors } from './observability/backend-errors.js';
import { createRequestLog, disabledRequestLog } from './observability/request-log.js';
import { createBandwidthMeter } from './quota/bandwidth.js';
import { openRateLimits } from './quota/rate-limit.js';
import { startQuotaWarnings } from './quota/warnings.js';

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

/** `clock` decides the month bandwidth counts in (tests move it across a month's turn). */
export async function startServer(baseConfig: Config, options: { logger?: Logger; clock?: () => Date } = {}): Promise<RunningServer> {
  const config = await ensureEmbeddedSecrets(baseConfig);
  const logger = options.logger ?? createLogger(config.logLevel);
  // Everything opened, closed in reverse order: on shutdown, or when start-up fails part way.
  const closers: Array<() => Promise<unknown>> = [];
  const closeOpened = async () => {
    for (const close of closers.splice(0).reverse()) {
      await close().catch((error: unknown) => logger.error({ err: error }, 'shutdown step failed'));
    }
  };
  const db = await openDb(config, (error) => logger.error({ err: error }, 'database connection error'));
  closers.push(() => db.close());
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ migrations: applied.map((m) => `${m.version}_${m.name}`) }, 'applied migrations');
    const backend = countBackendErrors(await openBackend(config));
    closers.push(() => backend.close());
    const keys = createKeyStore({ db, masterKey: config.masterKey });
    closers.push(await followAccountChanges(db, keys));
    // Closed after the listeners: every download has ended, every request has been answered, so what
    // they counted and logged is written before the pool closes.
    const bandwidth = createBandwidthMeter({ db, logger, flushIntervalMs: config.bandwidthFlushMs, ...(options.clock && { clock: options.clock }) });
    closers.push(() => bandwidth.close());
    const rateLimits = await openRateLimits(config, db, logger);
    closers.push(() => rateLimits.close());
    const requestLog = config.requestLog.enabled
      ? createRequestLog({ db, logger, maxBuffered: config.requestLog.maxBuffered, flushIntervalMs: config.requestLog.flushMs })
      : disabledRequestLog;
    closers.push(() => requestLog.close());
    const jettySpeed = startJettySpeedProbe({ ...config.jettySpeed, intervalMs: config.jettySpeed.healthIntervalMs, timeoutMs: config.jettySpeed.healthTimeoutMs, logger });
    closers.push(() => jettySpeed.stop());
    const deps: AppDeps = { config, db, backend, logger, keys, rateLimits, bandwidth, requestLog, jettySpeed };
    // A dedup pass started by a completed multipart upload reads the backend and writes the database.
    closers.push(() => blobHashingSettled(deps));

    const gateway = await buildGatewayApp(deps);
    const admin = await buildAdminApp(deps);
    // Every process runs both: the outbox's unique keys and row leases make them safe side by side.
    const outbox = startOutboxDelivery(deps);
    const quotaWarnings = startQuotaWarnings({ ...deps, ...(options.clock && { clock: options.clock }) }, () => outbox.wake());
    // Every process schedules every job; an advisory lock and job_runs make each run once per cluster.
    const jobs = config.jobs.enabled ? startJobScheduler(deps, { jobs: JOBS }) : null;
    closers.push(() =>
      Promise.all([
        closeWithin(gateway, config.shutdownTimeoutMs, logger),
        closeWithin(admin, config.shutdownTimeoutMs, logger),
        // An attempt in flight ends within OUTBOX_TIMEOUT_MS and records its outcome before the pool closes.
        quotaWarnings.stop(),
        outbox.stop(),
        // A running job stops at its next safe point (between batches) and resumes on the next run.
        jobs?.stop(),
      ]),
    );

    await gateway.listen({ host: config.gateway.host, port: config.gateway.port });
    await admin.listen({ host: config.admin.host, port: config.admin.port });
    const gatewayUrl = listenUrl(gateway);
    const adminUrl = listenUrl(admin);
    logger.info({ gatewayUrl, adminUrl, embedded: config.embedded, backend: backend.kind, database: db.kind }, 'listening');

    let closing: Promise<void> | undefined;
    return {
      config,
      gatewayUrl,
      adminUrl,
      db,
      backend,
      close() {
        closing ??= closeOpened().then(() => logger.info('stopped'));
        return closing;
      },
    };
  } catch (error) {
    await closeOpened();
    throw error;
  }
}
