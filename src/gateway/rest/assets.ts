import type { Db, Queryable } from '../../db/index.js';
import { prefixSuccessor } from '../../store/listing.js';
import { lockAccount, OBJECT_COLUMNS, releaseDeletedRows, toStoredObject, VISIBLE, type StoredObject } from '../../store/objects.js';

/**
 * The REST API's view of an account's objects: the seed's assets, found by id or cache_key rather than by
 * bucket and key. Every query is scoped by the authenticated account and sees only what is VISIBLE, so an
 * object past its TTL is gone here exactly when it is gone over S3.
 */

export interface RestAsset extends StoredObject {
  bucket: string;
  pipelineId: string | null;
  hitCount: number;
  lastAccessed: Date | null;
  uploadedVia: string;
  createdAt: Date;
}

type AssetRow = Parameters<typeof toStoredObject>[0] & {
  bucket_name: string;
  agentcache_pipeline_id: string | null;
  hit_count: number;
  last_accessed: Date | null;
  uploaded_via: string;
  created_at: Date;
  /** Microsecond-exact, for a cursor that must not skip rows created within one millisecond. */
  created_at_exact: string;
};

const ASSET_COLUMNS = `${OBJECT_COLUMNS}, bk.name AS bucket_name, o.agentcache_pipeline_id, o.hit_count, o.last_accessed, o.uploaded_via,
  o.created_at, to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at_exact`;
const ASSET_FROM = 'agentcache_assets o JOIN blobs b ON b.id = o.blob_id JOIN buckets bk ON bk.id = o.bucket_id';

function toAsset(row: AssetRow): RestAsset {
  return {
    ...toStoredObject(row),
    bucket: row.bucket_name,
    pipelineId: row.agentcache_pipeline_id,
    hitCount: Number(row.hit_count),
    lastAccessed: row.last_accessed ? new Date(row.last_accessed) : null,
    uploadedVia: row.uploaded_via,
    createdAt: new Date(row.created_at),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Which objects a request names: one by its id, or every one stored under a cache_key. */
export type AssetSelector = { id: string } | { cacheKey: string };

function selectorCondition(selector: AssetSelector, parameter: string): { sql: string; value: string } {
  return 'id' in selector ? { sql: `o.id = ${parameter}::uuid`, value: selector.id } : { sql: `o.cache_key = ${parameter}`, value: selector.cacheKey };
}

/** An id that is not a UUID names nothing (and would make PostgreSQL fail the cast). */
function namesNothing(selector: AssetSelector): boolean {
  return 'id' in selector && !UUID.test(selector.id);
}

/** The object an id names, or the newest of those stored under a cache_key; null when none is visible. */
export async function findAsset(q: Queryable, accountId: string, selector: AssetSelector): Promise<RestAsset | null> {
  if (namesNothing(selector)) return null;
  const condition = selectorCondition(selector, '$2');
  const { rows } = await q.query<AssetRow>(
    `SELECT ${ASSET_COLUMNS} FROM ${ASSET_FROM}
      WHERE o.account_id = $1 AND ${condition.sql} AND ${VISIBLE}
      ORDER BY o.created_at DESC, o.id DESC LIMIT 1`,
    [accountId, condition.value],
  );
  return rows[0] ? toAsset(rows[0]) : null;
}

export interface DeletedAsset {
  id: string;
  bucket: string;
  key: string;
  size: number;
}

/**
 * Deletes the visible objects the selector names in one transaction, as deleteObject does: their blobs
 * released, their sizes taken off the account's usage. Returns them and the backend objects now unreferenced.
 */
export async function deleteAssets(db: Db, accountId: string, selector: AssetSelector): Promise<{ deleted: DeletedAsset[]; unreferenced: string[] }> {
  if (namesNothing(selector)) return { deleted: [], unreferenced: [] };
  const condition = selectorCondition(selector, '$2');
  return db.tx(async (q) => {
    await lockAccount(q, accountId);
    const { rows } = await q.query<{ id: string; bucket: string; object_key: string; blob_id: string; size_bytes: number }>(
      `DELETE FROM agentcache_assets o USING buckets bk
        WHERE bk.id = o.bucket_id AND o.account_id = $1 AND ${condition.sql} AND ${VISIBLE}
        RETURNING o.id, bk.name AS bucket, o.object_key, o.blob_id, o.size_bytes`,
      [accountId, condition.value],
    );
    const unreferenced = await releaseDeletedRows(q, accountId, rows);
    return { deleted: rows.map((row) => ({ id: row.id, bucket: row.bucket, key: row.object_key, size: Number(row.size_bytes) })), unreferenced };
  });
}

export type ListOrder = 'newest' | 'key';

/** Where a page ended: the last row's sort values, so the next page starts after it. */
export type ListPosition = { order: 'newest'; createdAt: string; id: string } | { order: 'key'; key: string; id: string };

export interface ListRequest {
  accountId: string;
  bucketId?: string;
  prefix?: string;
  cacheKey?: string;
  pipelineId?: string;
  order: ListOrder;
  after?: ListPosition;
  limit: number;
}

export interface ListedAssets {
  assets: RestAsset[];
  /** Set when more follow. */
  next?: ListPosition;
}

/**
 * One page in a stable order: newest first (created_at, then id, served by the account's created_at
 * index) or by key (UTF-8 byte order, then id, since two buckets may hold the same key).
 */
export async function listAssets(q: Queryable, request: ListRequest): Promise<ListedAssets> {
  const params: unknown[] = [request.accountId];
  const where = ['o.account_id = $1', VISIBLE];
  const add = (value: unknown) => `$${params.push(value)}`;
  if (request.bucketId !== undefined) where.push(`o.bucket_id = ${add(request.bucketId)}`);
  if (request.cacheKey !== undefined) where.push(`o.cache_key = ${add(request.cacheKey)}`);
  if (request.pipelineId !== undefined) where.push(`o.agentcache_pipeline_id = ${add(request.pipelineId)}`);
  if (request.prefix !== undefined && request.prefix !== '') {
    // A range rather than LIKE: `%` and `_` in a prefix are plain characters.
    where.push(`o.object_key >= ${add(request.prefix)}::text`);
    const upper = prefixSuccessor(request.prefix);
    if (upper !== null) where.push(`o.object_key < ${add(upper)}::text`);
  }
  const after = request.after;
  if (after?.order === 'newest') where.push(`(o.created_at, o.id) < (${add(after.createdAt)}::timestamptz, ${add(after.id)}::uuid)`);
  if (after?.order === 'key') where.push(`(o.object_key, o.id) > (${add(after.key)}::text, ${add(after.id)}::uuid)`);
  const orderBy = request.order === 'newest' ? 'o.created_at DESC, o.id DESC' : 'o.object_key, o.id';
  const { rows } = await q.query<AssetRow>(
    `SELECT ${ASSET_COLUMNS} FROM ${ASSET_FROM} WHERE ${where.join(' AND ')} ORDER BY ${orderBy} LIMIT ${add(request.limit + 1)}`,
    params,
  );
  const page = rows.slice(0, request.limit);
  const last = page[page.length - 1];
  if (rows.length <= request.limit || !last) return { assets: page.map(toAsset) };
  const next: ListPosition =
    request.order === 'newest' ? { order: 'newest', createdAt: last.created_at_exact, id: last.id } : { order: 'key', key: last.object_key, id: last.id };
  return { assets: page.map(toAsset), next };
}

/** What the REST API shows of an asset. */
export type AssetSummary = Pick<
  RestAsset,
  'id' | 'bucket' | 'key' | 'size' | 'contentType' | 'sha256' | 'etag' | 'cacheKey' | 'pipelineId' | 'expiresAt' | 'createdAt' | 'lastModified' | 'hitCount' | 'lastAccessed' | 'uploadedVia'
>;

/** The asset as the REST API shows it. `etag` is the bare MD5 (or `<md5>-<parts>`), without S3's quotes. */
export function assetDocument(asset: AssetSummary) {
  return {
    id: asset.id,
    bucket: asset.bucket,
    key: asset.key,
    size_bytes: asset.size,
    content_type: asset.contentType,
    sha256: asset.sha256,
    etag: asset.etag,
    cache_key: asset.cacheKey,
    agentcache_pipeline_id: asset.pipelineId,
    expires_at: asset.expiresAt?.toISOString() ?? null,
    created_at: asset.createdAt.toISOString(),
    last_modified: asset.lastModified.toISOString(),
    hit_count: asset.hitCount,
    last_accessed: asset.lastAccessed?.toISOString() ?? null,
    uploaded_via: asset.uploadedVia,
  };
}
