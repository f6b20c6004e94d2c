import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { redactUrl } from '../log.js';
import { bytesIn, bytesOut, httpDuration, httpRequests, limitRefusals, type LimitRefusalKind, type Surface } from './metrics.js';
import type { RequestLogEntry } from './request-log.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The error code the client was answered with (S3 code or the JSON API's `code`), for the request log. */
    errorCode?: string;
    /** Set when the request was refused by a limit, for jt_limit_refusals_total. */
    limitRefusal?: LimitRefusalKind;
    /** Body bytes received and sent so far. */
    traffic?: { received: number; sent: number };
  }
}

/** Internal and S3 error codes that mean "refused by a limit", and the limit's kind. */
const REFUSAL_KINDS: Record<string, LimitRefusalKind> = {
  QUOTA_STORAGE_EXCEEDED: 'storage',
  QUOTA_BANDWIDTH_EXCEEDED: 'bandwidth',
  RATE_LIMITED: 'rate',
  ENTITY_TOO_LARGE: 'object_size',
  EntityTooLarge: 'object_size',
  ACCOUNT_SUSPENDED: 'account_status',
  ACCOUNT_DELETED: 'account_status',
};

/** The limit an error refused the request for, looking through S3Error's cause to the internal code. */
export function refusalKindOf(error: unknown): LimitRefusalKind | undefined {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && Object.hasOwn(REFUSAL_KINDS, code)) return REFUSAL_KINDS[code];
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Called where an error becomes a response: the code the client got, and the limit behind it if any. */
export function noteError(request: FastifyRequest, code: string, error: unknown): void {
  request.errorCode = code;
  request.limitRefusal ??= refusalKindOf(error);
}

function byteLength(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}

/**
 * Counts body bytes as they pass, without reading anything itself: the request's `push` is what Node's
 * HTTP parser calls with each piece of body, and the response's `write` / `end` are what every sender
 * (Fastify, a piped stream) calls. Listening for 'data' instead would start the body flowing before the
 * handler is ready for it.
 */
export function countTraffic(request: FastifyRequest, reply: FastifyReply): void {
  const traffic = { received: 0, sent: 0 };
  request.traffic = traffic;

  const raw = request.raw;
  const push = raw.push;
  raw.push = function countedPush(this: typeof raw, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk !== null) traffic.received += byteLength(chunk, encoding);
    return push.call(this, chunk, encoding);
  };

  const response: ServerResponse = reply.raw;
  const write = response.write;
  const end = response.end;
  response.write = function countedWrite(this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    traffic.sent += byteLength(chunk, rest[0]);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse['write'];
  response.end = function countedEnd(this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk !== 'function') traffic.sent += byteLength(chunk, rest[0]);
    return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as ServerResponse['end'];
}

/** What one answered request amounts to, for its log line, its metrics and its api_requests row. */
export interface RequestSummary {
  requestId: string;
  surface: Surface;
  /** The S3 operation, or the route pattern on the JSON APIs. */
  operation: string;
  accountId: string | null;
  method: string;
  url: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  errorCode: string | null;
  limitRefusal: LimitRefusalKind | null;
  remoteAddress: string | null;
  userAgent: string | null;
}

// The tenant REST API's prefix on the gateway listener; the S3 router never claims it.
const REST_PATH = /^\/api(?:[/?]|$)/;

export function summarize(request: FastifyRequest, reply: FastifyReply, listener: 'gateway' | 'admin'): RequestSummary {
  const url = request.raw.url ?? request.url;
  // 'NotS3' is the S3 router handing an unclaimed /api path back to the REST API's 404.
  const s3Operation = request.s3Operation === 'NotS3' ? undefined : request.s3Operation;
  const surface: Surface = listener === 'admin' ? 'admin' : s3Operation === undefined && REST_PATH.test(url) ? 'rest' : 's3';
  const route = request.routeOptions.url;
  // The S3 catch-all routes name no operation: a request the S3 router refused before naming one is 'unknown'.
  const operation = s3Operation ?? (route === undefined || route === '/' || route === '/*' ? 'unknown' : route);
  const status = reply.statusCode;
  // Node sends no body with these whatever was written.
  const bodiless = request.method === 'HEAD' || status === 204 || status === 304;
  const userAgent = request.headers['user-agent'];
  return {
    requestId: request.id,
    surface,
    operation,
    accountId: request.accountId ?? request.restTenant?.accountId ?? null,
    method: request.method,
    url: redactUrl(url),
    status,
    bytesIn: request.traffic?.received ?? 0,
    bytesOut: bodiless ? 0 : (request.traffic?.sent ?? 0),
    ms: reply.elapsedTime,
    errorCode: status >= 400 ? (request.errorCode ?? null) : null,
    limitRefusal: request.limitRefusal ?? null,
    remoteAddress: request.ip ?? null,
    userAgent: typeof userAgent === 'string' ? userAgent : null,
  };
}

export function recordMetrics(summary: RequestSummary): void {
  const { surface, operation } = summary;
  httpRequests.inc({ surface, operation, status: String(summary.status) });
  httpDuration.observe({ surface, operation }, summary.ms / 1000);
  if (summary.bytesIn > 0) bytesIn.inc({ surface }, summary.bytesIn);
  if (summary.bytesOut > 0) bytesOut.inc({ surface }, summary.bytesOut);
  if (summary.limitRefusal) limitRefusals.inc({ kind: summary.limitRefusal });
}

export function toLogEntry(summary: RequestSummary): RequestLogEntry {
  return {
    accountId: summary.accountId,
    method: summary.method,
    endpoint: summary.url,
    operation: summary.operation,
    statusCode: summary.status,
    responseTimeMs: summary.ms,
    bytesTransferred: summary.bytesIn + summary.bytesOut,
    errorCode: summary.errorCode,
    ipAddress: summary.remoteAddress,
    userAgent: summary.userAgent,
    at: new Date(),
  };
}
