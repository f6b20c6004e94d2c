import type { FastifyInstance } from 'fastify';
import type { AppDeps } from './deps.js';

const READY_TIMEOUT_MS = 3_000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Liveness: the process answers. Cheap and dependency-free, for load balancers. */
export function registerLiveness(app: FastifyInstance): void {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
}

/** Readiness: the database and the backend both answer. */
export function registerReadiness(app: FastifyInstance, deps: Pick<AppDeps, 'db' | 'backend'>): void {
  app.get('/readyz', { logLevel: 'warn' }, async (request, reply) => {
    const checks = await Promise.allSettled([
      withTimeout(deps.db.query('SELECT 1'), 'database'),
      withTimeout(deps.backend.ping(), 'backend'),
    ]);
    const [database, backend] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'unavailable'));
    for (const check of checks) if (check.status === 'rejected') request.log.warn({ err: check.reason }, 'readiness check failed');
    const ready = database === 'ok' && backend === 'ok';
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', database, backend });
  });
}
