import { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { newRequestId } from './log.js';
import type { RequestLog } from './observability/request-log.js';
import { countTraffic, recordMetrics, summarize, toLogEntry } from './observability/request-summary.js';

/** Options both listeners share: our logger, S3-style request ids, one log line per request. */
export function baseServerOptions(logger: Logger, bodyLimit: number): FastifyServerOptions & { loggerInstance: FastifyBaseLogger } {
  return {
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: () => newRequestId(),
    // One line per request is written by logRequests below, with the fields an operator searches by.
    logController: new LogController({ requestIdLogLabel: 'reqId', disableRequestLogging: true }),
    bodyLimit,
    // S3 keys may hold any byte sequence; the S3 router reads the raw URL itself.
    routerOptions: { maxParamLength: 4096 },
    // Uploads of many GiB must not be cut off by a server-side request timer.
    requestTimeout: 0,
    return503OnClosing: true,
  };
}

// Probe routes (healthz, readyz, metrics) ask for quiet with their logLevel; they stay out of api_requests too.
const QUIET_LEVELS = new Set(['warn', 'error', 'fatal', 'silent']);

/**
 * The one place a finished request is accounted for: its log line, its metrics and its api_requests row.
 * The line is written from the server's logger, not the request's child, so fields bound earlier in the
 * request (S3 binds `account` to the AgentCache user id) do not appear twice with other meanings.
 */
export function logRequests(app: FastifyInstance, options: { listener: 'gateway' | 'admin'; requestLog: RequestLog }): void {
  // The line's fields are all strings and numbers built below (the url already through redactUrl), so no
  // redact path can match in them; pino's wildcard redaction would still run on each field of every line,
  // which made the request line the gateway's largest allocator and grew the heap under small requests.
  // A field that is an object or may hold a secret must not be added to this line.
  const requestLines = app.log.child({}, { redact: [] });
  app.addHook('onRequest', async (request, reply) => {
    countTraffic(request, reply);
  });
  app.addHook('onResponse', async (request, reply) => {
    const summary = summarize(request, reply, options.listener);
    recordMetrics(summary);
    if (QUIET_LEVELS.has(request.routeOptions.logLevel ?? '')) return;
    options.requestLog.record(toLogEntry(summary));
    requestLines.info(
      {
        reqId: summary.requestId,
        surface: summary.surface,
        account: summary.accountId,
        operation: summary.operation,
        method: summary.method,
        url: summary.url,
        status: summary.status,
        bytesIn: summary.bytesIn,
        bytesOut: summary.bytesOut,
        ms: Math.round(summary.ms),
        ...(summary.errorCode ? { errorCode: summary.errorCode } : {}),
        remoteAddress: summary.remoteAddress,
      },
      'request',
    );
  });
}
