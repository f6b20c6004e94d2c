import Fastify, { type FastifyInstance } from 'fastify';
import type { AppDeps } from '../deps.js';
import { registerLiveness } from '../health.js';
import { baseServerOptions, logRequests } from '../http.js';
import { continueOnFirstRead } from './expect-continue.js';
import { restApi } from './rest/index.js';
import { registerS3 } from './s3.js';

/** The tenant-facing listener: the S3 API and the tenant REST API under /api/. Does not listen. */
export async function buildGatewayApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify(baseServerOptions(deps.logger, 1024 * 1024));
  continueOnFirstRead(app.server);
  logRequests(app, { listener: 'gateway', requestLog: deps.requestLog });
  registerLiveness(app);
  await app.register(restApi, { prefix: '/api', deps });
  await registerS3(app, deps);
  await app.ready();
  return app;
}
