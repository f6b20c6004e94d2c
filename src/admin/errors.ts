import { BackendError, BackendErrorCode } from '../backend/backend.js';
import { toJsonError, type JsonErrorResponse } from '../http-errors.js';
import { AccountError, type AccountErrorCode } from './accounts.js';

const ACCOUNT_ERROR_STATUS: Record<AccountErrorCode, number> = {
  ACCOUNT_NOT_FOUND: 404,
  ACCOUNT_EXISTS: 409,
  ACCOUNT_DELETED: 409,
  INVALID_TIER: 400,
  VALIDATION_ERROR: 400,
};

/** Every admin answer that is not a success, from whatever was thrown: `{ error, code, ...details }`. */
export function adminErrorResponse(error: unknown): JsonErrorResponse {
  if (error instanceof AccountError) {
    return { statusCode: ACCOUNT_ERROR_STATUS[error.code], body: { error: error.message, code: error.code, ...error.details }, unexpected: false };
  }
  // The backend's own message may name our bucket or endpoint; the caller only needs to know to retry.
  if (error instanceof BackendError && (error.code === BackendErrorCode.Unavailable || error.code === BackendErrorCode.Failed)) {
    return { statusCode: 503, body: { error: 'Storage backend unavailable; retry later', code: 'BACKEND_UNAVAILABLE' }, unexpected: true };
  }
  return toJsonError(error);
}
