import { Crc32c as AwsCryptoCrc32c } from '@aws-crypto/crc32c';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { encodeAwsChunked } from './aws-chunked-encoder.js';
import { deriveSigningKey } from './canonical.js';
import {
  checksumAlgorithmOfHeader,
  computeChecksum,
  crc32c,
  createChecksum,
  isWellFormedChecksum,
  md5Base64,
  parseContentMd5,
} from './checksums.js';
import { AuthError } from './errors.js';
import { HashTap, type HashTapOptions } from './hash-tap.js';
import { createPayloadVerifier } from './payload.js';
import type { PayloadMode } from './sigv4.js';

const CHECK = Buffer.from('123456789'); // the CRC catalogue's check input

async function rejection(promise: Promise<unknown>): Promise<AuthError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

describe('checksum algorithms', () => {
  it('match the catalogue check values, big-endian base64 as S3 sends them', async () => {
    const hex = async (algorithm: Parameters<typeof computeChecksum>[0]) => Buffer.from(await computeChecksum(algorithm, CHECK), 'base64').toString('hex');
    expect(await hex('CRC32')).toBe('cbf43926');
    expect(await hex('CRC32C')).toBe('e3069283');
    expect(await hex('CRC64NVME')).toBe('ae8b14860a799888');
    expect(await computeChecksum('SHA1', CHECK)).toBe(createHash('sha1').update(CHECK).digest('base64'));
    expect(await computeChecksum('SHA256', CHECK)).toBe(createHash('sha256').update(CHECK).digest('base64'));
    expect(await computeChecksum('CRC32', Buffer.from('hello world'))).toBe('DUoRhQ=='); // what the JS SDK sent
  });

  it('CRC32C agrees with @aws-crypto/crc32c over random data fed in random pieces', async () => {
    for (let round = 0; round < 20; round++) {
      // Odd offsets and lengths exercise the unaligned head and the byte tail around the word loop.
      const data = randomBytes(1 + Math.floor(Math.random() * 50_000)).subarray(round % 5);
      const reference = new AwsCryptoCrc32c().update(data).digest();
      let crc = 0;
      for (let offset = 0; offset < data.length; ) {
        const size = 1 + Math.floor(Math.random() * (round % 2 === 0 ? 40 : 5000));
        crc = crc32c(data.subarray(offset, offset + size), crc);
        offset += size;
      }
      expect(crc).toBe(reference);
    }
  });

  it('streams: updates in pieces equal one update', async () => {
    const data = randomBytes(100_000);
    for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
      const checksum = createChecksum(algorithm);
      checksum.update(data.subarray(0, 333));
      checksum.update(data.subarray(333));
      expect(await checksum.digestBase64()).toBe(await computeChecksum(algorithm, data));
    }
  });

  it('checks the form of declared values and Content-MD5', () => {
    expect(isWellFormedChecksum('CRC32', 'DUoRhQ==')).toBe(true);
    expect(isWellFormedChecksum('CRC32', 'DUoRhQ')).toBe(false);
    expect(isWellFormedChecksum('CRC64NVME', 'DUoRhQ==')).toBe(false);
    expect(checksumAlgorithmOfHeader('x-amz-checksum-crc64nvme')).toBe('CRC64NVME');
    expect(checksumAlgorithmOfHeader('x-amz-checksum-mode')).toBeUndefined();
    expect(parseContentMd5(` ${md5Base64('x')} `)).toBe(md5Base64('x'));
    for (const bad of ['', 'abc', createHash('md5').update('x').digest('hex')]) {
      expect(() => parseContentMd5(bad)).toThrowError(expect.objectContaining({ code: 'InvalidDigest' }) as Error);
    }
  });
});

/** Runs body -> HashTap -> sink; `seen.finished` tells whether the end ever reached the sink. */
async function tap(body: Buffer[], options: HashTapOptions, seen = { finished: false }): Promise<HashTap> {
  const hashTap = new HashTap(options);
  const sink = new Writable({
    write: (_chunk, _encoding, callback) => callback(),
    final: (callback) => {
      seen.finished = true;
      callback();
    },
  });
  await pipeline(Readable.from(body), hashTap, sink);
  return hashTap;
}

describe('HashTap', () => {
  const body = [Buffer.from('hello '), Buffer.from('world')];
  const whole = Buffer.concat(body);

  it('computes SHA-256, MD5, the ETag, checksums and the byte count in one pass', async () => {
    const hashTap = await tap(body, { checksumAlgorithms: ['CRC32', 'CRC32C'] });
    expect(hashTap.result).toEqual({
      bytes: 11,
      sha256Hex: createHash('sha256').update(whole).digest('hex'),
      md5Hex: createHash('md5').update(whole).digest('hex'),
      md5Base64: md5Base64(whole),
      etag: `"${createHash('md5').update(whole).digest('hex')}"`,
      checksums: { CRC32: 'DUoRhQ==', CRC32C: await computeChecksum('CRC32C', whole) },
    });
  });

  it('passes matching declarations and fails mismatches before the end reaches the consumer', async () => {
    const passed = { finished: false };
    await tap(body, { declared: { sha256Hex: createHash('sha256').update(whole).digest('hex'), contentMd5Base64: md5Base64(whole), checksums: { CRC32: 'DUoRhQ==' } } }, passed);
    expect(passed.finished).toBe(true);
    const cases: [HashTapOptions['declared'], string][] = [
      [{ sha256Hex: '0'.repeat(64) }, 'XAmzContentSHA256Mismatch'],
      [{ contentMd5Base64: md5Base64('other') }, 'BadDigest'],
      [{ checksums: { CRC32: 'AAAAAA==' } }, 'BadDigest'],
      [() => ({ checksums: { SHA256: createHash('sha256').update('x').digest('base64') } }), 'BadDigest'],
    ];
    for (const [declared, code] of cases) {
      const seen = { finished: false };
      const error = await rejection(tap(body, { declared, checksumAlgorithms: ['SHA256'] }, seen));
      expect(error.code).toBe(code);
      expect(seen.finished).toBe(false);
    }
  });
});

describe('createPayloadVerifier', () => {
  const signing = {
    signingKey: deriveSigningKey('jts_payload', '20240101', 'us-east-1', 's3'),
    seedSignature: 'ab'.repeat(32),
    amzDate: '20240101T000000Z',
    scope: '20240101/us-east-1/s3/aws4_request',
  };
  const auth = (payloadMode: PayloadMode, payloadSha256?: string) => ({ payloadMode, ...signing, ...(payloadSha256 !== undefined && { payloadSha256 }) });

  async function run(verifier: ReturnType<typeof createPayloadVerifier>, body: Buffer) {
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await pipeline([Readable.from([body]), ...verifier.transforms, sink]);
    return verifier.tap.result;
  }

  it('verifies a signed aws-chunked body whose checksum comes in the signed trailer', async () => {
    const data = randomBytes(150_000);
    const crc64 = await computeChecksum('CRC64NVME', data);
    const body = encodeAwsChunked(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', chunkSize: 65536, signing, trailers: { 'x-amz-checksum-crc64nvme': crc64 } });
    const headers = { 'x-amz-decoded-content-length': String(data.length), 'x-amz-trailer': 'x-amz-checksum-crc64nvme', 'x-amz-sdk-checksum-algorithm': 'CRC64NVME' };
    const verifier = createPayloadVerifier(auth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'), headers);
    expect(verifier.checksumAlgorithm).toBe('CRC64NVME');
    expect(verifier.declaredLength).toBe(data.length);
    const result = await run(verifier, body);
    expect(result.checksums.CRC64NVME).toBe(crc64);
    expect(result.sha256Hex).toBe(createHash('sha256').update(data).digest('hex'));

    const wrong = encodeAwsChunked(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', chunkSize: 65536, signing, trailers: { 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=' } });
    expect((await rejection(run(createPayloadVerifier(auth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'), headers), wrong))).code).toBe('BadDigest');
  });

  it('verifies Content-MD5 and a checksum header on a plain body', async () => {
    const data = Buffer.from('plain body');
    const headers = { 'content-md5': md5Base64(data), 'x-amz-checksum-sha1': await computeChecksum('SHA1', data), 'content-length': '10' };
    const verifier = createPayloadVerifier(auth('UNSIGNED-PAYLOAD'), headers);
    expect(verifier.declaredLength).toBe(10);
    await run(verifier, data);
    expect((await rejection(run(createPayloadVerifier(auth('UNSIGNED-PAYLOAD'), headers), Buffer.from('plain bodY')))).code).toBe('BadDigest');
  });

  it('refuses contradictory or malformed integrity headers', () => {
    const cases: [PayloadMode, Record<string, string>, string][] = [
      ['UNSIGNED-PAYLOAD', { 'x-amz-checksum-crc32': 'DUoRhQ==', 'x-amz-checksum-sha1': createHash('sha1').digest('base64') }, 'InvalidRequest'],
      ['UNSIGNED-PAYLOAD', { 'x-amz-checksum-crc32': 'not base64!' }, 'InvalidRequest'],
      ['UNSIGNED-PAYLOAD', { 'x-amz-sdk-checksum-algorithm': 'CRC32' }, 'InvalidRequest'],
      ['UNSIGNED-PAYLOAD', { 'x-amz-sdk-checksum-algorithm': 'MD4', 'x-amz-checksum-crc32': 'DUoRhQ==' }, 'InvalidRequest'],
      ['UNSIGNED-PAYLOAD', { 'x-amz-trailer': 'x-amz-checksum-crc32' }, 'InvalidRequest'],
      ['STREAMING-UNSIGNED-PAYLOAD-TRAILER', { 'x-amz-trailer': 'x-amz-meta-foo' }, 'InvalidRequest'],
      ['STREAMING-UNSIGNED-PAYLOAD-TRAILER', { 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-checksum-crc32': 'DUoRhQ==' }, 'InvalidRequest'],
      ['UNSIGNED-PAYLOAD', { 'content-md5': 'nope' }, 'InvalidDigest'],
      ['STREAMING-UNSIGNED-PAYLOAD-TRAILER', { 'x-amz-decoded-content-length': '-1' }, 'InvalidArgument'],
    ];
    for (const [mode, headers, code] of cases) {
      expect(() => createPayloadVerifier(auth(mode), headers), JSON.stringify(headers)).toThrowError(expect.objectContaining({ code }) as Error);
    }
  });
});
