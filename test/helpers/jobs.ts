import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Backend } from '../../src/backend/backend.js';
import { findJob } from '../../src/jobs/index.js';
import { createJobLocks, runJob, type JobDeps, type JobRunResult } from '../../src/jobs/runner.js';
import { createLogger } from '../../src/log.js';
import { newBlobKey, stageWrite } from '../../src/store/blobs.js';
import { commitObject } from '../../src/store/objects.js';
import type { Provisioned } from './admin.js';
import type { TestServer } from './server.js';

export function jobDeps(server: TestServer, overrides: Partial<JobDeps> = {}): JobDeps {
  return { db: server.db, backend: server.backend, config: server.config, logger: createLogger('silent'), ...overrides };
}

/** Runs a job now, as `jettythunder jobs run` does, in the test's process. */
export async function runJobNow(
  server: TestServer,
  name: string,
  options: { deps?: Partial<JobDeps>; signal?: AbortSignal; now?: () => Date } = {},
): Promise<JobRunResult> {
  const job = findJob(name);
  if (!job) throw new Error(`no job ${name}`);
  const deps = jobDeps(server, options.deps);
  const locks = createJobLocks(deps);
  try {
    return await runJob(deps, job, { locks, force: true, ...(options.signal && { signal: options.signal }), ...(options.now && { now: options.now }) });
  } finally {
    await locks.close();
  }
}

/**
 * The backend with `after(method)` called once each call of `method` has returned: a test aborts a job
 * there, between two of its batches, as a kill would stop it.
 */
export function backendCalling(backend: Backend, method: keyof Backend, after: () => void): Backend {
  return new Proxy(backend, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== method || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        after();
        return result;
      };
    },
  });
}

export async function defaultBucketId(server: TestServer, accountId: string): Promise<string> {
  const { rows } = await server.db.query<{ id: string }>('SELECT id FROM buckets WHERE account_id = $1 AND is_default', [accountId]);
  return rows[0]!.id;
}

/** Stores an object through the store's own commit path (stage, write to the backend, commit). */
export async function storeObject(
  server: TestServer,
  account: Pick<Provisioned, 'id' | 'agentcacheUserId'>,
  key: string,
  body: Buffer = randomBytes(64),
  options: { expiresAt?: Date } = {},
): Promise<{ backendKey: string }> {
  const bucketId = await defaultBucketId(server, account.id);
  const backendKey = newBlobKey(account.agentcacheUserId);
  await stageWrite(server.db, account.id, backendKey);
  await server.backend.put({ key: backendKey, body: Readable.from([body]), contentLength: body.length });
  const md5 = createHash('md5').update(body).digest('hex');
  const result = await commitObject(
    server.db,
    {
      accountId: account.id,
      bucketId,
      key,
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      md5,
      etag: `"${md5}"`,
      checksums: {},
      partsCount: null,
      contentType: null,
      contentEncoding: null,
      contentDisposition: null,
      contentLanguage: null,
      cacheControl: null,
      expires: null,
      userMetadata: {},
      expiresAt: options.expiresAt ?? null,
    },
    { kind: 'staged', backendKey },
    null,
  );
  for (const surplus of result.unreferenced) {
    await server.backend.delete({ key: surplus });
    await server.db.query('DELETE FROM staged_writes WHERE backend_key = $1', [surplus]);
  }
  return { backendKey: result.deduplicated ? (await blobKeyOf(server, bucketId, key)) : backendKey };
}

async function blobKeyOf(server: TestServer, bucketId: string, key: string): Promise<string> {
  const { rows } = await server.db.query<{ backend_key: string }>(
    'SELECT b.backend_key FROM agentcache_assets o JOIN blobs b ON b.id = o.blob_id WHERE o.bucket_id = $1 AND o.object_key = $2',
    [bucketId, key],
  );
  return rows[0]!.backend_key;
}

/** Every backend key under the account's prefix, with the account's id replaced by "<user>". */
export async function backendListing(server: TestServer, agentcacheUserId: string): Promise<string[]> {
  const keys: string[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await server.backend.list({ prefix: `users/${agentcacheUserId}/`, ...(continuationToken && { continuationToken }) });
    keys.push(...page.objects.map((object) => object.key));
    continuationToken = page.continuationToken;
  } while (continuationToken);
  return keys.map((key) => key.replace(agentcacheUserId, '<user>')).sort();
}

export async function usageOf(server: TestServer, accountId: string): Promise<{ used: number; reserved: number }> {
  const { rows } = await server.db.query<{ used: number; reserved: number }>(
    'SELECT storage_used_bytes AS used, storage_reserved_bytes AS reserved FROM agentcache_accounts WHERE id = $1',
    [accountId],
  );
  return { used: Number(rows[0]!.used), reserved: Number(rows[0]!.reserved) };
}
