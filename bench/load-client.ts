import http from 'node:http';
import { BenchBody, bodySha256Hex, preparePrefixHash, uniqueTail } from './body.js';
import { describeFailure, plainBodyWriter, S3Requester, signedChunkedWriter, type TargetEndpoint } from './http-client.js';
import { exitWithParent, isMainModule } from './processes.js';
import { EMPTY_SHA256, sha256Hex, signedChunkedLength, STREAMING_SIGNED_PAYLOAD, UNSIGNED_PAYLOAD } from './sigv4-client.js';

/**
 * The load generator, run as a child process of its own so its CPU is not the measured process's: on a
 * 2-core machine it still competes for cores, which the report states. The orchestrator sends one job at
 * a time over IPC and gets its result back; every job is bounded by count and by time.
 */

export type PutMode = 'unsigned' | 'sha256' | 'chunked-signed';
export const CHUNK_SIZE = 64 * 1024;

export type Job =
  | { kind: 'prepare'; sizes: number[] }
  | { kind: 'small'; target: TargetEndpoint; op: 'PUT' | 'GET' | 'HEAD'; size: number; concurrency: number; maxOps: number; maxMs: number; keyPrefix: string; keyCount: number; tag: string }
  | { kind: 'put'; target: TargetEndpoint; size: number; mode: PutMode; keys: string[]; concurrency: number; timeoutMs: number; tag: string }
  | { kind: 'get'; target: TargetEndpoint; keys: string[]; size: number; concurrency: number; timeoutMs: number }
  | { kind: 'multipart'; target: TargetEndpoint; key: string; size: number; partSize: number; parallel: number; timeoutMs: number; tag: string }
  | { kind: 'delete'; target: TargetEndpoint; keys: string[] };

export interface SmallResult {
  ops: number;
  elapsedMs: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  error?: string;
}

export interface TransferResult {
  ops: number;
  bytes: number;
  elapsedMs: number;
  /** 10^6 bytes per second. */
  mbPerSec: number;
  error?: string;
}

export type JobResult = SmallResult | TransferResult | { done: true; error?: string };

const SMALL_TIMEOUT_MS = 10_000;

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

/** Runs `task(i)` for i = 0..count-1 (or until `keepGoing` says stop), `concurrency` at a time. */
async function pool(count: number, concurrency: number, keepGoing: () => boolean, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && keepGoing()) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

function newAgent(concurrency: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
}

async function runSmall(job: Extract<Job, { kind: 'small' }>): Promise<SmallResult> {
  const agent = newAgent(job.concurrency);
  const requester = new S3Requester(job.target, agent);
  const latencies = new Float64Array(job.maxOps);
  let ops = 0;
  let error: string | undefined;
  const started = performance.now();
  const deadline = started + job.maxMs;
  try {
    await pool(job.maxOps, job.concurrency, () => error === undefined && performance.now() < deadline, async (index) => {
      const opStarted = performance.now();
      let result;
      if (job.op === 'PUT') {
        const body = new BenchBody(job.size, uniqueTail(`${job.tag}/${index}`));
        result = await requester.request({ method: 'PUT', key: `${job.keyPrefix}${index}`, payloadHash: bodySha256Hex(body), body: body.toBuffer(), timeoutMs: SMALL_TIMEOUT_MS });
      } else {
        result = await requester.request({ method: job.op, key: `${job.keyPrefix}${index % job.keyCount}`, payloadHash: EMPTY_SHA256, timeoutMs: SMALL_TIMEOUT_MS });
        if (job.op === 'GET' && result.status === 200 && result.bytes !== job.size) {
          error ??= `GET returned ${result.bytes} bytes, expected ${job.size}`;
          return;
        }
      }
      if (result.status >= 300) {
        error ??= describeFailure(job.op, result);
        return;
      }
      latencies[ops++] = performance.now() - opStarted;
    });
  } catch (failure) {
    error ??= `${job.op} failed: ${(failure as Error).message}`;
  } finally {
    agent.destroy();
  }
  const elapsedMs = performance.now() - started;
  const sorted = latencies.subarray(0, ops).sort();
  return { ops, elapsedMs, opsPerSec: (ops * 1000) / elapsedMs, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), ...(error ? { error } : {}) };
}

function transferResult(ops: number, bytes: number, started: number, error: string | undefined): TransferResult {
  const elapsedMs = performance.now() - started;
  return { ops, bytes, elapsedMs, mbPerSec: bytes / 1e6 / (elapsedMs / 1000), ...(error ? { error } : {}) };
}

async function runPut(job: Extract<Job, { kind: 'put' }>): Promise<TransferResult> {
  const agent = newAgent(job.concurrency);
  const requester = new S3Requester(job.target, agent);
  // Hash work the client could do before the request (the prefix of a hex-SHA-256 body) is done here.
  if (job.mode === 'sha256') preparePrefixHash(job.size);
  const bodies = job.keys.map((key) => new BenchBody(job.size, uniqueTail(`${job.tag}/${key}`)));
  const hashes = job.mode === 'sha256' ? bodies.map(bodySha256Hex) : [];
  let ops = 0;
  let bytes = 0;
  let error: string | undefined;
  const started = performance.now();
  try {
    await pool(job.keys.length, job.concurrency, () => error === undefined, async (index) => {
      const body = bodies[index]!;
      const key = job.keys[index]!;
      const result =
        job.mode === 'chunked-signed'
          ? await requester.request({
              method: 'PUT',
              key,
              payloadHash: STREAMING_SIGNED_PAYLOAD,
              signedHeaders: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(job.size) },
              contentLength: signedChunkedLength(job.size, CHUNK_SIZE),
              body: signedChunkedWriter(body, CHUNK_SIZE),
              timeoutMs: job.timeoutMs,
            })
          : await requester.request({
              method: 'PUT',
              key,
              payloadHash: job.mode === 'sha256' ? hashes[index]! : UNSIGNED_PAYLOAD,
              contentLength: job.size,
              body: plainBodyWriter(body),
              timeoutMs: job.timeoutMs,
            });
      if (result.status >= 300) {
        error ??= describeFailure('PUT', result);
        return;
      }
      ops++;
      bytes += job.size;
    });
  } catch (failure) {
    error ??= `PUT failed: ${(failure as Error).message}`;
  } finally {
    agent.destroy();
  }
  return transferResult(ops, bytes, started, error);
}

async function runGet(job: Extract<Job, { kind: 'get' }>): Promise<TransferResult> {
  const agent = newAgent(job.concurrency);
  const requester = new S3Requester(job.target, agent);
  let ops = 0;
  let bytes = 0;
  let error: string | undefined;
  const started = performance.now();
  try {
    await pool(job.keys.length, job.concurrency, () => error === undefined, async (index) => {
      const result = await requester.request({ method: 'GET', key: job.keys[index]!, payloadHash: EMPTY_SHA256, timeoutMs: job.timeoutMs });
      if (result.status >= 300) error ??= describeFailure('GET', result);
      else if (result.bytes !== job.size) error ??= `GET returned ${result.bytes} bytes, expected ${job.size}`;
      else {
        ops++;
        bytes += result.bytes;
      }
    });
  } catch (failure) {
    error ??= `GET failed: ${(failure as Error).message}`;
  } finally {
    agent.destroy();
  }
  return transferResult(ops, bytes, started, error);
}

/** CreateMultipartUpload, parts in parallel (UNSIGNED-PAYLOAD), CompleteMultipartUpload; timed end to end. */
async function runMultipart(job: Extract<Job, { kind: 'multipart' }>): Promise<TransferResult> {
  const agent = newAgent(job.parallel);
  const requester = new S3Requester(job.target, agent);
  const body = new BenchBody(job.size, uniqueTail(`${job.tag}/${job.key}`));
  const partCount = Math.ceil(job.size / job.partSize);
  const etags: string[] = [];
  let error: string | undefined;
  let uploadId: string | undefined;
  const started = performance.now();
  try {
    const created = await requester.request({ method: 'POST', key: job.key, query: { uploads: '' }, payloadHash: EMPTY_SHA256, keepText: true, timeoutMs: SMALL_TIMEOUT_MS });
    uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.text)?.[1];
    if (created.status >= 300 || uploadId === undefined) throw new Error(created.status >= 300 ? describeFailure('CreateMultipartUpload', created) : 'CreateMultipartUpload returned no UploadId');
    const id = uploadId;
    await pool(partCount, job.parallel, () => error === undefined, async (index) => {
      const start = index * job.partSize;
      const end = Math.min(job.size, start + job.partSize);
      const result = await requester.request({
        method: 'PUT',
        key: job.key,
        query: { partNumber: String(index + 1), uploadId: id },
        payloadHash: UNSIGNED_PAYLOAD,
        contentLength: end - start,
        body: plainBodyWriter(body, start, end),
        timeoutMs: job.timeoutMs,
      });
      const etag = result.headers.etag;
      if (result.status >= 300 || typeof etag !== 'string') error ??= result.status >= 300 ? describeFailure('UploadPart', result) : 'UploadPart returned no ETag';
      else etags[index] = etag;
    });
    if (error !== undefined) throw new Error(error);
    const xml = `<CompleteMultipartUpload>${etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const payload = Buffer.from(xml);
    const completed = await requester.request({ method: 'POST', key: job.key, query: { uploadId: id }, payloadHash: sha256Hex(payload), body: payload, keepText: true, timeoutMs: job.timeoutMs });
    // CompleteMultipartUpload may fail inside a 200, as S3 documents.
    if (completed.status >= 300 || /<Error>/.test(completed.text)) throw new Error(describeFailure('CompleteMultipartUpload', completed));
    return transferResult(partCount, job.size, started, undefined);
  } catch (failure) {
    error ??= (failure as Error).message;
    if (uploadId !== undefined) {
      await requester.request({ method: 'DELETE', key: job.key, query: { uploadId }, payloadHash: EMPTY_SHA256, timeoutMs: SMALL_TIMEOUT_MS }).catch(() => undefined);
    }
    return transferResult(0, 0, started, error);
  } finally {
    agent.destroy();
  }
}

async function runDelete(job: Extract<Job, { kind: 'delete' }>): Promise<{ done: true; error?: string }> {
  const agent = newAgent(4);
  const requester = new S3Requester(job.target, agent);
  let error: string | undefined;
  try {
    await pool(job.keys.length, 4, () => true, async (index) => {
      const result = await requester.request({ method: 'DELETE', key: job.keys[index]!, payloadHash: EMPTY_SHA256, timeoutMs: 60_000 }).catch((e: Error) => e);
      if (result instanceof Error) error ??= `DELETE failed: ${result.message}`;
      else if (result.status >= 300) error ??= describeFailure('DELETE', result);
    });
  } finally {
    agent.destroy();
  }
  return { done: true, ...(error ? { error } : {}) };
}

export async function runJob(job: Job): Promise<JobResult> {
  switch (job.kind) {
    case 'prepare':
      for (const size of job.sizes) preparePrefixHash(size);
      return { done: true };
    case 'small':
      return runSmall(job);
    case 'put':
      return runPut(job);
    case 'get':
      return runGet(job);
    case 'multipart':
      return runMultipart(job);
    case 'delete':
      return runDelete(job);
  }
}

if (isMainModule(import.meta.url)) {
  exitWithParent();
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: { id: number; job: Job }) => {
    runJob(message.job).then(
      (result) => process.send?.({ id: message.id, result }),
      (error: unknown) => process.send?.({ id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
  });
  process.send?.({ ready: true });
}
