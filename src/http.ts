import { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { newRequestId, redactUrl } from './log.js';

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

export function logRequests(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: redactUrl(request.url),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        remoteAddress: request.ip,
      },
      'request',
    );
  });
}
