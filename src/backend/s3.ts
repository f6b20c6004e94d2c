import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { S3BackendConfig } from '../config.js';
import { BackendError, BackendErrorCode, type Backend, type ByteRange, type PutOutput } from './backend.js';
import { BodyMeter, meterBody, onAbort, throwIfAborted, writeFailure } from './body.js';
import { IDLE_TIMEOUT_ERROR, isUpstreamNotFound, toBackendError } from './s3-errors.js';

export interface S3BackendOptions {
  /** Time to establish a TCP (and TLS) connection. Default: the config's connectTimeoutMs, else 5 s. */
  connectionTimeoutMs?: number;
  /**
   * A request fails after this long without a byte sent or received. Default: the config's
   * socketTimeoutMs, else 60 s: S3 itself drops an idle upload after about 20 s, and a download whose
   * reader stalls this long is not worth holding.
   */
  socketTimeoutMs?: number;
  /** Keep-alive sockets per agent. Default 256: every streaming request holds one for its duration. */
  maxSockets?: number;
  /** Part size for bodies of unknown length; each in-flight part is held in memory. Default 8 MiB. */
  unknownLengthPartSize?: number;
  /** Parts of an unknown-length body uploaded at once. Default 2, so one upload holds at most ~3 parts. */
  unknownLengthQueueSize?: number;
  /** The SDK's logger. Default: silent, as the SDK's own default writes some warnings to the console. */
  logger?: S3ClientConfig['logger'];
}

const MAX_DELETE_BATCH = 1000;
/**
 * What the SDK would say on its own is said better by the error it throws, which the gateway maps and
 * logs with the request: e.g. one console line per failed upload while the backend is down.
 */
const SILENT_SDK_LOGGER: NonNullable<S3ClientConfig['logger']> = { debug() {}, info() {}, warn() {}, error() {} };
/**
 * Tries per request, the SDK's standard retry with its short backoff (well under a second in all). Kept
 * explicit because it bounds how long an unreachable backend makes a tenant wait for its 503: at most
 * this many connect timeouts. A streamed body is never retried: it cannot be read twice.
 */
const MAX_ATTEMPTS = 3;
const MiB = 1024 * 1024;

function createClient(config: S3BackendConfig, options: S3BackendOptions): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 256 };
  const client = new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    forcePathStyle: true,
    maxAttempts: MAX_ATTEMPTS,
    // The default (WHEN_SUPPORTED) re-frames every streamed body as aws-chunked with a CRC32 trailer,
    // which many S3-compatible services (s3rver among them) store verbatim, and turns on response
    // checksum validation. We verify content ourselves (MD5/SHA-256 in the gateway), so send bodies as-is.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // DeleteObjects is the one operation S3 requires a checksum for. The SDK now sends only CRC32 there,
    // which several S3-compatible services refuse ("Missing required header: Content-MD5"); S3 itself
    // accepts Content-MD5, so the middleware below sends that instead (the SDK's documented MD5 fallback).
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? config.connectTimeoutMs ?? 5_000,
      socketTimeout: options.socketTimeoutMs ?? config.socketTimeoutMs ?? 60_000,
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent(agentOptions),
    },
    logger: options.logger ?? SILENT_SDK_LOGGER,
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === 'DeleteObjectsCommand' && request.headers && typeof request.body === 'string') {
        for (const header of Object.keys(request.headers)) {
          if (/^x-amz-(sdk-)?checksum-/i.test(header)) delete request.headers[header];
        }
        request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    // Low priority runs after the SDK's own checksum middleware in the same step, and before signing.
    { step: 'build', priority: 'low', name: 'deleteObjectsContentMd5' },
  );
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        // The SDK retries every TimeoutError. After a connect timeout that is worth it; after a whole idle
        // timeout it would multiply a silent backend's wait by the attempts, so that one is renamed to
        // something the retry logic does not know (s3-errors.ts still reads it as unavailable).
        if (error instanceof Error && error.name === 'TimeoutError' && /inactivity/i.test(error.message)) error.name = IDLE_TIMEOUT_ERROR;
        throw error;
      }
    },
    // The deserialize step runs once per attempt, inside the retry middleware.
    { step: 'deserialize', priority: 'low', name: 'idleTimeoutNotRetried' },
  );
  return client;
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replaceAll('"', '');
}

function rangeHeader(range: ByteRange | undefined): string | undefined {
  if (!range) return undefined;
  const { start, end } = range;
  if (!Number.isInteger(start) || start < 0 || (end !== undefined && (!Number.isInteger(end) || end < start))) {
    throw new BackendError(BackendErrorCode.InvalidRange, `range ${start}-${end ?? ''} is not a byte range`);
  }
  return `bytes=${start}-${end ?? ''}`;
}

/** The whole object's size from `Content-Range: bytes 0-9/1234`. */
function sizeFromContentRange(contentRange: string | undefined): number | undefined {
  const total = contentRange?.split('/')[1];
  return total === undefined || total === '*' ? undefined : Number(total);
}

/**
 * Stores objects in one bucket of Lyve Cloud or any S3-compatible service. Bodies are streamed through
 * to the upstream request; only a body of unknown length is cut into parts held in memory (bounded).
 */
export function createS3Backend(config: S3BackendConfig, options: S3BackendOptions = {}): Backend {
  const client = createClient(config, options);
  const Bucket = config.bucket;

  /**
   * Sends one request whose body is a stream of known length. The SDK only pipes the stream into the
   * request, so when the body fails we abort the request ourselves, or it would wait for bytes forever.
   */
  async function sendStreaming<T>(
    operation: string,
    body: Readable,
    contentLength: number,
    signal: AbortSignal | undefined,
    send: (meter: BodyMeter, abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(signal);
    const meter = new BodyMeter(contentLength);
    const metered = meterBody(body, meter);
    const request = new AbortController();
    meter.once('error', () => request.abort());
    const stopListening = onAbort(signal, () => request.abort());
    try {
      return await send(meter, request.signal);
    } catch (error) {
      throw writeFailure(error, metered, signal, (e) => toBackendError(e, operation));
    } finally {
      stopListening();
      metered.release();
    }
  }

  /**
   * lib-storage buffers parts of a body of unknown length. Its own abort returns before its in-flight
   * requests settle, so we abort by failing the body instead: the upload then stops, aborts the
   * multipart upload, and only then rejects.
   */
  async function putUnknownLength(key: string, body: Readable, contentType: string | undefined, signal: AbortSignal | undefined): Promise<PutOutput> {
    throwIfAborted(signal);
    const meter = new BodyMeter(undefined);
    const metered = meterBody(body, meter);
    const stopListening = onAbort(signal, () => meter.destroy(new Error('aborted')));
    try {
      const upload = new Upload({
        client,
        params: { Bucket, Key: key, Body: meter, ContentType: contentType },
        partSize: options.unknownLengthPartSize ?? 8 * MiB,
        queueSize: options.unknownLengthQueueSize ?? 2,
        leavePartsOnError: false,
      });
      const result = await upload.done();
      return { etag: unquote('ETag' in result ? result.ETag : undefined), size: meter.bytes };
    } catch (error) {
      throw writeFailure(error, metered, signal, (e) => toBackendError(e, 'Upload'));
    } finally {
      stopListening();
      metered.release();
    }
  }

  return {
    kind: 's3',

    async put({ key, body, contentLength, contentType, signal }) {
      if (contentLength === undefined) return putUnknownLength(key, body, contentType, signal);
      const output = await sendStreaming('PutObject', body, contentLength, signal, (meter, abortSignal) =>
        client.send(new PutObjectCommand({ Bucket, Key: key, Body: meter, ContentLength: contentLength, ContentType: contentType }), { abortSignal }),
      );
      return { etag: unquote(output.ETag), size: contentLength };
    },

    async get({ key, range, signal }) {
      const Range = rangeHeader(range);
      try {
        const output = await client.send(new GetObjectCommand({ Bucket, Key: key, Range }), signal ? { abortSignal: signal } : {});
        const contentLength = output.ContentLength ?? 0;
        const size = (Range ? sizeFromContentRange(output.ContentRange) : undefined) ?? contentLength;
        return { body: output.Body as Readable, contentLength, size };
      } catch (error) {
        throw toBackendError(error, 'GetObject');
      }
    },

    async head({ key, signal }) {
      try {
        const output = await client.send(new HeadObjectCommand({ Bucket, Key: key }), signal ? { abortSignal: signal } : {});
        return { size: output.ContentLength ?? 0, etag: unquote(output.ETag), lastModified: output.LastModified ?? new Date(0) };
      } catch (error) {
        if (isUpstreamNotFound(error)) return null;
        throw toBackendError(error, 'HeadObject');
      }
    },

    async delete({ key }) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
      } catch (error) {
        if (!isUpstreamNotFound(error)) throw toBackendError(error, 'DeleteObject');
      }
    },

    async deleteMany({ keys }) {
      const errors: { key: string; message: string }[] = [];
      for (let start = 0; start < keys.length; start += MAX_DELETE_BATCH) {
        const batch = keys.slice(start, start + MAX_DELETE_BATCH);
        try {
          const output = await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
          for (const failure of output.Errors ?? []) {
            if (failure.Code === 'NoSuchKey') continue;
            errors.push({ key: failure.Key ?? '', message: `upstream refused the delete${failure.Code ? ` (${failure.Code})` : ''}` });
          }
        } catch (error) {
          throw toBackendError(error, 'DeleteObjects');
        }
      }
      return { errors };
    },

    async list({ prefix, continuationToken, maxKeys }) {
      try {
        const output = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: continuationToken, MaxKeys: maxKeys }));
        const objects = (output.Contents ?? []).map((object) => ({
          key: object.Key ?? '',
          size: object.Size ?? 0,
          lastModified: object.LastModified ?? new Date(0),
        }));
        return output.IsTruncated && output.NextContinuationToken ? { objects, continuationToken: output.NextContinuationToken } : { objects };
      } catch (error) {
        throw toBackendError(error, 'ListObjectsV2');
      }
    },

    async createMultipart({ key, contentType }) {
      try {
        const output = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: key, ContentType: contentType }));
        if (!output.UploadId) throw new BackendError(BackendErrorCode.Failed, 'S3 CreateMultipartUpload returned no upload id');
        return { uploadId: output.UploadId };
      } catch (error) {
        throw toBackendError(error, 'CreateMultipartUpload');
      }
    },

    async uploadPart({ key, uploadId, partNumber, body, contentLength, signal }) {
      const output = await sendStreaming('UploadPart', body, contentLength, signal, (meter, abortSignal) =>
        client.send(
          new UploadPartCommand({ Bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: meter, ContentLength: contentLength }),
          { abortSignal },
        ),
      );
      return { etag: unquote(output.ETag) };
    },

    async completeMultipart({ key, uploadId, parts }) {
      try {
        const output = await client.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: `"${unquote(part.etag)}"` })) },
          }),
        );
        return { etag: unquote(output.ETag) };
      } catch (error) {
        throw toBackendError(error, 'CompleteMultipartUpload');
      }
    },

    async abortMultipart({ key, uploadId }) {
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId: uploadId }));
      } catch (error) {
        if (!isUpstreamNotFound(error)) throw toBackendError(error, 'AbortMultipartUpload');
      }
    },

    async ping() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (error) {
        throw toBackendError(error, 'HeadBucket');
      }
    },

    async close() {
      client.destroy();
    },
  };
}

/**
 * Creates the base bucket when it does not exist. For tests and a first start against a fresh
 * S3-compatible server; a production bucket (Lyve Cloud) is provisioned beforehand, and the app does
 * not call this on its own.
 */
export async function ensureBucket(config: S3BackendConfig, options: S3BackendOptions = {}): Promise<void> {
  const client = createClient(config, options);
  try {
    await client.send(new HeadBucketCommand({ Bucket: config.bucket }));
  } catch (error) {
    if (!isUpstreamNotFound(error) && (error as { name?: string }).name !== 'NoSuchBucket') throw toBackendError(error, 'HeadBucket');
    try {
      await client.send(new CreateBucketCommand({ Bucket: config.bucket }));
    } catch (createError) {
      if ((createError as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw toBackendError(createError, 'CreateBucket');
    }
  } finally {
    client.destroy();
  }
}
