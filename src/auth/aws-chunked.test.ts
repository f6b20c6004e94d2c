import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { AwsChunkedDecoder, contentEncodingWithoutAwsChunked, type AwsChunkedDecoderOptions } from './aws-chunked.js';
import { encodeAwsChunked, encodeAwsChunkedParts } from './aws-chunked-encoder.js';
import { deriveSigningKey } from './canonical.js';
import { computeChecksum } from './checksums.js';
import { AuthError } from './errors.js';
import type { ChunkSigningContext } from './sigv4.js';

// The examples of https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html and
// sigv4-streaming-trailers.html: 66560 bytes of 'a' in a 65536-byte and a 1024-byte chunk.
const EXAMPLE_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const EXAMPLE_DATA = Buffer.alloc(66560, 'a');
const exampleSigning = (seedSignature: string): ChunkSigningContext => ({
  signingKey: deriveSigningKey(EXAMPLE_SECRET, '20130524', 'us-east-1', 's3'),
  amzDate: '20130524T000000Z',
  scope: '20130524/us-east-1/s3/aws4_request',
  seedSignature,
});
const STREAMING_SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const STREAMING_CHUNK_SIGNATURES = [
  'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
  '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
  'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
];
const TRAILER_SEED = '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e';
const TRAILER_CHUNK_SIGNATURES = [
  'b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2',
  '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7',
  '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992',
];
const TRAILER_SIGNATURE = 'd81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435';

/** Deterministic pseudo-random numbers (mulberry32), so a failing split can be reproduced. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits a body into reads of random sizes, mostly tiny (1-16 bytes) with some large ones. */
function rechunk(body: Buffer, seed: number): Buffer[] {
  const next = random(seed);
  const parts: Buffer[] = [];
  for (let offset = 0; offset < body.length; ) {
    const size = next() < 0.7 ? 1 + Math.floor(next() * 16) : 1 + Math.floor(next() * 9000);
    parts.push(body.subarray(offset, offset + size));
    offset += size;
  }
  return parts;
}

async function decode(parts: Buffer[], options: AwsChunkedDecoderOptions): Promise<{ data: Buffer; decoder: AwsChunkedDecoder }> {
  const decoder = new AwsChunkedDecoder(options);
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  await pipeline(Readable.from(parts), decoder, sink);
  return { data: Buffer.concat(out), decoder };
}

async function decodeError(parts: Buffer[], options: AwsChunkedDecoderOptions): Promise<AuthError> {
  const error = await decode(parts, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  return error as AuthError;
}

const signedOptions = (body: Partial<AwsChunkedDecoderOptions> = {}): AwsChunkedDecoderOptions => ({
  mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  signing: exampleSigning(STREAMING_SEED),
  decodedContentLength: 66560,
  ...body,
});
const trailerOptions = (body: Partial<AwsChunkedDecoderOptions> = {}): AwsChunkedDecoderOptions => ({
  mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  signing: exampleSigning(TRAILER_SEED),
  decodedContentLength: 66560,
  declaredTrailers: ['x-amz-checksum-crc32c'],
  ...body,
});
const signedExample = (): Buffer => encodeAwsChunked(EXAMPLE_DATA, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', chunkSize: 65536, signing: exampleSigning(STREAMING_SEED) });
const trailerExample = (): Buffer =>
  encodeAwsChunked(EXAMPLE_DATA, {
    mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
    chunkSize: 65536,
    signing: exampleSigning(TRAILER_SEED),
    trailers: { 'x-amz-checksum-crc32c': 'sOO8/Q==' },
  });

describe('AWS documentation examples', () => {
  it('encodes the sigv4-streaming example with the documented chunk signatures and length', () => {
    const body = signedExample();
    expect(body.length).toBe(66824); // the example's Content-Length
    const signatures = [...body.toString('latin1').matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1]);
    expect(signatures).toEqual(STREAMING_CHUNK_SIGNATURES);
  });

  it('decodes the sigv4-streaming example split into random tiny reads', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { data } = await decode(rechunk(signedExample(), seed), signedOptions());
      expect(data.equals(EXAMPLE_DATA)).toBe(true);
    }
  });

  it('encodes and decodes the trailer example, exposing its CRC32C trailer', async () => {
    const body = trailerExample();
    const text = body.toString('latin1');
    expect([...text.matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1])).toEqual(TRAILER_CHUNK_SIGNATURES);
    expect(text).toContain(`x-amz-trailer-signature:${TRAILER_SIGNATURE}\r\n`);
    expect(await computeChecksum('CRC32C', EXAMPLE_DATA)).toBe('sOO8/Q==');
    for (const seed of [6, 7, 8]) {
      const { data, decoder } = await decode(rechunk(body, seed), trailerOptions());
      expect(data.equals(EXAMPLE_DATA)).toBe(true);
      expect(Object.fromEntries(decoder.trailers)).toEqual({ 'x-amz-checksum-crc32c': 'sOO8/Q==' });
    }
  });

  it("accepts the trailer example laid out as AWS's page shows it (blank line before the trailers, no final CRLF)", async () => {
    const body = Buffer.concat([
      Buffer.from(`10000;chunk-signature=${TRAILER_CHUNK_SIGNATURES[0]}\r\n`),
      EXAMPLE_DATA.subarray(0, 65536),
      Buffer.from(`\r\n400;chunk-signature=${TRAILER_CHUNK_SIGNATURES[1]}\r\n`),
      EXAMPLE_DATA.subarray(65536),
      Buffer.from(`\r\n0;chunk-signature=${TRAILER_CHUNK_SIGNATURES[2]}\r\n\r\n`),
      Buffer.from(`x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:${TRAILER_SIGNATURE}\r\n`),
    ]);
    const { data, decoder } = await decode(rechunk(body, 9), trailerOptions());
    expect(data.length).toBe(66560);
    expect(decoder.trailers.get('x-amz-checksum-crc32c')).toBe('sOO8/Q==');
  });
});

describe('signature chain', () => {
  it('rejects a flipped byte in chunk data', async () => {
    const body = signedExample();
    body[200] = 'b'.charCodeAt(0);
    const error = await decodeError(rechunk(body, 10), signedOptions());
    expect(error.code).toBe('SignatureDoesNotMatch');
    expect(error.details.StringToSign).toMatch(/^AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n/);
  });

  it('rejects a flipped chunk signature, a wrong seed and reordered chunks', async () => {
    const flipped = Buffer.from(signedExample().toString('latin1').replace(STREAMING_CHUNK_SIGNATURES[1]!, `f${STREAMING_CHUNK_SIGNATURES[1]!.slice(1)}`), 'latin1');
    expect((await decodeError([flipped], signedOptions())).code).toBe('SignatureDoesNotMatch');
    const wrongSeed = signedOptions({ signing: exampleSigning(TRAILER_SEED) });
    expect((await decodeError([signedExample()], wrongSeed)).code).toBe('SignatureDoesNotMatch');
    const data = Buffer.concat([Buffer.alloc(10, 'x'), Buffer.alloc(10, 'y')]);
    const [first, second, last] = encodeAwsChunkedParts(data, { mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', chunkSize: 10, signing: exampleSigning(STREAMING_SEED) });
    const reordered = await decodeError([second!, first!, last!], signedOptions({ decodedContentLength: 20 }));
    expect(reordered.code).toBe('SignatureDoesNotMatch');
  });

  it('rejects a changed trailer value and a missing trailer signature', async () => {
    const changed = Buffer.from(trailerExample().toString('latin1').replace('sOO8/Q==', 'AAAAAA=='), 'latin1');
    expect((await decodeError([changed], trailerOptions())).code).toBe('SignatureDoesNotMatch');
    const unsignedTrailer = Buffer.from(trailerExample().toString('latin1').replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, ''), 'latin1');
    expect((await decodeError([unsignedTrailer], trailerOptions())).code).toBe('MalformedTrailerError');
  });

  it('emits a signed chunk only after its signature is verified', async () => {
    const decoder = new AwsChunkedDecoder(signedOptions());
    const out: Buffer[] = [];
    decoder.on('data', (chunk: Buffer) => out.push(chunk));
    const body = signedExample();
    const firstChunkEnd = body.indexOf('\r\n400;') + 2;
    decoder.write(body.subarray(0, firstChunkEnd - 1)); // all of chunk 1 but its final LF
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(out).length).toBe(0);
    decoder.write(body.subarray(firstChunkEnd - 1, firstChunkEnd + 300));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(out).length).toBe(65536);
    decoder.end(body.subarray(firstChunkEnd + 300));
    await new Promise((resolve) => decoder.on('end', resolve));
    expect(Buffer.concat(out).length).toBe(66560);
  });
});

describe('STREAMING-UNSIGNED-PAYLOAD-TRAILER', () => {
  const unsignedOptions = (body: Partial<AwsChunkedDecoderOptions> = {}): AwsChunkedDecoderOptions => ({
    mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    decodedContentLength: 11,
    declaredTrailers: ['x-amz-checksum-crc32'],
    ...body,
  });

  it('decodes the body the JS SDK and botocore send, in 1-byte reads', async () => {
    const body = Buffer.from('6\r\nhello \r\n5\r\nworld\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n');
    const { data, decoder } = await decode([...body].map((b) => Buffer.from([b])), unsignedOptions());
    expect(data.toString()).toBe('hello world');
    expect(decoder.trailers.get('x-amz-checksum-crc32')).toBe('DUoRhQ==');
  });

  it('streams data through before the chunk ends', async () => {
    const decoder = new AwsChunkedDecoder(unsignedOptions({ decodedContentLength: 1000, declaredTrailers: [] }));
    const out: Buffer[] = [];
    decoder.on('data', (chunk: Buffer) => out.push(chunk));
    decoder.write(Buffer.concat([Buffer.from('3e8\r\n'), Buffer.alloc(500, 'z')]));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(out).length).toBe(500);
    decoder.destroy();
  });

  it('round-trips random data in random reads', async () => {
    const data = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919) & 0xff));
    const crc32 = await computeChecksum('CRC32', data);
    const body = encodeAwsChunked(data, { mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', chunkSize: 8192, trailers: { 'x-amz-checksum-crc32': crc32 } });
    const { data: decoded, decoder } = await decode(rechunk(body, 11), unsignedOptions({ decodedContentLength: data.length }));
    expect(decoded.equals(data)).toBe(true);
    expect(decoder.trailers.get('x-amz-checksum-crc32')).toBe(crc32);
  });

  it('refuses trailers that were not announced, and announced ones that do not come', async () => {
    const body = Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-sha1:qvTGHdzF6KLavt4PO0gs2a6pQ00=\r\n\r\n');
    expect((await decodeError([body], unsignedOptions({ decodedContentLength: 5 }))).code).toBe('MalformedTrailerError');
    const none = Buffer.from('5\r\nhello\r\n0\r\n\r\n');
    expect((await decodeError([none], unsignedOptions({ decodedContentLength: 5 }))).code).toBe('MalformedTrailerError');
  });
});

describe('length and framing', () => {
  const unsigned = (decodedContentLength?: number): AwsChunkedDecoderOptions => ({
    mode: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    ...(decodedContentLength !== undefined && { decodedContentLength }),
  });

  it('answers IncompleteBody for a body shorter or longer than x-amz-decoded-content-length, or cut short', async () => {
    const body = Buffer.from('5\r\nhello\r\n0\r\n\r\n');
    expect((await decodeError([body], unsigned(6))).code).toBe('IncompleteBody');
    expect((await decodeError([body], unsigned(4))).code).toBe('IncompleteBody');
    expect((await decodeError([body.subarray(0, 7)], unsigned(5))).code).toBe('IncompleteBody');
    expect((await decodeError([signedExample().subarray(0, 60_000)], signedOptions())).code).toBe('IncompleteBody');
    expect((await decode([body], unsigned())).data.toString()).toBe('hello');
  });

  it('answers InvalidRequest for malformed framing', async () => {
    const cases = [
      '5x\r\nhello\r\n0\r\n\r\n', // size not hex
      '5\r\nhello!\r\n0\r\n\r\n', // data longer than its size
      '5\nhello\r\n0\r\n\r\n', // bare LF
      'ffffffffff\r\n', // absurd size
      `${'1'.repeat(2000)}`, // header line that never ends
      '5\r\nhello\r\n0\r\n\r\nextra', // data after the final chunk
    ];
    for (const body of cases) expect((await decodeError([Buffer.from(body)], unsigned())).code, body.slice(0, 20)).toBe('InvalidRequest');
  });

  it('refuses a signed chunk larger than the hold limit, and a chunk without a signature', async () => {
    const tooBig = await decodeError([signedExample()], signedOptions({ maxSignedChunkBytes: 1024 }));
    expect(tooBig.code).toBe('InvalidRequest');
    const unsignedChunk = await decodeError([Buffer.from('5\r\nhello\r\n')], signedOptions());
    expect(unsignedChunk.code).toBe('InvalidRequest');
  });

  it('drops aws-chunked from the Content-Encoding to store', () => {
    expect(contentEncodingWithoutAwsChunked('aws-chunked')).toBeUndefined();
    expect(contentEncodingWithoutAwsChunked('aws-chunked,gzip')).toBe('gzip');
    expect(contentEncodingWithoutAwsChunked('gzip, aws-chunked')).toBe('gzip');
    expect(contentEncodingWithoutAwsChunked(undefined)).toBeUndefined();
  });
});
