import type { Db, Queryable } from '../db/index.js';

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

/** The bucket every account is provisioned with, where uploads that name none go. */
export async function findDefaultBucket(q: Queryable, accountId: string): Promise<Bucket | null> {
  const { rows } = await q.query<BucketRow>('SELECT id, account_id, name, is_default, created_at FROM buckets WHERE account_id = $1 AND is_default', [accountId]);
  return rows[0] ? toBucket(rows[0]) : null;
}

export async function listBuckets(q: Queryable, accountId: string): Promise<Bucket[]> {
  const { rows } = await q.query<BucketRow>('SELECT id, account_id, name, is_default, created_at FROM buckets WHERE account_id = $1 ORDER BY name', [accountId]);
  return rows.map(toBucket);
}

export type CreateBucketOutcome = 'created' | 'exists' | 'too-many';

/**
 * Creates the bucket unless the account already owns one of that name or already owns `maxBuckets`.
 * The count and the insert are one statement; creates racing each other may overshoot the cap by a
 * few, which a cap against abuse can afford.
 */
export async function createBucket(q: Queryable, accountId: string, name: string, maxBuckets: number): Promise<CreateBucketOutcome> {
  const { rows } = await q.query<{ outcome: CreateBucketOutcome }>(
    `WITH owned AS (SELECT count(*) AS n, COALESCE(bool_or(name = $2), false) AS taken FROM buckets WHERE account_id = $1),
          inserted AS (
            INSERT INTO buckets (account_id, name)
            SELECT $1, $2 FROM owned WHERE NOT owned.taken AND owned.n < $3
            ON CONFLICT (account_id, name) DO NOTHING
            RETURNING id)
     SELECT CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN 'created'
                 WHEN NOT owned.taken AND owned.n >= $3 THEN 'too-many'
                 ELSE 'exists' END AS outcome
       FROM owned`,
    [accountId, name, maxBuckets],
  );
  return rows[0]!.outcome;
}

/**
 * Deletes an empty bucket. 'not-empty' when it holds objects (expired ones included: their rows still
 * hold blobs until they are released) or open multipart uploads.
 *
 * The bucket row is locked FOR UPDATE before emptiness is checked, in statements of their own: a write
 * committing into the bucket holds a KEY SHARE lock on it (the foreign key), so the check waits for that
 * write and then sees its row. Checked in one statement, the delete could instead wait on the write,
 * then cascade over the row it committed and leak its blob reference and usage.
 */
export async function deleteEmptyBucket(db: Db, bucketId: string): Promise<'deleted' | 'not-empty' | 'missing'> {
  return db.tx(async (q) => {
    const locked = await q.query('SELECT 1 FROM buckets WHERE id = $1 FOR UPDATE', [bucketId]);
    if (locked.rowCount === 0) return 'missing';
    const { rows } = await q.query<{ busy: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM agentcache_assets WHERE bucket_id = $1)
           OR EXISTS (SELECT 1 FROM multipart_uploads WHERE bucket_id = $1 AND state IN ('open', 'completing')) AS busy`,
      [bucketId],
    );
    if (rows[0]!.busy) return 'not-empty';
    await q.query('DELETE FROM buckets WHERE id = $1', [bucketId]);
    return 'deleted';
  });
}
