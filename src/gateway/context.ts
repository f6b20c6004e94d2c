import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { RequestHeaders } from '../auth/canonical.js';
import type { KeyRecord } from '../auth/key-store.js';
import type { VerifiedSigV4 } from '../auth/sigv4.js';
import type { AppDeps } from '../deps.js';
import type { Bucket } from '../store/buckets.js';
import type { S3Operation, S3OperationName } from './router.js';
import type { XmlDoc } from './xml.js';

/** Everything an operation needs about its request; only the response writer touches the reply. */
export interface RequestContext {
  deps: AppDeps;
  requestId: string;
  log: FastifyBaseLogger;
  account: KeyRecord;
  auth: VerifiedSigV4;
  /** The raw request: its body is the object's bytes, never parsed or buffered by the framework. */
  request: IncomingMessage;
  /** Lower-case names; repeated headers kept apart, as SigV4 and checksum rules need. */
  headers: RequestHeaders;
  query: URLSearchParams;
  /** Aborted when the client goes away, so streams to the backend stop with it. */
  signal: AbortSignal;
  /** The account's bucket of that name, or NoSuchBucket. */
  bucket(name: string): Promise<Bucket>;
}

export type ResponseHeaders = Record<string, string | number | undefined>;

export interface S3Result {
  status?: number;
  headers?: ResponseHeaders;
  body?: XmlDoc | Readable;
}

export type OperationOf<Name extends S3OperationName> = Extract<S3Operation, { name: Name }>;

export type OperationHandler<Name extends S3OperationName> = (op: OperationOf<Name>, ctx: RequestContext) => Promise<S3Result>;

/** The operations served; one module each under ops/. */
export type OperationTable = { [Name in S3OperationName]?: OperationHandler<Name> };

/** Reads one header's value; repeated values are joined as HTTP folds them. */
export function header(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(',');
}
