import { EMPTY_SHA256, hmacSha256, sha256Hex } from './canonical.js';
import type { ChunkSigningContext, StreamingPayloadMode } from './sigv4.js';

/**
 * The client side of aws-chunked, for tests, benchmarks and raw-HTTP checks that need bodies no SDK
 * sends (the JS SDK and botocore send STREAMING-UNSIGNED-PAYLOAD-TRAILER; signed chunks come from the
 * Java and CRT-based clients). Signatures are computed as in sigv4-streaming / sigv4-streaming-trailers.
 */

export interface AwsChunkedEncodeOptions {
  mode: StreamingPayloadMode;
  /** Data bytes per chunk (the last may be shorter). AWS's examples use 64 KiB. */
  chunkSize: number;
  /** Required for the signed modes. */
  signing?: ChunkSigningContext;
  /** Trailer name -> value, e.g. { 'x-amz-checksum-crc32': 'DUoRhQ==' }, for the trailer modes. */
  trailers?: Readonly<Record<string, string>>;
}

export function chunkStringToSign(signing: ChunkSigningContext, previousSignature: string, data: Uint8Array): string {
  return `AWS4-HMAC-SHA256-PAYLOAD\n${signing.amzDate}\n${signing.scope}\n${previousSignature}\n${EMPTY_SHA256}\n${sha256Hex(data)}`;
}

export function trailerStringToSign(signing: ChunkSigningContext, previousSignature: string, trailers: Readonly<Record<string, string>>): string {
  const canonical = Object.keys(trailers)
    .sort()
    .map((name) => `${name}:${trailers[name]}\n`)
    .join('');
  return `AWS4-HMAC-SHA256-TRAILER\n${signing.amzDate}\n${signing.scope}\n${previousSignature}\n${sha256Hex(canonical)}`;
}

/** Encodes `data` as an aws-chunked body; returns the parts (one per chunk, then the trailer part). */
export function encodeAwsChunkedParts(data: Uint8Array, options: AwsChunkedEncodeOptions): Buffer[] {
  const signed = options.mode !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
  if (signed && options.signing === undefined) throw new Error(`${options.mode} needs a signing context`);
  const parts: Buffer[] = [];
  let previous = options.signing?.seedSignature ?? '';
  const header = (chunk: Uint8Array): string => {
    if (!signed) return `${chunk.length.toString(16)}\r\n`;
    previous = hmacSha256(options.signing!.signingKey, chunkStringToSign(options.signing!, previous, chunk)).toString('hex');
    return `${chunk.length.toString(16)};chunk-signature=${previous}\r\n`;
  };
  for (let offset = 0; offset < data.length; offset += options.chunkSize) {
    const chunk = data.subarray(offset, Math.min(offset + options.chunkSize, data.length));
    parts.push(Buffer.concat([Buffer.from(header(chunk), 'latin1'), chunk, Buffer.from('\r\n', 'latin1')]));
  }
  let tail = header(new Uint8Array(0));
  const trailers = options.trailers ?? {};
  if (options.mode !== 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD') {
    for (const [name, value] of Object.entries(trailers)) tail += `${name}:${value}\r\n`;
    if (signed) {
      const signature = hmacSha256(options.signing!.signingKey, trailerStringToSign(options.signing!, previous, trailers)).toString('hex');
      tail += `x-amz-trailer-signature:${signature}\r\n`;
    }
  }
  parts.push(Buffer.from(`${tail}\r\n`, 'latin1'));
  return parts;
}

export function encodeAwsChunked(data: Uint8Array, options: AwsChunkedEncodeOptions): Buffer {
  return Buffer.concat(encodeAwsChunkedParts(data, options));
}
