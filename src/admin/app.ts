import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { registerLiveness, registerReadiness } from '../health.js';
import { baseServerOptions, logRequests } from '../http.js';
import { createPurgeRunner } from '../jobs/purge.js';
import { registerMetrics } from '../observability/metrics-route.js';
import { noteError } from '../observability/request-summary.js';
import type { AccountDeps } from './accounts.js';
import { adminErrorResponse } from './errors.js';
import { accountRoutes } from './routes/accounts.js';
import { webhookRoutes } from './routes/webhook.js';

/** Admin bodies are small JSON documents; anything larger is refused with 413. */
export const ADMIN_BODY_LIMIT = 1024 * 1024;

const UNCOUNTED_ADMIN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** AgentCache's listener: provisioning, webhooks, health and metrics. Does not listen. */
export async function buildAdminApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify(baseServerOptions(deps.logger, ADMIN_BODY_LIMIT));
  logRequests(app, { listener: 'admin', requestLog: deps.requestLog });

  const purges = createPurgeRunner(deps);
  // Purges started by /delete run past their request; shutdown interrupts them between batches.
  app.addHook('onClose', () => purges.stop());
  const accountDeps: AccountDeps = { ...deps, purges };

  app.setErrorHandler((error, request, reply) => {
    const response = adminErrorResponse(error);
    if (response.unexpected) request.log.error({ err: error }, 'admin request failed');
    noteError(request, response.body.code, error);
    if (response.headers) reply.headers(response.headers);
    return reply.code(response.statusCode).send(response.body);
  });
  app.setNotFoundHandler((request, reply) => {
    request.errorCode = 'NOT_FOUND';
    return reply.code(404).send({ error: 'Not found', code: 'NOT_FOUND' });
  });

  // Probes and scrapes come on a schedule of their own and must keep answering; everything else counts.
  app.addHook('onRequest', async (request) => {
    if (UNCOUNTED_ADMIN_PATHS.has(request.url.split('?', 1)[0]!)) return;
    await deps.rateLimits.consumeAddress('admin', request.ip);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'JettyThunder admin API',
        version: '1',
        description: "AgentCache's management of storage accounts. Errors are JSON { error, code }.",
      },
      components: {
        securitySchemes: { adminBearer: { type: 'http', scheme: 'bearer', description: 'AGENTCACHE_WEBHOOK_SECRET' } },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  registerLiveness(app);
  registerReadiness(app, deps);
  registerMetrics(app);
  await app.register(accountRoutes, { prefix: '/api/agentcache', deps: accountDeps });
  await app.register(webhookRoutes, { deps: accountDeps });
  await app.ready();
  return app;
}
