import type { Queryable } from '../db/index.js';

export interface Bucket {
  id: string;
  accountId: string;
  name: string;
  isDefault: boolean;
  createdAt: Date;
}

interface BucketRow {
  id: string;
  account_id: string;
  name: string;
  is_default: boolean;
  created_at: Date;
}

function toBucket(row: BucketRow): Bucket {
  return { id: row.id, accountId: row.account_id, name: row.name, isDefault: row.is_default, createdAt: new Date(row.created_at) };
}

/** Bucket names are per account: the lookup is always scoped by the authenticated account. */
export async function findBucket(q: Queryable, accountId: string, name: string): Promise<Bucket | null> {
  const { rows } = await q.query<BucketRow>('SELECT id, account_id, name, is_default, created_at FROM buckets WHERE account_id = $1 AND name = $2', [accountId, name]);
  return rows[0] ? toBucket(rows[0]) : null;
}

export async function listBuckets(q: Queryable, accountId: string): Promise<Bucket[]> {
  const { rows } = await q.query<BucketRow>('SELECT id, account_id, name, is_default, created_at FROM buckets WHERE account_id = $1 ORDER BY name', [accountId]);
  return rows.map(toBucket);
}

/** Creates the bucket; false when the account already owns one of that name. */
export async function createBucket(q: Queryable, accountId: string, name: string): Promise<boolean> {
  const { rowCount } = await q.query('INSERT INTO buckets (account_id, name) VALUES ($1, $2) ON CONFLICT (account_id, name) DO NOTHING', [accountId, name]);
  return rowCount > 0;
}

/**
 * Deletes an empty bucket. 'not-empty' when it holds objects (expired ones included: their rows still
 * hold blobs until the collector runs) or open multipart uploads.
 */
export async function deleteEmptyBucket(q: Queryable, bucketId: string): Promise<'deleted' | 'not-empty' | 'missing'> {
  const { rows } = await q.query<{ outcome: string }>(
    `WITH busy AS (
       SELECT EXISTS (SELECT 1 FROM agentcache_assets WHERE bucket_id = $1)
           OR EXISTS (SELECT 1 FROM multipart_uploads WHERE bucket_id = $1 AND state IN ('open', 'completing')) AS busy),
     gone AS (DELETE FROM buckets WHERE id = $1 AND NOT (SELECT busy FROM busy) RETURNING id)
     SELECT CASE WHEN EXISTS (SELECT 1 FROM gone) THEN 'deleted'
                 WHEN (SELECT busy FROM busy) THEN 'not-empty' ELSE 'missing' END AS outcome`,
    [bucketId],
  );
  return rows[0]!.outcome as 'deleted' | 'not-empty' | 'missing';
}
