import type { FastifyRequest } from 'fastify';
import type { KeyRecord } from '../../auth/key-store.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The account proven by the REST credentials; set by the REST API's hook before any of its routes. */
    restTenant: KeyRecord | null;
  }
}

export function tenantOf(request: FastifyRequest): KeyRecord {
  if (!request.restTenant) throw new Error('REST route reached without authentication');
  return request.restTenant;
}
