import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import aws4 from 'aws4';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAwsChunked, encodeAwsChunkedParts } from '../../src/auth/aws-chunked-encoder.js';
import { deriveSigningKey } from '../../src/auth/canonical.js';
import { computeChecksum } from '../../src/auth/checksums.js';
import type { ChunkSigningContext } from '../../src/auth/sigv4.js';
import { provisionAccount, waitFor, type Provisioned } from '../helpers/admin.js';
import { accountFootprint, md5Of, printGatewayErrorsOnFailure, sha256Of, type AccountFootprint } from '../helpers/clients.js';
import { readAll, s3Client } from '../helpers/s3.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * PUTs that no SDK sends, written byte for byte on a socket and signed with aws4 (an implementation
 * independent of the gateway's): bad chunk signatures, wrong trailers and digests, short bodies, skewed
 * clocks, unknown payload modes. Each must be refused and leave nothing behind: no object row, no blob,
 * no staged write, no reservation, no new backend object, and the object already under the key intact.
 */

const BUCKET = 'default';
const VICTIM = 'victim.bin';
const REGION = 'us-east-1';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface SignedHead {
  /** Request line and headers, ending with the blank line. */
  head: string;
  canonicalRequest: string;
  stringToSign: string;
  signing: ChunkSigningContext;
}

const amzDateOf = (time: Date) => time.toISOString().replace(/[-:]|\.\d{3}/g, '');

const xml = new XMLParser({ parseTagValue: false, trimValues: false });
function errorOf(response: RawResponse): Record<string, string> {
  return (xml.parse(response.body) as { Error: Record<string, string> }).Error;
}

describe('raw HTTP PUTs that clients will not send', () => {
  let server: TestServer;
  let account: Provisioned;
  let s3: S3Client;
  let port: number;
  const victimBody = randomBytes(90_000);
  const existingBody = randomBytes(120_000);

  /** Signs a PUT of `key` with aws4; `headers` must name x-amz-content-sha256 and content-length. */
  function signPut(key: string, headers: Record<string, string>, options: { time?: Date; secret?: string } = {}): SignedHead {
    const amzDate = amzDateOf(options.time ?? new Date());
    const request = {
      host: `127.0.0.1:${port}`,
      method: 'PUT',
      path: `/${BUCKET}/${encodeURIComponent(key)}`,
      service: 's3',
      region: REGION,
      headers: { ...headers, 'X-Amz-Date': amzDate },
    };
    const secret = options.secret ?? account.apiSecret;
    const signer = new aws4.RequestSigner(request, { accessKeyId: account.apiKey, secretAccessKey: secret });
    signer.sign();
    const signed = request.headers as Record<string, string>;
    const seedSignature = /Signature=([0-9a-f]{64})$/.exec(signed.Authorization!)![1]!;
    const date = amzDate.slice(0, 8);
    return {
      head: `PUT ${request.path} HTTP/1.1\r\n${Object.entries(signed).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`,
      canonicalRequest: signer.canonicalString(),
      stringToSign: signer.stringToSign(),
      signing: { signingKey: deriveSigningKey(secret, date, REGION, 's3'), seedSignature, amzDate, scope: `${date}/${REGION}/s3/aws4_request` },
    };
  }

  /**
   * Writes the request on a fresh socket and reads one response. With `endAfter`, only that many body
   * bytes are written, then `beforeEnd` is awaited, then the socket is ended. Resolves null when the
   * connection closes without a complete response.
   */
  function send(head: string, body: Buffer, options: { endAfter?: number; beforeEnd?: () => Promise<unknown> } = {}): Promise<RawResponse | null> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let received = Buffer.alloc(0);
      let settled = false;
      const finish = (response: RawResponse | null) => {
        if (settled) return;
        settled = true;
        socket.destroy();
        resolve(response);
      };
      const parse = (): RawResponse | null => {
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return null;
        const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
        const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
        const length = Number(headers['content-length'] ?? 0);
        if (received.length < end + 4 + length) return null;
        return { status: Number(statusLine!.split(' ')[1]), headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8') };
      };
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const response = parse();
        if (response) finish(response);
      });
      // A server that answers before reading the whole body may reset the connection under our writes.
      socket.on('error', () => finish(parse()));
      socket.on('close', () => finish(parse()));
      socket.write(head);
      if (options.endAfter === undefined) {
        socket.write(body);
      } else {
        socket.write(body.subarray(0, options.endAfter));
        (options.beforeEnd ?? (async () => undefined))().then(
          () => socket.end(),
          (error: unknown) => {
            settled = true;
            socket.destroy();
            reject(error);
          },
        );
      }
    });
  }

  async function getVictim(): Promise<{ body: Buffer; etag: string | undefined }> {
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: VICTIM }));
    return { body: await readAll(got.Body as AsyncIterable<Uint8Array>), etag: got.ETag };
  }

  /**
   * Waits until the gateway has logged the refusal (by then its cleanup has run: the pipeline's finally
   * precedes the error answer), then compares everything the account holds with before.
   */
  async function expectNothingLeftBehind(before: AccountFootprint, refusals: number): Promise<void> {
    await waitFor('the gateway to log the refused PUT', async () => (refusalCount() >= refusals ? true : undefined));
    const after = await waitFor('the reservation to be released', async () => {
      const footprint = await accountFootprint(server, account);
      return footprint.reservedBytes === 0 && footprint.stagedWrites === 0 ? footprint : undefined;
    });
    expect(after).toEqual(before);
    expect(after).toMatchObject({ stagedWrites: 0, reservedBytes: 0, reservations: 0 });
    expect(await backendTempFiles()).toEqual([]);
    const victim = await getVictim();
    expect(victim.body.equals(victimBody)).toBe(true);
    expect(victim.etag).toBe(`"${md5Of(victimBody)}"`);
  }

  /** Bodies the fs backend is still receiving live in its staging folder until they are complete. */
  async function backendTempFiles(): Promise<string[]> {
    return readdir(path.join(server.dataDir, 'objects', server.config.bucketName, '.jt-staging', 'tmp')).catch(() => []);
  }

  const refusalCount = () => server.logs.filter((line) => line.msg === 's3 request refused' || line.msg === 's3 request failed').length;

  /** Runs `attempt` against the victim key and checks that it changed nothing. */
  async function refused<T>(attempt: () => Promise<T>): Promise<T> {
    const before = await accountFootprint(server, account);
    const refusalsBefore = refusalCount();
    const result = await attempt();
    await expectNothingLeftBehind(before, refusalsBefore + 1);
    return result;
  }

  printGatewayErrorsOnFailure(() => server);

  beforeAll(async () => {
    server = await startTestServer();
    port = Number(new URL(server.gatewayUrl).port);
    account = await provisionAccount(server);
    s3 = s3Client(server, account);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: VICTIM, Body: victimBody }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'existing.bin', Body: existingBody }));
  });
  afterAll(async () => {
    s3?.destroy();
    await server?.close();
  });

  it('signs a well-formed aws-chunked PUT the same way the gateway checks it (the baseline for the cases below)', async () => {
    const data = randomBytes(200_000);
    const headers = (decoded: number) => ({
      'Content-Encoding': 'aws-chunked',
      'X-Amz-Content-Sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'X-Amz-Decoded-Content-Length': String(decoded),
    });
    const probe = signPut('baseline.bin', { ...headers(data.length), 'Content-Length': '0' });
    const length = encodeAwsChunked(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', chunkSize: 65_536, signing: probe.signing }).length;
    const signed = signPut('baseline.bin', { ...headers(data.length), 'Content-Length': String(length) });
    const body = encodeAwsChunked(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', chunkSize: 65_536, signing: signed.signing });
    const response = await send(signed.head, body);
    expect(response?.status).toBe(200);
    expect(response?.headers.etag).toBe(`"${md5Of(data)}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'baseline.bin' }));
    expect((await readAll(got.Body as AsyncIterable<Uint8Array>)).equals(data)).toBe(true);
  });

  it('a bad chunk signature: 403 SignatureDoesNotMatch', async () => {
    const data = randomBytes(200_000);
    const response = await refused(async () => {
      const headers = {
        'Content-Encoding': 'aws-chunked',
        'X-Amz-Content-Sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'X-Amz-Decoded-Content-Length': String(data.length),
      };
      const signing = signPut(VICTIM, { ...headers, 'Content-Length': '0' }).signing;
      const length = encodeAwsChunked(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', chunkSize: 65_536, signing }).length;
      const signed = signPut(VICTIM, { ...headers, 'Content-Length': String(length) });
      const parts = encodeAwsChunkedParts(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', chunkSize: 65_536, signing: signed.signing });
      // The second chunk's signature, last hex digit changed: the first chunk verifies, the second does not.
      const second = parts[1]!.toString('latin1');
      const at = second.indexOf('\r\n') - 1;
      parts[1] = Buffer.concat([Buffer.from(second.slice(0, at) + (second[at] === '0' ? '1' : '0'), 'latin1'), parts[1]!.subarray(at + 1)]);
      return send(signed.head, Buffer.concat(parts));
    });
    expect(response?.status).toBe(403);
    expect(errorOf(response!).Code).toBe('SignatureDoesNotMatch');
  });

  it('a wrong CRC32 trailer on STREAMING-UNSIGNED-PAYLOAD-TRAILER: 400 BadDigest', async () => {
    const data = randomBytes(200_000);
    const wrongCrc = await computeChecksum('CRC32', Buffer.concat([data, Buffer.from('x')]));
    const response = await refused(async () => {
      const body = encodeAwsChunked(data, { mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', chunkSize: 65_536, trailers: { 'x-amz-checksum-crc32': wrongCrc } });
      const signed = signPut(VICTIM, {
        'Content-Encoding': 'aws-chunked',
        'Content-Length': String(body.length),
        'X-Amz-Content-Sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'X-Amz-Decoded-Content-Length': String(data.length),
        'X-Amz-Trailer': 'x-amz-checksum-crc32',
        'X-Amz-Sdk-Checksum-Algorithm': 'CRC32',
      });
      return send(signed.head, body);
    });
    expect(response?.status).toBe(400);
    expect(errorOf(response!).Code).toBe('BadDigest');
  });

  it.each([
    ['UNSIGNED-PAYLOAD', false],
    ['STREAMING-UNSIGNED-PAYLOAD-TRAILER', true],
  ])('a body shorter than its Content-Length (%s): the connection ends or 400', async (mode, chunked) => {
    const data = randomBytes(1024 * 1024);
    const response = await refused(async () => {
      const body = chunked
        ? encodeAwsChunked(data, { mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', chunkSize: 65_536, trailers: { 'x-amz-checksum-crc32': await computeChecksum('CRC32', data) } })
        : data;
      const signed = signPut(VICTIM, {
        'Content-Length': String(body.length),
        'X-Amz-Content-Sha256': mode,
        ...(chunked && { 'Content-Encoding': 'aws-chunked', 'X-Amz-Decoded-Content-Length': String(data.length), 'X-Amz-Trailer': 'x-amz-checksum-crc32' }),
      });
      // Ends the connection only once the upload is under way: reserved, staged, bytes at the backend.
      const underWay = () =>
        waitFor('the partial upload to reach the backend', async () => {
          const footprint = await accountFootprint(server, account);
          return footprint.reservedBytes > 0 && footprint.stagedWrites === 1 && (await backendTempFiles()).length > 0 ? true : undefined;
        });
      return send(signed.head, body, { endAfter: 600_000, beforeEnd: underWay });
    });
    if (response !== null) expect(response.status).toBe(400);
  });

  it('a hex x-amz-content-sha256 that does not match the body: 400 XAmzContentSHA256Mismatch, in S3 error XML', async () => {
    const data = randomBytes(150_000);
    const response = await refused(async () => {
      const signed = signPut(VICTIM, { 'Content-Length': String(data.length), 'X-Amz-Content-Sha256': sha256Of(randomBytes(16)) });
      return send(signed.head, data);
    });
    expect(response?.status).toBe(400);
    expect(response?.headers['content-type']).toMatch(/^application\/xml/);
    const error = errorOf(response!);
    expect(error.Code).toBe('XAmzContentSHA256Mismatch');
    expect(error.Message).toMatch(/\S/);
    expect(error.Resource).toBe(`/${BUCKET}/${VICTIM}`);
    expect(error.RequestId).toEqual(expect.any(String));
    expect(response?.headers['x-amz-request-id']).toBe(error.RequestId);
    expect(response?.headers['x-amz-id-2']).toBeTruthy();
    expect(error.S3ComputedContentSHA256).toBe(sha256Of(data));
  });

  it("an x-amz-content-sha256 naming an existing blob's content, with other bytes: refused, nothing linked", async () => {
    const other = randomBytes(existingBody.length);
    const existingSha = sha256Of(existingBody);
    const response = await refused(async () => {
      const signed = signPut(VICTIM, { 'Content-Length': String(other.length), 'X-Amz-Content-Sha256': existingSha });
      return send(signed.head, other);
    });
    expect(response?.status).toBe(400);
    expect(errorOf(response!).Code).toBe('XAmzContentSHA256Mismatch');
    const blob = (await accountFootprint(server, account)).blobs.find((b) => b.sha256 === existingSha);
    expect(blob?.refcount).toBe(1);
    const existing = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'existing.bin' }));
    expect((await readAll(existing.Body as AsyncIterable<Uint8Array>)).equals(existingBody)).toBe(true);
  });

  it('a wrong Content-MD5: 400 BadDigest', async () => {
    const data = randomBytes(150_000);
    const response = await refused(async () => {
      const signed = signPut(VICTIM, {
        'Content-Length': String(data.length),
        'Content-MD5': createHash('md5').update('something else').digest('base64'),
        'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
      });
      return send(signed.head, data);
    });
    expect(response?.status).toBe(400);
    expect(errorOf(response!).Code).toBe('BadDigest');
  });

  it('a request dated 20 minutes ago: 403 RequestTimeTooSkewed', async () => {
    const data = randomBytes(50_000);
    const response = await refused(async () => {
      const signed = signPut(VICTIM, { 'Content-Length': String(data.length), 'X-Amz-Content-Sha256': sha256Of(data) }, { time: new Date(Date.now() - 20 * 60_000) });
      return send(signed.head, data);
    });
    expect(response?.status).toBe(403);
    expect(errorOf(response!).Code).toBe('RequestTimeTooSkewed');
  });

  it.each([
    ['STREAMING-UNSIGNED-PAYLOAD', 400, 'InvalidArgument'],
    ['STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD', 501, 'NotImplemented'],
  ])('an unsupported payload mode (%s): %i %s', async (mode, status, code) => {
    const data = randomBytes(50_000);
    const response = await refused(async () => {
      const signed = signPut(VICTIM, { 'Content-Length': String(data.length), 'X-Amz-Content-Sha256': mode });
      return send(signed.head, data);
    });
    expect(response?.status).toBe(status);
    expect(errorOf(response!).Code).toBe(code);
  });

  it('a wrong secret: 403 SignatureDoesNotMatch with the StringToSign and CanonicalRequest the client signed', async () => {
    const data = randomBytes(50_000);
    let signed: SignedHead | undefined;
    const response = await refused(async () => {
      signed = signPut(VICTIM, { 'Content-Length': String(data.length), 'X-Amz-Content-Sha256': sha256Of(data) }, { secret: `${account.apiSecret}x` });
      return send(signed.head, data);
    });
    expect(response?.status).toBe(403);
    const error = errorOf(response!);
    expect(error.Code).toBe('SignatureDoesNotMatch');
    expect(error.AWSAccessKeyId).toBe(account.apiKey);
    expect(error.StringToSign).toBe(signed!.stringToSign);
    expect(error.CanonicalRequest).toBe(signed!.canonicalRequest);
    expect(response?.headers['x-amz-request-id']).toBe(error.RequestId);
  });
});
