import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../../deps.js';
import { HttpError } from '../../http-errors.js';
import { deleteUnreferenced } from '../../store/blobs.js';
import { deleteAssets, type AssetSelector } from './assets.js';
import { tenantOf } from './tenant.js';

/**
 * DELETE /api/storage/:id and DELETE /api/storage?cache_key=…: the object (or every object stored under
 * the cache_key) goes at once for both surfaces; its size leaves the account's usage and its bytes are
 * deleted from the backend unless another of the account's objects holds the same content.
 */
export async function deleteRoutes(app: FastifyInstance, options: { deps: AppDeps }): Promise<void> {
  const { deps } = options;

  async function remove(request: Parameters<typeof tenantOf>[0], selector: AssetSelector) {
    const { deleted, unreferenced } = await deleteAssets(deps.db, tenantOf(request).accountId, selector);
    if (deleted.length === 0) {
      const what = 'id' in selector ? `id ${selector.id}` : `cache_key ${selector.cacheKey}`;
      throw new HttpError(404, 'NOT_FOUND', `No stored object has ${what}`);
    }
    await deleteUnreferenced({ db: deps.db, backend: deps.backend, logger: request.log }, unreferenced);
    return {
      deleted: deleted.map((asset) => ({ id: asset.id, bucket: asset.bucket, key: asset.key, size_bytes: asset.size })),
      freed_bytes: deleted.reduce((sum, asset) => sum + asset.size, 0),
    };
  }

  app.delete<{ Params: { id: string } }>('/storage/:id', (request) => remove(request, { id: request.params.id }));
  app.delete<{ Querystring: { cache_key?: string } }>(
    '/storage',
    { schema: { querystring: { type: 'object', properties: { cache_key: { type: 'string', minLength: 1 } } } } },
    (request) => {
      const cacheKey = request.query.cache_key;
      if (cacheKey === undefined) throw new HttpError(400, 'VALIDATION_ERROR', 'cache_key is required (or delete by id: /api/storage/<id>)', { field: 'cache_key' });
      return remove(request, { cacheKey });
    },
  );
}
