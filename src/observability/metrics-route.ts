import type { FastifyInstance } from 'fastify';
import { metricsText } from './metrics.js';

/**
 * Prometheus exposition on the admin listener. It takes no bearer: scrapers rarely carry one, the admin
 * listener binds loopback (or a private network) by default, and the series hold no secret and no
 * per-account label.
 */
export function registerMetrics(app: FastifyInstance): void {
  app.get(
    '/metrics',
    { logLevel: 'warn', schema: { summary: 'Prometheus metrics (text format 0.0.4)' } },
    async (_request, reply) => {
      const { contentType, body } = await metricsText();
      return reply.type(contentType).send(body);
    },
  );
}
