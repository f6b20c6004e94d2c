import type { Readable } from 'node:stream';

/**
 * Where bytes live. Keys are chosen by the gateway (users/<id>/...), never taken from a tenant's request.
 * Every method streams: no implementation holds a whole object in memory.
 */
export interface Backend {
  readonly kind: 'fs' | 's3';
  put(input: PutInput): Promise<PutOutput>;
  get(input: GetInput): Promise<GetOutput>;
  /** null when the object does not exist. */
  head(input: { key: string; signal?: AbortSignal }): Promise<HeadOutput | null>;
  /** Succeeds when the object is already gone. */
  delete(input: { key: string }): Promise<void>;
  deleteMany(input: { keys: string[] }): Promise<DeleteManyOutput>;
  list(input: ListInput): Promise<ListOutput>;
  createMultipart(input: { key: string; contentType?: string }): Promise<{ uploadId: string }>;
  uploadPart(input: UploadPartInput): Promise<{ etag: string }>;
  completeMultipart(input: CompleteMultipartInput): Promise<{ etag: string }>;
  /** Succeeds when the upload is already gone. */
  abortMultipart(input: { key: string; uploadId: string }): Promise<void>;
  /** Throws when the backend cannot be reached (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PutInput {
  key: string;
  body: Readable;
  /** Known length in bytes; undefined for a body of unknown length. */
  contentLength?: number;
  contentType?: string;
  signal?: AbortSignal;
}

export interface PutOutput {
  /** The backend's ETag, unquoted. */
  etag: string;
  size: number;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export interface GetInput {
  key: string;
  range?: ByteRange;
  signal?: AbortSignal;
}

export interface GetOutput {
  body: Readable;
  /** Bytes in body (the range's length when a range was asked for). */
  contentLength: number;
  /** The whole object's size. */
  size: number;
}

export interface HeadOutput {
  size: number;
  etag: string;
  lastModified: Date;
}

export interface DeleteManyOutput {
  errors: { key: string; message: string }[];
}

export interface ListInput {
  prefix: string;
  continuationToken?: string;
  maxKeys?: number;
}

export interface ListOutput {
  objects: { key: string; size: number; lastModified: Date }[];
  /** Present when more keys follow. */
  continuationToken?: string;
}

export interface UploadPartInput {
  key: string;
  uploadId: string;
  partNumber: number;
  body: Readable;
  contentLength?: number;
  signal?: AbortSignal;
}

export interface CompleteMultipartInput {
  key: string;
  uploadId: string;
  parts: { partNumber: number; etag: string }[];
}

/** Internal error codes a backend raises; the surfaces translate them. */
export const BackendErrorCode = {
  NotFound: 'BACKEND_NOT_FOUND',
  Unavailable: 'BACKEND_UNAVAILABLE',
  InvalidRange: 'BACKEND_INVALID_RANGE',
  Aborted: 'BACKEND_ABORTED',
  Failed: 'BACKEND_FAILED',
} as const;
export type BackendErrorCode = (typeof BackendErrorCode)[keyof typeof BackendErrorCode];

export class BackendError extends Error {
  constructor(readonly code: BackendErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendError';
  }
}
