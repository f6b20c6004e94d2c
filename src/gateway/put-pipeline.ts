import { Writable, type Readable, type Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { HashTap, HashTapResult } from '../auth/hash-tap.js';
import type { KeyRecord } from '../auth/key-store.js';
import type { AppDeps } from '../deps.js';
import { dedupBytesSaved } from '../observability/metrics.js';
import type { ReservedBytes } from '../quota/byte-limit.js';
import { formatBytes, QuotaError } from '../quota/errors.js';
import { getAccountLimits } from '../quota/limits.js';
import { releaseReservation, reservationMeter, reserveStorageAndStage, type Reservation } from '../quota/storage.js';
import { deleteUnreferenced, newBlobKey, type WarnLogger } from '../store/blobs.js';
import { commitObject, type CommitResult, type ObjectWrite } from '../store/objects.js';

/**
 * The one PUT path of both surfaces, S3 and the tenant REST API:
 *   size limit -> reserve quota -> stream once through the verifiers and hashes to the backend
 *   -> one commit transaction -> delete what became unreferenced.
 * Any failure releases the reservation and removes what was staged: no object row ever points at an
 * incomplete body.
 */

export interface PutStreamInput {
  deps: Pick<AppDeps, 'db' | 'backend' | 'config'>;
  log: WarnLogger;
  signal: AbortSignal;
  /**
   * The authenticated account: its limits are the key record's, which every process refreshes on every
   * account change. The storage quota itself is enforced by the reservation's statement, not by them.
   */
  account: Pick<KeyRecord, 'accountId' | 'agentcacheUserId' | 'limits'>;
  /** The request body as received. */
  source: Readable;
  /** Verifiers and hashes in order; the last one is the HashTap whose output goes to the backend. */
  transforms: Transform[];
  tap: HashTap;
  /** Decoded length the client declared; undefined when unknown (then enforced while streaming). */
  declaredLength: number | undefined;
  /** x-amz-content-sha256 as a hex digest: when that content is stored already, the write is skipped. */
  claimedSha256?: string;
  /** The object row to write, given the body's digests once it has been read. */
  describe(result: HashTapResult): Omit<ObjectWrite, 'accountId' | 'size' | 'sha256' | 'md5'>;
}

export interface PutStreamResult extends CommitResult {
  digests: HashTapResult;
}

export function entityTooLarge(maxBytes: number, size?: number): QuotaError {
  return new QuotaError(
    'ENTITY_TOO_LARGE',
    `Your proposed upload${size === undefined ? '' : ` of ${formatBytes(size)}`} exceeds the maximum allowed object size of ${formatBytes(maxBytes)} for this account.`,
    { limit: maxBytes },
  );
}

/** Feeds `source` through `transforms` without letting a downstream failure destroy the source itself:
 * the request must stay writable so the client still gets its error response. */
export function runChain(source: Readable, transforms: Transform[]): Promise<void> {
  const first = transforms[0]!;
  // A request that errors or closes before its body ended is the client going away (Node reports it as
  // ECONNRESET): IncompleteBody, the client's doing, not a dependency of ours failing.
  const incompleteBody = () => Object.assign(new Error('The client closed the connection before the body ended.'), { code: 'IncompleteBody' });
  const onSourceError = () => first.destroy(incompleteBody());
  const onSourceClose = () => {
    if (!source.readableEnded) first.destroy(incompleteBody());
  };
  source.once('error', onSourceError);
  source.once('close', onSourceClose);
  // A source that failed or closed before this point will emit nothing more: say so now, or the chain waits forever.
  if (source.errored || (source.destroyed && !source.readableEnded)) first.destroy(incompleteBody());
  source.pipe(first);
  const done = transforms.length > 1 ? pipeline(transforms) : finished(first);
  return done.finally(() => {
    source.unpipe(first);
    source.off('error', onSourceError);
    source.off('close', onSourceClose);
  });
}

/**
 * Streams `source` through `transforms` into `write`, which reads the last transform (a backend write, or
 * a sink). Settles once both have; when both fail, the chain's error (a bad digest, a short body) is the
 * cause and the write's is its symptom.
 */
export async function streamThrough<T>(source: Readable, transforms: Transform[], write: (body: Readable) => Promise<T>): Promise<T> {
  const chain = runChain(source, transforms);
  // Awaited below, but it may fail (a bad digest) while the write is still pending: without a handler
  // attached now, Node reports an unhandled rejection in the meantime.
  chain.catch(() => undefined);
  const body = transforms[transforms.length - 1]!;
  let result: T;
  try {
    result = await write(body);
  } catch (writeError) {
    body.destroy(writeError as Error);
    throw (await chain.then(() => null, (chainError: unknown) => chainError)) ?? writeError;
  }
  await chain;
  return result;
}

export async function putObjectStream(input: PutStreamInput): Promise<PutStreamResult> {
  const { deps, account, log } = input;
  const { limits } = account;
  if (input.declaredLength !== undefined && input.declaredLength > limits.maxFileSizeBytes) {
    throw entityTooLarge(limits.maxFileSizeBytes, input.declaredLength);
  }
  if (limits.storageQuotaBytes === 0) {
    // Only the refusal's message needs the usage: read it on this path alone.
    const current = await getAccountLimits(deps.db, account.accountId);
    throw new QuotaError(
      'QUOTA_STORAGE_EXCEEDED',
      `Storage quota exceeded: ${formatBytes(current.storageUsedBytes)} used of 0 bytes (the ${limits.tier} tier has no storage).`,
      { used: current.storageUsedBytes, quota: 0 },
    );
  }

  // A body of unknown length starts with nothing reserved; the meter grows the reservation ahead of the
  // bytes and cuts the body off at the quota or the largest object allowed. The same statement finds the
  // claimed content stored already, or stages the backend object about to be written.
  const key = newBlobKey(account.agentcacheUserId);
  const { reservation, stored: existing } = await reserveStorageAndStage(deps.db, account.accountId, input.declaredLength ?? 0, deps.config.reservationTtlSeconds, {
    backendKey: key,
    ...(input.claimedSha256 !== undefined && { claimedSha256: input.claimedSha256 }),
  });
  const maxBytes = input.declaredLength ?? limits.maxFileSizeBytes;
  const meter = reservationMeter(deps.db, reservation, { maxBytes, tooLarge: () => entityTooLarge(maxBytes) });
  const transforms = [...input.transforms];
  transforms.splice(transforms.length - 1, 0, meter);
  const stagedKey: string | null = existing ? null : key;
  let committed = false;
  try {
    if (existing) {
      // The content is stored already; the body is still read and its hash verified before linking.
      await streamThrough(input.source, transforms, (body) => pipeline(body, new Writable({ write: (_chunk, _encoding, next) => next() })));
    } else {
      await streamThrough(input.source, transforms, (body) =>
        deps.backend.put({ key, body, signal: input.signal, ...(input.declaredLength !== undefined && { contentLength: input.declaredLength }) }),
      );
    }

    const digests = input.tap.result;
    const write: ObjectWrite = { ...input.describe(digests), accountId: account.accountId, size: digests.bytes, sha256: digests.sha256Hex, md5: digests.md5Hex };
    const result = await commitWithRetryableGone(deps, write, stagedKey, reservation);
    committed = true;
    if (result.deduplicated) dedupBytesSaved.inc(write.size);
    if (result.unreferenced.length > 0) await deleteUnreferenced({ db: deps.db, backend: deps.backend, logger: log }, result.unreferenced);
    return { ...result, digests };
  } finally {
    if (!committed) await cleanUp(deps, log, reservation, stagedKey, meter);
  }
}

async function commitWithRetryableGone(
  deps: Pick<AppDeps, 'db'>,
  write: ObjectWrite,
  stagedKey: string | null,
  reservation: Reservation,
): Promise<CommitResult> {
  try {
    return await commitObject(deps.db, write, stagedKey ? { kind: 'staged', backendKey: stagedKey } : { kind: 'existing' }, reservation);
  } catch (error) {
    // The blob the skipped write meant to link was deleted meanwhile; the body is spent, so the client retries.
    if ((error as { code?: string }).code === 'BLOB_GONE') throw Object.assign(new Error('retry the upload'), { code: 'SlowDown', status: 503 });
    throw error;
  }
}

async function cleanUp(deps: Pick<AppDeps, 'db' | 'backend'>, log: WarnLogger, reservation: Reservation, stagedKey: string | null, meter: ReservedBytes): Promise<void> {
  try {
    // A growth still in flight would otherwise add to the reservation after it was released.
    await meter.idle();
    await releaseReservation(deps.db, reservation);
  } catch (error) {
    log.warn({ err: error }, 'could not release a storage reservation; it expires on its own');
  }
  if (stagedKey && (await stillStaged(deps, stagedKey))) await deleteUnreferenced({ db: deps.db, backend: deps.backend, logger: log }, [stagedKey]);
}

/**
 * Whether a failed PUT's staged object is still only staged. A commit whose answer was lost with the
 * database connection may have made it a blob (which removes its staged row): then its bytes must stay.
 * When the database cannot say, they stay too, and the collector removes them later by their staged row.
 */
async function stillStaged(deps: Pick<AppDeps, 'db'>, stagedKey: string): Promise<boolean> {
  try {
    const { rowCount } = await deps.db.query('SELECT 1 FROM staged_writes WHERE backend_key = $1', [stagedKey]);
    return rowCount > 0;
  } catch {
    return false;
  }
}
