import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ensureBucket } from '../../src/backend/s3.js';

/** A real S3 server for tests: s3rver (npm) in this process, on a free port, storing under a temp folder. */
export interface TestS3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  close(): Promise<void>;
}

// s3rver 3.7 ships no types; these are the parts of it this helper touches.
interface S3rverObject {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: Record<string, string>;
}
interface StoredObject {
  key: string;
  size: number;
  lastModifiedDate: Date;
  metadata: Record<string, string>;
  content?: Readable;
  range?: { start: number; end: number };
}
interface S3rverStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getBucket(bucket: string): Promise<unknown>;
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<StoredObject | null>;
  listObjects(bucket: string, options: { prefix?: string }): Promise<{ objects: StoredObject[] }>;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  putObjectMultipart(bucket: string, uploadId: string, parts: { number: number; etag: string }[]): Promise<{ size: number; md5: string }>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
}
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | undefined>;
  status: number;
  body: unknown;
}
interface S3rverApp {
  store: S3rverStore;
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
  httpServer?: Server;
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3ErrorClass = new (code: string, message: string, detail?: Record<string, unknown>) => Error;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverApp;
const S3Error = require('s3rver/lib/models/error') as S3ErrorClass;

const MIN_PART_BYTES = 5 * 1024 * 1024;

export interface S3rverOptions {
  /** A fixed port (to start it again where a gateway expects it); default a free one. */
  port?: number;
  /** Its storage folder; one given here is kept on close, so a restart finds the objects again. */
  directory?: string;
  bucket?: string;
}

export async function startS3rver(options: S3rverOptions = {}): Promise<TestS3Server> {
  const directory = options.directory ?? (await mkdtemp(path.join(tmpdir(), 'jt-s3rver-')));
  const server = new S3rver({ address: '127.0.0.1', port: options.port ?? 0, silent: true, directory });
  behaveLikeS3(server);
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const bucket = options.bucket ?? `jt-test-${randomBytes(4).toString('hex')}`;
  await ensureBucket({ endpoint, region: 'us-east-1', bucket, ...credentials });
  return {
    endpoint,
    bucket,
    ...credentials,
    async close() {
      server.httpServer?.closeAllConnections();
      await server.close();
      if (options.directory === undefined) await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Where s3rver 3.7 departs from S3 in ways the backend contract relies on, made to match S3 here (in
 * the fake, never in the backend):
 *
 * 1. It writes an object straight to its final file, so a body that fails midway leaves a readable
 *    partial object (S3 stores nothing). Write to a temp file and rename instead.
 * 2. Its CompleteMultipartUpload returns the MD5 of the whole object instead of S3's
 *    `md5(part md5s)-<count>`, and checks neither part ETags nor the 5 MiB minimum part size.
 * 3. It has no AbortMultipartUpload (405 MethodNotAllowed), and UploadPart to an unknown upload id
 *    silently creates it instead of answering 404 NoSuchUpload.
 * 4. ListObjectsV2 answers 500 whenever a page is truncated, because its continuation token uses DES,
 *    which OpenSSL 3 (Node >= 17) no longer offers; and it orders keys by folder walk, not by UTF-8
 *    bytes (`a/b` before `a-c`). ListObjectsV2 is answered here instead.
 * 5. It reads `Range: bytes=0-0` as `bytes=0-` and sends the whole object.
 *
 * Left as is: it does not verify SigV4 signatures (only that the access key id is S3RVER), so it
 * cannot catch a signing bug, and it ignores Content-MD5 and x-amz-checksum-* headers.
 */
function behaveLikeS3(server: S3rverApp): void {
  const store = server.store;
  const uploadDir = (bucket: string, uploadId: string) => path.join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  const noSuchUpload = (uploadId: string) => new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });

  store.putObject = async function putObjectAtomically(object) {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(path.dirname(objectPath), { recursive: true });
    const temp = `${objectPath}.${randomUUID()}.partial`;
    const hash = createHash('md5');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    try {
      await pipeline(content, meter, createWriteStream(temp));
      await rename(temp, objectPath);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    const md5 = hash.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size, md5 };
  };

  const assemble = store.putObjectMultipart.bind(store);
  store.putObjectMultipart = async function completeLikeS3(bucket, uploadId, parts) {
    const dir = uploadDir(bucket, uploadId);
    const key = await readFile(path.join(dir, 'key'), 'utf8').catch(() => {
      throw noSuchUpload(uploadId);
    });
    const partMd5s: Buffer[] = [];
    for (const [index, part] of parts.entries()) {
      if (index > 0 && part.number <= parts[index - 1]!.number) {
        throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order.');
      }
      const partPath = path.join(dir, String(part.number));
      const md5 = await readFile(`${partPath}.md5`, 'utf8').catch(() => null);
      if (md5 !== part.etag) throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found.');
      if (index < parts.length - 1 && (await stat(partPath)).size < MIN_PART_BYTES) {
        throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
      }
      partMd5s.push(Buffer.from(md5, 'hex'));
    }
    const result = await assemble(bucket, uploadId, parts);
    const etag = `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${parts.length}`;
    await writeFile(store.getResourcePath(bucket, key, 'object.md5'), etag);
    return { ...result, md5: etag };
  };

  const getObject = store.getObject.bind(store);
  store.getObject = async function getObjectRangeLikeS3(bucket, key, options) {
    const object = await getObject(bucket, key, options);
    if (object?.content && object.range && options?.end === 0) {
      object.content.destroy();
      object.range.end = 0;
      object.content = createReadStream(store.getResourcePath(bucket, key, 'object'), object.range);
    }
    return object;
  };

  async function multipartUploadsLikeS3(ctx: KoaContext, bucket: string, uploadId: string, next: () => Promise<void>): Promise<void> {
    if (!/^[0-9a-f]+$/.test(uploadId) || !(await stat(uploadDir(bucket, uploadId)).catch(() => null))) throw noSuchUpload(uploadId);
    if (ctx.method !== 'DELETE') return next();
    await rm(uploadDir(bucket, uploadId), { recursive: true, force: true });
    ctx.status = 204;
  }

  async function listObjectsV2LikeS3(ctx: KoaContext, bucket: string): Promise<void> {
    if (!(await store.getBucket(bucket))) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
    const prefix = ctx.query.prefix ?? '';
    const maxKeys = Math.min(Number(ctx.query['max-keys'] ?? 1000), 1000);
    const token = ctx.query['continuation-token'];
    const startAfter = token !== undefined ? Buffer.from(token, 'base64url').toString('utf8') : ctx.query['start-after'];
    const { objects } = await store.listObjects(bucket, { prefix });
    const following = objects
      .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)))
      .filter((object) => startAfter === undefined || Buffer.compare(Buffer.from(object.key), Buffer.from(startAfter)) > 0);
    const page = following.slice(0, maxKeys);
    const truncated = following.length > page.length;
    ctx.body = {
      ListBucketResult: {
        '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
        Name: bucket,
        Prefix: prefix,
        ContinuationToken: token,
        NextContinuationToken: truncated ? Buffer.from(page.at(-1)!.key).toString('base64url') : undefined,
        KeyCount: page.length,
        MaxKeys: maxKeys,
        IsTruncated: truncated,
        Contents: page.map((object) => ({
          Key: object.key,
          LastModified: object.lastModifiedDate.toISOString(),
          ETag: object.metadata.etag,
          Size: object.size,
          StorageClass: 'STANDARD',
        })),
      },
    };
  }

  // Just before the router, so a plain-object body still goes through s3rver's XML encoder.
  server.middleware.splice(server.middleware.length - 1, 0, async function likeS3(ctx, next) {
    const [bucket = '', key] = ctx.path.slice(1).split('/').map(decodeURIComponent);
    const uploadId = ctx.query.uploadId;
    if (uploadId !== undefined) return multipartUploadsLikeS3(ctx, bucket, uploadId, next);
    if (ctx.method === 'GET' && !key && ctx.query['list-type'] === '2' && ctx.query.delimiter === undefined) return listObjectsV2LikeS3(ctx, bucket);
    return next();
  });
}
