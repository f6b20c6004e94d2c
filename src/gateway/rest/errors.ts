import type { JsonErrorResponse } from '../../http-errors.js';
import { isS3ErrorCode, S3Error, toS3Error } from '../errors.js';

/**
 * The storage routes share the S3 operations' code (ranges, keys, the put pipeline), which throws S3's
 * errors: InvalidRange, KeyTooLongError, IncompleteBody, NoSuchBucket, SlowDown. Here they become the REST
 * API's JSON with the same status: `InvalidRange` -> `INVALID_RANGE`. Returns null for anything else,
 * which the REST API's general mapping answers.
 */
export function s3ErrorAsJson(error: unknown): JsonErrorResponse | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  // An upstream SDK error also carries an S3 code, but it describes our backend, not the caller's request.
  if ('$metadata' in error) return null;
  if (code === 'ACCOUNT_SUSPENDED') {
    // Suspended while the upload streamed; the commit refused it.
    return { statusCode: 403, body: { error: 'Account is suspended', code: 'ACCOUNT_SUSPENDED' }, unexpected: false };
  }
  if (!(error instanceof S3Error) && !(typeof code === 'string' && isS3ErrorCode(code))) return null;
  const s3Error = toS3Error(error);
  if (s3Error.code === 'InternalError') return null;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(s3Error.headers)) headers[name.toLowerCase()] = value;
  return {
    statusCode: s3Error.status,
    body: { error: s3Error.message, code: jsonCode(s3Error.code) },
    unexpected: s3Error.status >= 500 && s3Error.code !== 'SlowDown',
    ...(Object.keys(headers).length > 0 && { headers }),
  };
}

/** `InvalidRange` -> `INVALID_RANGE`, `KeyTooLongError` -> `KEY_TOO_LONG`: the REST API's code style. */
function jsonCode(s3Code: string): string {
  return s3Code
    .replace(/Error$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase();
}
