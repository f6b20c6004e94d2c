import { describe, expect, it } from 'vitest';
import { BackendErrorCode } from './backend.js';
import { IDLE_TIMEOUT_ERROR, toBackendError } from './s3-errors.js';

const upstream = (name: string, httpStatusCode?: number) => Object.assign(new Error(`upstream says ${name}`), { name, $metadata: { httpStatusCode } });

describe('toBackendError', () => {
  it.each([
    ['NoSuchKey', upstream('NoSuchKey', 404), BackendErrorCode.NotFound],
    ['a bodiless HEAD 404', upstream('NotFound', 404), BackendErrorCode.NotFound],
    ['NoSuchUpload', upstream('NoSuchUpload', 404), BackendErrorCode.NotFound],
    ['a missing bucket, which is our misconfiguration', upstream('NoSuchBucket', 404), BackendErrorCode.Failed],
    ['416', upstream('InvalidRange', 416), BackendErrorCode.InvalidRange],
    ['SlowDown', upstream('SlowDown', 503), BackendErrorCode.Unavailable],
    ['a 500', upstream('InternalError', 500), BackendErrorCode.Unavailable],
    ['an unknown 502', upstream('Unknown', 502), BackendErrorCode.Unavailable],
    ['connection refused', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), BackendErrorCode.Unavailable],
    ['a socket timeout', Object.assign(new Error('timed out'), { name: 'TimeoutError' }), BackendErrorCode.Unavailable],
    ['an idle timeout, not retried', Object.assign(new Error('no byte for 60000 ms'), { name: IDLE_TIMEOUT_ERROR }), BackendErrorCode.Unavailable],
    ['AccessDenied, meaning our credentials failed', upstream('AccessDenied', 403), BackendErrorCode.Failed],
    ['SignatureDoesNotMatch', upstream('SignatureDoesNotMatch', 403), BackendErrorCode.Failed],
    ['an abort', Object.assign(new Error('Request aborted'), { name: 'AbortError' }), BackendErrorCode.Aborted],
  ])('maps %s', (_name, error, code) => {
    const mapped = toBackendError(error, 'GetObject');
    expect(mapped.code).toBe(code);
    expect(mapped.cause).toBe(error);
    // Upstream codes stay in `cause`, for logs only.
    if ('$metadata' in error) expect(mapped.message).not.toContain(error.name);
  });
});
