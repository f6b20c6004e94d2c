import type { FastifyError } from 'fastify';
import { BackendErrorCode } from './backend/backend.js';
import { DB_UNAVAILABLE } from './db/db.js';
import { QuotaError } from './quota/errors.js';

/** The one error shape of every JSON API (admin and tenant REST): `{ error, code }`, plus named extras. */
export interface JsonErrorBody {
  error: string;
  code: string;
  [extra: string]: unknown;
}

export interface JsonErrorResponse {
  statusCode: number;
  body: JsonErrorBody;
  /** True for a failure the caller did not cause (a 5xx); those are logged with their stack. */
  unexpected: boolean;
  /** Headers the answer carries (Retry-After on a rate limit). */
  headers?: Record<string, string>;
}

/** An error a JSON API answers as it is: its status, its stable code, its message. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

interface AjvIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/data/new_tier` -> `data.new_tier`; a missing property is named by itself, not by its parent. */
function fieldOf(issue: AjvIssue): string {
  const parent = (issue.instancePath ?? '').split('/').filter(Boolean).join('.');
  const missing = issue.keyword === 'required' ? issue.params?.missingProperty : undefined;
  const child = typeof missing === 'string' ? missing : issue.keyword === 'additionalProperties' ? issue.params?.additionalProperty : undefined;
  if (typeof child === 'string') return parent ? `${parent}.${child}` : child;
  return parent;
}

function validationMessage(field: string, issue: AjvIssue): string {
  switch (issue.keyword) {
    case 'required':
      return `${field} is required`;
    case 'additionalProperties':
      return `${field} is not a known field`;
    case 'enum':
      return `${field} must be one of ${((issue.params?.allowedValues as unknown[] | undefined) ?? []).join(', ')}`;
    default:
      return `${field || 'body'} ${issue.message ?? 'is invalid'}`;
  }
}

// Fastify's own messages for these echo nothing of the body, but they speak of Fastify, not of the API.
const FASTIFY_ERRORS: Record<string, { statusCode: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { statusCode: 400, code: 'INVALID_JSON', message: 'Request body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { statusCode: 400, code: 'INVALID_JSON', message: 'Request body is empty; a JSON document is expected' },
  FST_ERR_CTP_BODY_TOO_LARGE: { statusCode: 413, code: 'BODY_TOO_LARGE', message: 'Request body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type must be application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { statusCode: 400, code: 'BAD_REQUEST', message: 'Request body size did not match Content-Length' },
};

/**
 * Maps anything thrown while serving a JSON API to its answer. Messages of unexpected errors never reach
 * the client: they may quote SQL, a backend's reply or a value that should stay private.
 */
export function toJsonError(error: unknown): JsonErrorResponse {
  if (error instanceof HttpError) {
    return { statusCode: error.statusCode, body: { error: error.message, code: error.code, ...error.extra }, unexpected: false };
  }
  if (error instanceof QuotaError && error.code === 'RATE_LIMITED') {
    const retryAfter = Math.max(1, Math.ceil(error.details.retryAfterSeconds ?? 1));
    return {
      statusCode: 429,
      body: { error: error.message, code: error.code, limit: error.details.limit, retry_after_seconds: retryAfter },
      unexpected: false,
      headers: { 'retry-after': String(retryAfter) },
    };
  }
  if (error instanceof QuotaError && error.code === 'ENTITY_TOO_LARGE') {
    return { statusCode: 413, body: { error: error.message, code: error.code, limit_bytes: error.details.limit }, unexpected: false };
  }
  if (error instanceof QuotaError) {
    // Storage or bandwidth: the message names the figures; used and quota are given in bytes as well.
    return { statusCode: 403, body: { error: error.message, code: error.code, used_bytes: error.details.used, quota_bytes: error.details.quota }, unexpected: false };
  }
  // The database or the backend cannot be reached now: a retry later may succeed, and nothing was half done.
  const code = (error as { code?: unknown } | null)?.code;
  if (code === DB_UNAVAILABLE || code === BackendErrorCode.Unavailable) {
    return { statusCode: 503, body: { error: 'Service temporarily unavailable; retry later', code: 'SERVICE_UNAVAILABLE' }, unexpected: true };
  }
  const fastifyError = error as Partial<FastifyError> & { validation?: AjvIssue[] };
  if (Array.isArray(fastifyError.validation) && fastifyError.validation.length > 0) {
    const issue = fastifyError.validation[0]!;
    const field = fieldOf(issue);
    return { statusCode: 400, body: { error: validationMessage(field, issue), code: 'VALIDATION_ERROR', field }, unexpected: false };
  }
  const known = fastifyError.code ? FASTIFY_ERRORS[fastifyError.code] : undefined;
  if (known) return { statusCode: known.statusCode, body: { error: known.message, code: known.code }, unexpected: false };
  // A JSON parser's SyntaxError carries a 400 from Fastify; its message may quote the body, so it is replaced.
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return { statusCode: 400, body: { error: 'Request body is not valid JSON', code: 'INVALID_JSON' }, unexpected: false };
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { statusCode: status, body: { error: fastifyError.message ?? 'Bad request', code: 'BAD_REQUEST' }, unexpected: false };
  }
  return { statusCode: 500, body: { error: 'Internal server error', code: 'INTERNAL_ERROR' }, unexpected: true };
}
