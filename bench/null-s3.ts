import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exitWithParent, isMainModule } from './processes.js';

/**
 * An S3 endpoint that stores nothing: the backend for the bench, so what is measured is the gateway and
 * not a storage server. PUT bodies are read to their end and dropped; an object's size is remembered so
 * GET can answer with that many bytes from one reused buffer. Signatures are never checked.
 * Answers in S3's XML for what a gateway's backend sends: PutObject, CopyObject, GetObject (Range),
 * HeadObject, HeadBucket, CreateBucket, the multipart calls, ListObjectsV2 (empty), DeleteObject(s).
 */

const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const SERVE_BUFFER = randomBytes(1024 * 1024);

export interface NullS3Options {
  /** Size served for a key never PUT; undefined: such keys answer 404 NoSuchKey. */
  defaultObjectSize?: number;
}

interface StoredObject {
  size: number;
  etag: string;
  lastModified: Date;
}

interface OpenUpload {
  key: string;
  parts: Map<number, number>;
}

/** A quoted, MD5-shaped ETag, without hashing the body (which would cost the backend what we measure elsewhere). */
function fakeEtag(seed: string, suffix = ''): string {
  return `"${createHash('md5').update(seed).digest('hex')}${suffix}"`;
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendXml(res: http.ServerResponse, status: number, body: string): void {
  const payload = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': payload.length });
  res.end(payload);
}

function sendError(res: http.ServerResponse, status: number, code: string, resource: string): void {
  if (res.req.method === 'HEAD') {
    res.writeHead(status).end();
    return;
  }
  sendXml(res, status, `<Error><Code>${code}</Code><Message>${code}</Message><Resource>${xmlEscape(resource)}</Resource><RequestId>null</RequestId></Error>`);
}

/** Reads a body to its end, keeping at most `keep` bytes of it (for XML requests). */
function drain(req: http.IncomingMessage, keep = 0): Promise<{ bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const kept: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      if (bytes < keep) kept.push(chunk.subarray(0, keep - bytes));
      bytes += chunk.length;
    });
    req.once('end', () => resolve({ bytes, text: Buffer.concat(kept).toString('utf8') }));
    req.once('error', reject);
  });
}

/** Writes `length` bytes from the shared buffer, starting at the object's `offset`, with backpressure. */
function writeRepeated(res: http.ServerResponse, offset: number, length: number): void {
  let position = offset;
  const end = offset + length;
  const writeMore = (): void => {
    while (position < end) {
      const start = position % SERVE_BUFFER.length;
      const count = Math.min(SERVE_BUFFER.length - start, end - position);
      position += count;
      const last = position >= end;
      const slice = SERVE_BUFFER.subarray(start, start + count);
      if (last) {
        res.end(slice);
        return;
      }
      if (!res.write(slice)) {
        res.once('drain', writeMore);
        return;
      }
    }
    res.end();
  };
  writeMore();
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` against a size; null: serve the whole object; 'invalid': 416. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'invalid' {
  if (header === undefined) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    return suffix === 0 ? 'invalid' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  if (start >= size) return 'invalid';
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  return end < start ? null : { start, end };
}

export function createNullS3Server(options: NullS3Options = {}): http.Server {
  const objects = new Map<string, StoredObject>();
  const uploads = new Map<string, OpenUpload>();
  let uploadCounter = 0;

  const lookup = (key: string): StoredObject | undefined =>
    objects.get(key) ??
    (options.defaultObjectSize === undefined ? undefined : { size: options.defaultObjectSize, etag: fakeEtag(key), lastModified: new Date(0) });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://null-s3');
    const [, bucket = '', ...keyParts] = url.pathname.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    const query = url.searchParams;
    const method = req.method ?? 'GET';
    const objectId = `${bucket}/${key}`;

    if (bucket === '') {
      await drain(req);
      return sendXml(res, 200, `<ListAllMyBucketsResult xmlns="${S3_XMLNS}"><Buckets/></ListAllMyBucketsResult>`);
    }

    if (key === '') {
      if (method === 'POST' && query.has('delete')) {
        const { text } = await drain(req, 4 * 1024 * 1024);
        const keys = [...text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1] ?? '');
        for (const deleted of keys) objects.delete(`${bucket}/${deleted}`);
        const quiet = /<Quiet>\s*true\s*<\/Quiet>/i.test(text);
        const entries = quiet ? '' : keys.map((k) => `<Deleted><Key>${k}</Key></Deleted>`).join('');
        return sendXml(res, 200, `<DeleteResult xmlns="${S3_XMLNS}">${entries}</DeleteResult>`);
      }
      await drain(req);
      if (method === 'GET' && query.has('location')) return sendXml(res, 200, `<LocationConstraint xmlns="${S3_XMLNS}"/>`);
      if (method === 'GET' && query.has('uploads')) {
        return sendXml(res, 200, `<ListMultipartUploadsResult xmlns="${S3_XMLNS}"><Bucket>${xmlEscape(bucket)}</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`);
      }
      if (method === 'GET') {
        const prefix = xmlEscape(query.get('prefix') ?? '');
        return sendXml(
          res,
          200,
          `<ListBucketResult xmlns="${S3_XMLNS}"><Name>${xmlEscape(bucket)}</Name><Prefix>${prefix}</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`,
        );
      }
      // HeadBucket, CreateBucket, DeleteBucket: every bucket exists and is empty.
      res.writeHead(method === 'DELETE' ? 204 : 200).end();
      return;
    }

    const uploadId = query.get('uploadId');
    if (method === 'PUT' && uploadId !== null) {
      const upload = uploads.get(uploadId);
      const { bytes } = await drain(req);
      if (!upload) return sendError(res, 404, 'NoSuchUpload', objectId);
      const partNumber = Number(query.get('partNumber'));
      upload.parts.set(partNumber, bytes);
      res.writeHead(200, { etag: fakeEtag(`${uploadId}/${partNumber}/${bytes}`) }).end();
      return;
    }

    if (method === 'PUT') {
      const copySource = req.headers['x-amz-copy-source'];
      const { bytes } = await drain(req);
      if (typeof copySource === 'string') {
        const source = objects.get(decodeURIComponent(copySource.replace(/^\//, '').split('?')[0] ?? ''));
        if (!source) return sendError(res, 404, 'NoSuchKey', copySource);
        const copy = { size: source.size, etag: source.etag, lastModified: new Date() };
        objects.set(objectId, copy);
        return sendXml(res, 200, `<CopyObjectResult><LastModified>${copy.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(copy.etag)}</ETag></CopyObjectResult>`);
      }
      // An aws-chunked body is framed; its object is the decoded length the client declared.
      const decoded = Number(req.headers['x-amz-decoded-content-length']);
      const size = Number.isFinite(decoded) && decoded >= 0 ? decoded : bytes;
      const stored = { size, etag: fakeEtag(`${objectId}/${size}/${uploadCounter++}`), lastModified: new Date() };
      objects.set(objectId, stored);
      res.writeHead(200, { etag: stored.etag }).end();
      return;
    }

    if (method === 'POST' && query.has('uploads')) {
      await drain(req);
      const id = `null-${++uploadCounter}-${randomBytes(6).toString('hex')}`;
      uploads.set(id, { key: objectId, parts: new Map() });
      return sendXml(res, 200, `<InitiateMultipartUploadResult xmlns="${S3_XMLNS}"><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`);
    }

    if (method === 'POST' && uploadId !== null) {
      const { text } = await drain(req, 4 * 1024 * 1024);
      const upload = uploads.get(uploadId);
      if (!upload) return sendError(res, 404, 'NoSuchUpload', objectId);
      const listed = [...text.matchAll(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/g)].map((m) => Number(m[1]));
      const numbers = listed.length > 0 ? listed : [...upload.parts.keys()];
      const size = numbers.reduce((sum, n) => sum + (upload.parts.get(n) ?? 0), 0);
      uploads.delete(uploadId);
      const stored = { size, etag: fakeEtag(`${uploadId}/${size}`, `-${numbers.length}`), lastModified: new Date() };
      objects.set(objectId, stored);
      return sendXml(
        res,
        200,
        `<CompleteMultipartUploadResult xmlns="${S3_XMLNS}"><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(stored.etag)}</ETag></CompleteMultipartUploadResult>`,
      );
    }

    if (method === 'DELETE') {
      await drain(req);
      if (uploadId !== null) uploads.delete(uploadId);
      else objects.delete(objectId);
      res.writeHead(204).end();
      return;
    }

    if (method === 'GET' || method === 'HEAD') {
      await drain(req);
      const object = lookup(objectId);
      if (!object) return sendError(res, 404, 'NoSuchKey', objectId);
      const headers: http.OutgoingHttpHeaders = {
        etag: object.etag,
        'last-modified': object.lastModified.toUTCString(),
        'content-type': 'application/octet-stream',
        'accept-ranges': 'bytes',
      };
      const range = method === 'GET' ? parseRange(req.headers.range, object.size) : null;
      if (range === 'invalid') {
        res.setHeader('content-range', `bytes */${object.size}`);
        return sendError(res, 416, 'InvalidRange', objectId);
      }
      const start = range?.start ?? 0;
      const length = range ? range.end - range.start + 1 : object.size;
      if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${object.size}`;
      res.writeHead(range ? 206 : 200, { ...headers, 'content-length': length });
      if (method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      writeRepeated(res, start, length);
      return;
    }

    await drain(req);
    sendError(res, 501, 'NotImplemented', objectId);
  }

  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, 'InternalError', String(error));
      else res.destroy();
    });
  });
  // Uploads of many GiB must not be cut off by Node's default 5-minute request timer.
  server.requestTimeout = 0;
  return server;
}

if (isMainModule(import.meta.url)) {
  exitWithParent();
  const size = process.env.NULL_S3_DEFAULT_SIZE;
  const server = createNullS3Server(size ? { defaultObjectSize: Number(size) } : {});
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
