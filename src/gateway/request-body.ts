import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PayloadVerifier } from '../auth/payload.js';
import { S3Error } from './errors.js';
import { runChain } from './put-pipeline.js';

/**
 * Reads a small request body (an XML document: CreateBucketConfiguration, Delete...) into memory through
 * the same verifiers as an object body (createPayloadVerifier: aws-chunked decoding and chunk
 * signatures, x-amz-content-sha256, Content-MD5, x-amz-checksum-*), so a document is trusted exactly
 * as far as a PUT body is. A body over `maxBytes` is refused with MaxMessageLengthExceeded: up front
 * when its declared length says so, else as soon as the excess arrives, so memory stays bounded.
 */
export async function readVerifiedBody(source: Readable, payload: PayloadVerifier, maxBytes: number): Promise<Buffer> {
  if (payload.declaredLength !== undefined && payload.declaredLength > maxBytes) throw tooBig(maxBytes);

  const chunks: Buffer[] = [];
  let size = 0;
  const collector = new Writable({
    write(chunk: Buffer, _encoding, next) {
      size += chunk.length;
      if (size > maxBytes) return next(tooBig(maxBytes));
      chunks.push(chunk);
      next();
    },
  });
  const [chain, collected] = await Promise.allSettled([runChain(source, payload.transforms), pipeline(payload.tap, collector)]);
  // The size limit is the collector's own verdict; any other failure starts in the chain (a bad digest,
  // a short body) and only echoes in the collector.
  if (collected.status === 'rejected' && isTooBig(collected.reason)) throw collected.reason;
  if (chain.status === 'rejected') throw chain.reason;
  if (collected.status === 'rejected') throw collected.reason;
  return Buffer.concat(chunks, size);
}

function tooBig(maxBytes: number): S3Error {
  return new S3Error('MaxMessageLengthExceeded', { extra: { MaxMessageLengthBytes: maxBytes } });
}

function isTooBig(error: unknown): boolean {
  return error instanceof S3Error && error.code === 'MaxMessageLengthExceeded';
}
