import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ChecksumAlgorithm as SdkChecksumAlgorithm,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { buildQueryString } from '@smithy/core/protocols';
import type { HttpRequest } from '@smithy/types';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { canonicalUri } from './canonical.js';
import { computeChecksum, type ChecksumAlgorithm } from './checksums.js';
import { AuthError } from './errors.js';
import { createPayloadVerifier } from './payload.js';
import { createSigV4Verifier, type SigV4Request } from './sigv4.js';

/**
 * Fixtures signed by the real @aws-sdk/client-s3: a request handler captures the
 * signed request instead of sending it, and we verify what a gateway would receive.
 */

const ACCESS_KEY = 'jt_test_sdkfixture0000000000000000000';
const SECRET = 'jts_sdk-fixture-secret-0000000000000000000000';
const verifier = createSigV4Verifier({ lookupSecrets: async (id) => (id === ACCESS_KEY ? [SECRET] : null) });

interface Captured {
  request: SigV4Request;
  body: Buffer;
}

async function readBody(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string' || body instanceof Uint8Array) return Buffer.from(body);
  const parts: Buffer[] = [];
  for await (const part of body as AsyncIterable<Uint8Array | string>) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}

function capturingClient(config: Partial<S3ClientConfig> = {}): { client: S3Client; captured: Captured[] } {
  const captured: Captured[] = [];
  const requestHandler: NonNullable<S3ClientConfig['requestHandler']> = {
    async handle(request: HttpRequest) {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value;
      // What node-http-handler puts on the wire: the path as serialized, the query built by buildQueryString.
      const query = request.query ? buildQueryString(request.query) : '';
      captured.push({ request: { method: request.method, path: request.path, query, headers }, body: await readBody(request.body) });
      const xml = '<?xml version="1.0" encoding="UTF-8"?><Result></Result>';
      return { response: { statusCode: 200, headers: { 'content-type': 'application/xml' }, body: Readable.from([Buffer.from(xml)]) } };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  };
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: 'http://localhost:9000',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET },
    requestHandler,
    ...config,
  });
  return { client, captured };
}

/** Sends a command and returns the one request it produced (the fake response may not parse; that is fine). */
async function capture(send: (client: S3Client) => Promise<unknown>, config?: Partial<S3ClientConfig>): Promise<Captured> {
  const { client, captured } = capturingClient(config);
  await send(client).catch(() => undefined);
  expect(captured).toHaveLength(1);
  return captured[0]!;
}

/** Splits into reads of 1 to 700 bytes, like a slow network would. */
function smallReads(body: Buffer, seed: number): Buffer[] {
  const parts: Buffer[] = [];
  let state = seed;
  for (let offset = 0; offset < body.length; ) {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    const size = 1 + (state % 700);
    parts.push(body.subarray(offset, offset + size));
    offset += size;
  }
  return parts;
}

async function runPayload(captured: Captured, body: Buffer[] = [captured.body]) {
  const auth = await verifier.verify(captured.request);
  const payload = createPayloadVerifier(auth, captured.request.headers);
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  await pipeline([Readable.from(body), ...payload.transforms, sink]);
  return { auth, payload, data: Buffer.concat(out) };
}

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

const ODD_KEYS = [
  'plain.txt',
  "a b+c!*'()~é/x",
  'dir//double/./dot/../x',
  'ünï©ødé/日本語 ファイル.txt',
  '%2F-literal-percent%-and-#-and-?',
  'trailing/',
  'sp ace/  two  spaces ',
  '&=;:@$,[]{}^`|\\"<>',
];

describe('@aws-sdk/client-s3 header-signed requests', () => {
  it('PutObject with a Buffer body: hex SHA-256 payload and a CRC32 header, for odd keys', async () => {
    for (const key of ODD_KEYS) {
      const body = Buffer.from(`contents of ${key}`);
      const captured = await capture((c) => c.send(new PutObjectCommand({ Bucket: 'bucket', Key: key, Body: body, ContentType: 'text/plain', Metadata: { note: ' spaced   value ' } })));
      // The SDK sends the path already in canonical form, so the first canonical candidate is the one that matches.
      expect(canonicalUri(captured.request.path)).toBe(captured.request.path);
      const { auth, payload, data } = await runPayload(captured);
      expect(auth.payloadMode, key).toBe('SHA256');
      expect(auth.payloadSha256).toBe(createHash('sha256').update(body).digest('hex'));
      expect(payload.checksumAlgorithm).toBe('CRC32');
      expect(data.equals(body)).toBe(true);
      expect(payload.tap.result.etag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);
    }
  });

  const algorithms: (SdkChecksumAlgorithm | undefined)[] = [undefined, 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];
  it.each(algorithms)('PutObject with a stream body (checksum %s): aws-chunked with a trailer, decoded across small reads', async (algorithm) => {
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31 + 7) & 0xff));
    const stream = Readable.from([data.subarray(0, 65536), data.subarray(65536, 200_000), data.subarray(200_000)]);
    const captured = await capture((c) =>
      c.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'streamed/ob ject', Body: stream, ContentLength: data.length, ...(algorithm && { ChecksumAlgorithm: algorithm }) })),
    );
    expect(captured.request.headers['content-encoding']).toBe('aws-chunked');
    const { auth, payload, data: decoded } = await runPayload(captured, smallReads(captured.body, 42));
    const expected = (algorithm ?? 'CRC32') as ChecksumAlgorithm;
    expect(auth.payloadMode).toBe('STREAMING-UNSIGNED-PAYLOAD-TRAILER');
    expect(payload.checksumAlgorithm).toBe(expected);
    expect(payload.declaredLength).toBe(data.length);
    expect(decoded.equals(data)).toBe(true);
    expect(payload.tap.result.checksums[expected]).toBe(await computeChecksum(expected, data));
    expect(payload.decoder!.trailers.get(`x-amz-checksum-${expected.toLowerCase()}`)).toBe(payload.tap.result.checksums[expected]);
  });

  it("PutObject with requestChecksumCalculation 'WHEN_REQUIRED': UNSIGNED-PAYLOAD, no checksum", async () => {
    const data = Buffer.from('when required');
    const captured = await capture((c) => c.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'k', Body: Readable.from([data]), ContentLength: data.length })), {
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    const { auth, payload, data: decoded } = await runPayload(captured);
    expect(auth.payloadMode).toBe('UNSIGNED-PAYLOAD');
    expect(payload.checksumAlgorithm).toBeUndefined();
    expect(decoded.equals(data)).toBe(true);
  });

  it('reads, lists, copies and deletes, path-style and virtual-hosted', async () => {
    const commands: ((client: S3Client) => Promise<unknown>)[] = [
      (c) => c.send(new GetObjectCommand({ Bucket: 'bucket', Key: "a b+c!*'()~é/x", Range: 'bytes=0-9', ResponseContentDisposition: 'attachment; filename="x y.txt"' })),
      (c) => c.send(new HeadObjectCommand({ Bucket: 'bucket', Key: 'ünï©ødé/日本語', IfNoneMatch: '"abc"' })),
      (c) => c.send(new ListObjectsV2Command({ Bucket: 'bucket', Prefix: "a b+c/é*!'()~", Delimiter: '/', StartAfter: 'x&y=z', MaxKeys: 7, EncodingType: 'url' })),
      (c) => c.send(new ListObjectsV2Command({ Bucket: 'bucket', ContinuationToken: 'tok+en/==', FetchOwner: true })),
      (c) => c.send(new ListObjectsCommand({ Bucket: 'bucket', Prefix: 'p%20q', Marker: 'm+n' })),
      (c) => c.send(new CopyObjectCommand({ Bucket: 'bucket', Key: 'copy of é', CopySource: 'bucket/source%20key%2B+.txt', MetadataDirective: 'REPLACE' })),
      (c) => c.send(new DeleteObjectCommand({ Bucket: 'bucket', Key: 'gone (1).txt' })),
      (c) => c.send(new DeleteObjectsCommand({ Bucket: 'bucket', Delete: { Objects: [{ Key: 'a' }, { Key: 'b c' }], Quiet: true } })),
    ];
    for (const forcePathStyle of [true, false]) {
      for (const command of commands) {
        const captured = await capture(command, { forcePathStyle, endpoint: 'http://s3.jt.test:9000' });
        const { auth } = await runPayload(captured);
        expect(auth.accessKeyId).toBe(ACCESS_KEY);
      }
    }
  });
});

describe('tampering with an SDK-signed request', () => {
  async function putCapture(): Promise<Captured> {
    return capture((c) => c.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'doc.txt', Body: Buffer.from('the original body'), ContentType: 'text/plain' })));
  }
  const edit = (captured: Captured, change: Partial<SigV4Request>, headers: Record<string, string> = {}): SigV4Request => ({
    ...captured.request,
    ...change,
    headers: { ...captured.request.headers, ...headers },
  });

  it('any changed signed part fails with SignatureDoesNotMatch', async () => {
    const captured = await putCapture();
    const { authorization, 'x-amz-date': amzDate } = captured.request.headers as Record<string, string>;
    const flippedSignature = authorization!.replace(/Signature=([0-9a-f])/, (_, c: string) => `Signature=${c === '0' ? '1' : '0'}`);
    const nextSecond = amzDate!.replace(/(\d)Z$/, (_, d: string) => `${(Number(d) + 1) % 10}Z`);
    const tampered: SigV4Request[] = [
      edit(captured, {}, { authorization: flippedSignature }),
      edit(captured, {}, { 'x-amz-date': nextSecond }),
      edit(captured, {}, { 'content-type': 'text/html' }),
      edit(captured, {}, { host: 'localhost:9001' }),
      edit(captured, { path: '/bucket/other.txt' }),
      edit(captured, { query: `${captured.request.query}&acl` }),
      edit(captured, { method: 'POST' }),
    ];
    for (const request of tampered) expect((await rejection(verifier.verify(request))).code).toBe('SignatureDoesNotMatch');
  });

  it('a changed body fails with XAmzContentSHA256Mismatch', async () => {
    const captured = await putCapture();
    const error = await rejection(runPayload(captured, [Buffer.from('the 0riginal body')]));
    expect(error.code).toBe('XAmzContentSHA256Mismatch');
  });

  it('a changed streamed body or trailer checksum fails with BadDigest', async () => {
    const data = Buffer.alloc(100_000, 'q');
    const captured = await capture((c) => c.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'k', Body: Readable.from([data]), ContentLength: data.length })));
    const body = Buffer.from(captured.body);
    body[5000]! ^= 1;
    expect((await rejection(runPayload(captured, [body]))).code).toBe('BadDigest');
    const trailer = Buffer.from(captured.body.toString('latin1').replace(/x-amz-checksum-crc32:[^\r]+/, 'x-amz-checksum-crc32:AAAAAA=='), 'latin1');
    expect((await rejection(runPayload(captured, [trailer]))).code).toBe('BadDigest');
    expect((await rejection(runPayload(captured, [captured.body.subarray(0, 50_000)]))).code).toBe('IncompleteBody');
  });
});

describe('@aws-sdk/s3-request-presigner URLs', () => {
  const { client } = capturingClient();

  function requestFromUrl(url: string, method: string, headers: Record<string, string> = {}): SigV4Request {
    // Not new URL(): it would resolve ./ and ../ segments that S3 keeps.
    const afterScheme = url.slice(url.indexOf('//') + 2);
    const slash = afterScheme.indexOf('/');
    const host = afterScheme.slice(0, slash);
    const target = afterScheme.slice(slash);
    const q = target.indexOf('?');
    return { method, path: target.slice(0, q), query: target.slice(q + 1), headers: { host, ...headers } };
  }

  it('verifies presigned GET, PUT, HEAD and DELETE for odd keys, up to 7 days', async () => {
    const signingDate = new Date(Date.now() - 60_000);
    for (const key of ODD_KEYS) {
      const options = { expiresIn: 604800, signingDate };
      const cases: [Promise<string>, string, Record<string, string>][] = [
        [getSignedUrl(client, new GetObjectCommand({ Bucket: 'bucket', Key: key, ResponseContentType: 'text/plain; charset=utf-8' }), options), 'GET', {}],
        [getSignedUrl(client, new PutObjectCommand({ Bucket: 'bucket', Key: key, ContentType: 'image/png' }), options), 'PUT', { 'content-type': 'image/png' }],
        [getSignedUrl(client, new HeadObjectCommand({ Bucket: 'bucket', Key: key }), options), 'HEAD', {}],
        [getSignedUrl(client, new DeleteObjectCommand({ Bucket: 'bucket', Key: key }), options), 'DELETE', {}],
      ];
      for (const [signed, method, headers] of cases) {
        const url = await signed;
        const auth = await verifier.verify(requestFromUrl(url, method, headers));
        expect(auth).toMatchObject({ authType: 'presigned', payloadMode: 'UNSIGNED-PAYLOAD', expiresInSeconds: 604800 });
      }
    }
  });

  it('refuses an expired, altered or over-long presigned URL', async () => {
    const signingDate = new Date(Date.now() - 3_700_000);
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'bucket', Key: 'k' }), { expiresIn: 3600, signingDate });
    const expired = await rejection(verifier.verify(requestFromUrl(url, 'GET')));
    expect(expired).toMatchObject({ code: 'AccessDenied', message: 'Request has expired' });
    const fresh = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'bucket', Key: 'k' }), { expiresIn: 3600 });
    const longer = await rejection(verifier.verify(requestFromUrl(fresh.replace('X-Amz-Expires=3600', 'X-Amz-Expires=7200'), 'GET')));
    expect(longer.code).toBe('SignatureDoesNotMatch');
    const otherKey = await rejection(verifier.verify(requestFromUrl(fresh.replace('/bucket/k?', '/bucket/K?'), 'GET')));
    expect(otherKey.code).toBe('SignatureDoesNotMatch');
    const week = await rejection(verifier.verify(requestFromUrl(fresh.replace('X-Amz-Expires=3600', 'X-Amz-Expires=604801'), 'GET')));
    expect(week.code).toBe('AuthorizationQueryParametersError');
  });
});
