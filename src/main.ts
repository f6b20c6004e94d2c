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
import { createRequestLog, disabledRequestLog, type RequestLog } from './observability/request-log.js';
import { createBandwidthMeter, type BandwidthMeter } from './quota/bandwidth.js';
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
  const db = await openDb(config, (error) => logger.error({ err: error }, 'database connection error'));
  let backend: AppDeps['backend'] | undefined;
  let bandwidth: BandwidthMeter | undefined;
  let rateLimits: AppDeps['rateLimits'] | undefined;
  let requestLog: RequestLog | undefined;
  let jettySpeed: AppDeps['jettySpeed'] | undefined;
  const opened: FastifyInstance[] = [];
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ migrations: applied.map((m) => `${m.version}_${m.name}`) }, 'applied migrations');
    backend = countBackendErrors(await openBackend(config));
    const keys = createKeyStore({ db, masterKey: config.masterKey });
    const stopFollowing = await followAccountChanges(db, keys);
    bandwidth = createBandwidthMeter({ db, logger, flushIntervalMs: config.bandwidthFlushMs, ...(options.clock && { clock: options.clock }) });
    const openBandwidth = bandwidth;
    rateLimits = await openRateLimits(config, db, logger);
    const openRateLimitsRef = rateLimits;
    requestLog = config.requestLog.enabled
      ? createRequestLog({ db, logger, maxBuffered: config.requestLog.maxBuffered, flushIntervalMs: config.requestLog.flushMs })
      : disabledRequestLog;
    const openRequestLog = requestLog;
    jettySpeed = startJettySpeedProbe({ ...config.jettySpeed, intervalMs: config.jettySpeed.healthIntervalMs, timeoutMs: config.jettySpeed.healthTimeoutMs, logger });
    const openJettySpeed = jettySpeed;
    const deps: AppDeps = { config, db, backend, logger, keys, rateLimits, bandwidth, requestLog, jettySpeed };
    const gateway = await buildGatewayApp(deps);
    opened.push(gateway);
    const admin = await buildAdminApp(deps);
    opened.push(admin);
    await gateway.listen({ host: config.gateway.host, port: config.gateway.port });
    await admin.listen({ host: config.admin.host, port: config.admin.port });
    const gatewayUrl = listenUrl(gateway);
    const adminUrl = listenUrl(admin);
    logger.info({ gatewayUrl, adminUrl, embedded: config.embedded, backend: backend.kind, database: db.kind }, 'listening');
    // Every process runs both: the outbox's unique keys and row leases make them safe side by side.
    const outbox = startOutboxDelivery(deps);
    const quotaWarnings = startQuotaWarnings({ ...deps, ...(options.clock && { clock: options.clock }) }, () => outbox.wake());
    // Every process schedules every job; an advisory lock and job_runs make each run once per cluster.
    const jobs = config.jobs.enabled ? startJobScheduler(deps, { jobs: JOBS }) : null;

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
          await Promise.all([
            closeWithin(gateway, config.shutdownTimeoutMs, logger),
            closeWithin(admin, config.shutdownTimeoutMs, logger),
            // An attempt in flight ends within OUTBOX_TIMEOUT_MS and records its outcome before the pool closes.
            quotaWarnings.stop(),
            outbox.stop(),
            openJettySpeed.stop(),
            // A running job stops at its next safe point (between batches) and resumes on the next run.
            jobs?.stop(),
          ]);
          await stopFollowing();
          // A dedup pass started by a completed multipart upload reads the backend and writes the database.
          await blobHashingSettled(deps);
          await openBackendRef.close();
          // Every download has ended: what they sent is written before the pool closes.
          await openBandwidth.close();
          await openRateLimitsRef.close();
          // Every request has been answered: its api_requests row is written (within a bound) before the pool closes.
          await openRequestLog.close();
          await db.close();
          logger.info('stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await Promise.allSettled(opened.map((app) => app.close()));
    await backend?.close().catch(() => undefined);
    await bandwidth?.close().catch(() => undefined);
    await rateLimits?.close().catch(() => undefined);
    await requestLog?.close().catch(() => undefined);
    await jettySpeed?.stop();
    await db.close().catch(() => undefined);
    throw error;
  }
}
