import { BackendError, BackendErrorCode, type Backend } from '../backend/backend.js';
import { backendErrors } from './metrics.js';

/**
 * Only the backend's own failures count: a missing object, a range past the end or a client that went
 * away are answers, and a put that rejects with its body's error (quota, checksum) is the caller's.
 */
function isBackendFailure(error: unknown): boolean {
  return error instanceof BackendError && (error.code === BackendErrorCode.Unavailable || error.code === BackendErrorCode.Failed);
}

function counted<A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args) => {
    try {
      return await call(...args);
    } catch (error) {
      if (isBackendFailure(error)) backendErrors.inc({ operation });
      throw error;
    }
  };
}

/** The same backend, counting its failures in jt_backend_errors_total by operation. */
export function countBackendErrors(backend: Backend): Backend {
  return {
    kind: backend.kind,
    put: counted('put', (input) => backend.put(input)),
    get: counted('get', (input) => backend.get(input)),
    head: counted('head', (input) => backend.head(input)),
    delete: counted('delete', (input) => backend.delete(input)),
    deleteMany: counted('deleteMany', (input) => backend.deleteMany(input)),
    list: counted('list', (input) => backend.list(input)),
    createMultipart: counted('createMultipart', (input) => backend.createMultipart(input)),
    uploadPart: counted('uploadPart', (input) => backend.uploadPart(input)),
    completeMultipart: counted('completeMultipart', (input) => backend.completeMultipart(input)),
    abortMultipart: counted('abortMultipart', (input) => backend.abortMultipart(input)),
    ping: counted('ping', () => backend.ping()),
    close: () => backend.close(),
  };
}
