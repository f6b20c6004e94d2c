import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticateRest, RestAuthError } from '../../auth/rest-auth.js';
import type { AppDeps } from '../../deps.js';
import { toJsonError, type JsonErrorResponse } from '../../http-errors.js';
import { noteError } from '../../observability/request-summary.js';
import { s3ErrorAsJson } from './errors.js';
import { quotaRoutes } from './quota.js';
import { storageRoutes } from './storage.js';

export { tenantOf } from './tenant.js';

/**
 * The tenant REST API (seed Part 4) under /api on the gateway listener. Encapsulated: its JSON errors,
 * content-type parsers and authentication apply to /api only, whatever the S3 side registers.
 */

function restErrorResponse(error: unknown): JsonErrorResponse {
  if (error instanceof RestAuthError) return { statusCode: error.statusCode, body: { error: error.message, code: error.code }, unexpected: false };
  return s3ErrorAsJson(error) ?? toJsonError(error);
}

/** The REST API's 404 for a path under /api that no route claims; the S3 catch-all sends it too. */
export function restNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  request.errorCode = 'NOT_FOUND';
  return reply.code(404).send({ error: 'Not found', code: 'NOT_FOUND' });
}

export async function restApi(app: FastifyInstance, options: { deps: AppDeps }): Promise<void> {
  const { deps } = options;

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  app.setErrorHandler((error, request, reply) => {
    const response = restErrorResponse(error);
    if (response.unexpected) request.log.error({ err: error }, 'REST request failed');
    noteError(request, response.body.code, error);
    if (response.headers) reply.headers(response.headers);
    return reply.code(response.statusCode).send(response.body);
  });
  app.setNotFoundHandler(restNotFound);

  app.decorateRequest('restTenant', null);
  // Every REST route is a tenant's: authenticate once here, before any body is read.
  app.addHook('onRequest', async (request) => {
    try {
      request.restTenant = await authenticateRest(deps.keys, request.headers.authorization, request.headers['x-api-secret']);
    } catch (error) {
      // No account vouches for a request with wrong credentials: its address is counted instead.
      if (error instanceof RestAuthError && error.code === 'UNAUTHORIZED') await deps.rateLimits.consumeAddress('gateway', request.ip);
      throw error;
    }
    await deps.rateLimits.consumeAccount(request.restTenant.accountId, request.restTenant.limits.rateLimitPerMinute);
  });

  await app.register(quotaRoutes, { deps });
  await app.register(storageRoutes, { deps });
}
