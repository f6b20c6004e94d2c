import type { Readable } from 'node:stream';

/**
 * Where bytes live. Keys are chosen by the gateway (users/<id>/...), never taken from a tenant's request.
 * Every method streams: no implementation holds a whole object in memory.
 */
export interface Backend {
  readonly kind: 'fs' | 's3';
  /**
   * Settles only after every request it started has settled, and when it rejects nothing is stored
   * under `key`. A signal that fires after the whole body was handed over may lose the race with the
   * final commit, in which case put resolves: a caller cleaning up after an abort deletes `key` after
   * put settles, whatever the outcome.
   */
  put(input: PutInput): Promise<PutOutput>;
  get(input: GetInput): Promise<GetOutput>;
  /** null when the object does not exist. */
  head(input: { key: string; signal?: AbortSignal }): Promise<HeadOutput | null>;
  /** Succeeds when the object is already gone. */
  delete(input: { key: string }): Promise<void>;
  deleteMany(input: { keys: string[] }): Promise<DeleteManyOutput>;
  list(input: ListInput): Promise<ListOutput>;
  createMultipart(input: { key: string; contentType?: string }): Promise<{ uploadId: string }>;
  /** The body rules of put apply. NotFound when the upload was completed, aborted or never created. */
  uploadPart(input: UploadPartInput): Promise<{ etag: string }>;
  /**
   * Parts in ascending order, every one but the last at least 5 MiB, as S3 requires. Resolves to the
   * backend's ETag, S3's multipart form `<md5 of the parts' md5s>-<count>` on fs and S3 itself.
   */
  completeMultipart(input: CompleteMultipartInput): Promise<{ etag: string }>;
  /** Succeeds when the upload is already gone. */
  abortMultipart(input: { key: string; uploadId: string }): Promise<void>;
  /** Throws when the backend cannot be reached (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PutInput {
  key: string;
  /**
   * Read to its end. When it errors, put rejects with that same error, so the caller's own codes
   * (quota, checksum) survive. On any failure put stops reading it but does not destroy it: the caller
   * owns it and may still want to answer on the same connection.
   */
  body: Readable;
  /** Known length in bytes; undefined for a body of unknown length. A body of another length fails the put. */
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
  /** Last byte, inclusive; clamped to the object's last byte. Omitted: to the end (`bytes=start-`). */
  end?: number;
}

export interface GetInput {
  key: string;
  range?: ByteRange;
  signal?: AbortSignal;
}

export interface GetOutput {
  /** Holds a file handle or a connection until consumed or destroyed. */
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
  /** Required, as in S3's UploadPart: an S3 backend could not send a part of unknown length without spooling it. */
  contentLength: number;
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
