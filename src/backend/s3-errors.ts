import { BackendError, BackendErrorCode } from './backend.js';

/** What the SDK's errors carry: service errors have a name and HTTP status, network errors a Node code. */
interface UpstreamError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** A request that got no byte for the whole idle timeout; not retried (see the S3 client in s3.ts). */
export const IDLE_TIMEOUT_ERROR = 'BackendIdleTimeout';

const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchUpload']);
const UNAVAILABLE_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TimeoutError',
  IDLE_TIMEOUT_ERROR,
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

function upstream(error: unknown): UpstreamError {
  return typeof error === 'object' && error !== null ? (error as UpstreamError) : {};
}

export function isUpstreamNotFound(error: unknown): boolean {
  const { name, $metadata } = upstream(error);
  // NoSuchBucket is also a 404, but it means our configuration is wrong, not that the object is gone.
  if (name === 'NoSuchBucket') return false;
  return $metadata?.httpStatusCode === 404 || (name !== undefined && NOT_FOUND_NAMES.has(name));
}

/**
 * Maps an upstream failure to a BackendError. The message names the operation and the HTTP status only:
 * upstream codes stay in `cause`, for logs, because an upstream AccessDenied means OUR credentials failed
 * and must never reach a tenant as if it were theirs.
 */
export function toBackendError(error: unknown, operation: string): BackendError {
  if (error instanceof BackendError) return error;
  const { name, code, $metadata } = upstream(error);
  const status = $metadata?.httpStatusCode;
  const what = `S3 ${operation} failed${status ? ` (HTTP ${status})` : ''}`;
  if (name === 'AbortError') return new BackendError(BackendErrorCode.Aborted, `S3 ${operation} was aborted`, { cause: error });
  if (isUpstreamNotFound(error)) return new BackendError(BackendErrorCode.NotFound, `${what}: not found`, { cause: error });
  if (status === 416 || name === 'InvalidRange') return new BackendError(BackendErrorCode.InvalidRange, `${what}: range not satisfiable`, { cause: error });
  const unavailable =
    (status !== undefined && (status >= 500 || status === 429)) ||
    (name !== undefined && UNAVAILABLE_NAMES.has(name)) ||
    (code !== undefined && NETWORK_CODES.has(code));
  if (unavailable) return new BackendError(BackendErrorCode.Unavailable, `${what}: upstream unavailable`, { cause: error });
  return new BackendError(BackendErrorCode.Failed, what, { cause: error });
}
