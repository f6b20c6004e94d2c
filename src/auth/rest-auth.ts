import { bearerToken, secretsEqual } from './constant-time.js';
import type { KeyRecord, KeyStore } from './key-store.js';

/**
 * The tenant REST API's authentication (seed Part 4): `Authorization: Bearer jt_…` names the access key
 * and `X-API-Secret: jts_…` proves it. Kept free of Fastify so any surface can use it.
 */

export type RestAuthErrorCode = 'UNAUTHORIZED' | 'ACCOUNT_SUSPENDED' | 'ACCOUNT_DELETED';

const ANSWERS: Record<RestAuthErrorCode, { statusCode: number; message: string }> = {
  // One answer for every credential failure: which part was wrong is not the caller's business.
  UNAUTHORIZED: { statusCode: 401, message: 'Unauthorized' },
  ACCOUNT_SUSPENDED: { statusCode: 403, message: 'Account is suspended' },
  ACCOUNT_DELETED: { statusCode: 403, message: 'Account is deleted' },
};

export class RestAuthError extends Error {
  readonly statusCode: number;
  constructor(readonly code: RestAuthErrorCode) {
    super(ANSWERS[code].message);
    this.name = 'RestAuthError';
    this.statusCode = ANSWERS[code].statusCode;
  }
}

type HeaderValue = string | string[] | undefined;

/** Node gives a repeated header as an array; a credential sent twice is refused rather than guessed at. */
function single(value: HeaderValue): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Resolves the account the two headers prove, or throws RestAuthError: 401 for missing, unknown or wrong
 * credentials, 403 for a correctly authenticated account that is suspended or deleted.
 */
export async function authenticateRest(keys: KeyStore, authorization: HeaderValue, apiSecret: HeaderValue): Promise<KeyRecord> {
  const accessKeyId = bearerToken(single(authorization));
  const secret = single(apiSecret)?.trim();
  if (!accessKeyId || !secret) throw new RestAuthError('UNAUTHORIZED');
  const record = await keys.lookup(accessKeyId);
  if (!record) throw new RestAuthError('UNAUTHORIZED');
  let matched = false;
  // Every candidate is compared, so the time taken does not tell which secret matched.
  for (const candidate of record.secrets) if (secretsEqual(secret, candidate)) matched = true;
  if (!matched) throw new RestAuthError('UNAUTHORIZED');
  if (record.status === 'suspended') throw new RestAuthError('ACCOUNT_SUSPENDED');
  if (record.status === 'deleted') throw new RestAuthError('ACCOUNT_DELETED');
  return record;
}
