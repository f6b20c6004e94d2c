import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../../deps.js';
import { HttpError } from '../../http-errors.js';
import { findBucket } from '../../store/buckets.js';
import { assetDocument, listAssets, type ListOrder, type ListPosition } from './assets.js';
import { tenantOf } from './tenant.js';

/**
 * GET /api/storage/list: the account's objects, a page at a time. Filters: bucket, prefix (of the key),
 * cache_key, agentcache_pipeline_id; order: newest (default) or key. `next_cursor` is null on the last
 * page; passed back as `cursor` with the same filters and order, it gives the next one.
 */

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

const listQuery = {
  type: 'object',
  properties: {
    bucket: { type: 'string', minLength: 1 },
    prefix: { type: 'string' },
    cache_key: { type: 'string', minLength: 1 },
    agentcache_pipeline_id: { type: 'string', minLength: 1 },
    order: { type: 'string', enum: ['newest', 'key'] },
    limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT },
    cursor: { type: 'string', minLength: 1 },
  },
} as const;

interface ListQuery {
  bucket?: string;
  prefix?: string;
  cache_key?: string;
  agentcache_pipeline_id?: string;
  order?: ListOrder;
  limit?: number;
  cursor?: string;
}

/** The cursor is the last row's sort values, opaque to the client: base64url of a small JSON document. */
function encodeCursor(position: ListPosition): string {
  const fields = position.order === 'newest' ? { o: 'newest', t: position.createdAt, i: position.id } : { o: 'key', k: position.key, i: position.id };
  return Buffer.from(JSON.stringify(fields)).toString('base64url');
}

function decodeCursor(cursor: string, order: ListOrder): ListPosition {
  const invalid = () => new HttpError(400, 'INVALID_CURSOR', 'cursor is not one this listing returned (a cursor only continues the order it came from)', { field: 'cursor' });
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid();
  }
  const id = fields?.i;
  if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/i.test(id) || fields.o !== order) throw invalid();
  if (order === 'newest' && typeof fields.t === 'string' && !Number.isNaN(Date.parse(fields.t))) return { order, createdAt: fields.t, id };
  if (order === 'key' && typeof fields.k === 'string') return { order, key: fields.k, id };
  throw invalid();
}

export async function listRoutes(app: FastifyInstance, options: { deps: AppDeps }): Promise<void> {
  const { deps } = options;
  app.get<{ Querystring: ListQuery }>('/storage/list', { schema: { querystring: listQuery } }, async (request) => {
    const { accountId } = tenantOf(request);
    const query = request.query;
    const order = query.order ?? 'newest';
    let bucketId: string | undefined;
    if (query.bucket !== undefined) {
      const bucket = await findBucket(deps.db, accountId, query.bucket);
      if (!bucket) throw new HttpError(404, 'NO_SUCH_BUCKET', `The bucket "${query.bucket}" does not exist`, { bucket: query.bucket });
      bucketId = bucket.id;
    }
    const page = await listAssets(deps.db, {
      accountId,
      order,
      limit: query.limit ?? DEFAULT_LIMIT,
      ...(bucketId !== undefined && { bucketId }),
      ...(query.prefix !== undefined && { prefix: query.prefix }),
      ...(query.cache_key !== undefined && { cacheKey: query.cache_key }),
      ...(query.agentcache_pipeline_id !== undefined && { pipelineId: query.agentcache_pipeline_id }),
      ...(query.cursor !== undefined && { after: decodeCursor(query.cursor, order) }),
    });
    return { assets: page.assets.map(assetDocument), next_cursor: page.next ? encodeCursor(page.next) : null };
  });
}
