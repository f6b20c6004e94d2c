import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { createHash, type Hash } from 'node:crypto';
import { endianness } from 'node:os';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { AuthError } from './errors.js';

/**
 * S3's flexible checksums (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html):
 * each value is the base64 of the big-endian digest, sent as `x-amz-checksum-<algorithm>` in a header
 * or an aws-chunked trailer. Also MD5 for the ETag and Content-MD5.
 */

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };

export function checksumHeaderName(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

/** `x-amz-checksum-crc32c` -> 'CRC32C'; undefined for any other name. */
export function checksumAlgorithmOfHeader(name: string): ChecksumAlgorithm | undefined {
  const lower = name.toLowerCase();
  if (!lower.startsWith('x-amz-checksum-')) return undefined;
  const upper = lower.slice('x-amz-checksum-'.length).toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined;
}

/** `crc32` / `CRC32` (x-amz-sdk-checksum-algorithm) -> 'CRC32'. */
export function parseChecksumAlgorithm(value: string): ChecksumAlgorithm | undefined {
  const upper = value.trim().toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined;
}

/** True when `value` is canonical base64 of exactly the algorithm's digest length. */
export function isWellFormedChecksum(algorithm: ChecksumAlgorithm, value: string): boolean {
  return isBase64OfLength(value, DIGEST_BYTES[algorithm]);
}

export function isBase64OfLength(value: string, bytes: number): boolean {
  if (value.length !== Math.ceil(bytes / 3) * 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return false;
  return Buffer.from(value, 'base64').toString('base64') === value;
}

/** Streaming digest with the S3 wire form. `digest` may be called once. */
export interface StreamingChecksum {
  update(data: Uint8Array): void;
  digestBase64(): Promise<string>;
}

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8: eight table lookups per 8 input
// bytes instead of one per byte. 20-25x faster than @aws-crypto/crc32c's byte loop (~35 MB/s here).
function crc32cTable(previous?: Int32Array, base?: Int32Array): Int32Array {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    if (previous !== undefined && base !== undefined) {
      table[i] = (previous[i]! >>> 8) ^ base[previous[i]! & 0xff]!;
      continue;
    }
    let c = i;
    for (let j = 0; j < 8; j++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[i] = c;
  }
  return table;
}
// Module-level constants, so optimized code reads the tables without indirection.
const T0 = crc32cTable();
const T1 = crc32cTable(T0, T0);
const T2 = crc32cTable(T1, T0);
const T3 = crc32cTable(T2, T0);
const T4 = crc32cTable(T3, T0);
const T5 = crc32cTable(T4, T0);
const T6 = crc32cTable(T5, T0);
const T7 = crc32cTable(T6, T0);

// Reading the input four bytes at a time through an Int32Array halves the element loads; the tables
// are built for little-endian words, so big-endian hosts take the byte path.
const LITTLE_ENDIAN = endianness() === 'LE';

/** Continues a CRC-32C: `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`; start from 0. */
export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous;
  const n = data.length;
  let i = 0;
  if (LITTLE_ENDIAN && n >= 16) {
    // Bytes up to a 4-byte boundary, then 8 bytes per step as two aligned words.
    const head = (4 - (data.byteOffset & 3)) & 3;
    for (; i < head; i++) crc = (crc >>> 8) ^ T0[(crc ^ data[i]!) & 0xff]!;
    const words = ((n - i) >> 3) << 1;
    const view = new Int32Array(data.buffer, data.byteOffset + i, words);
    for (let w = 0; w < words; w += 2) {
      const a = crc ^ view[w]!;
      const b = view[w + 1]!;
      crc =
        T7[a & 0xff]! ^ T6[(a >>> 8) & 0xff]! ^ T5[(a >>> 16) & 0xff]! ^ T4[a >>> 24]! ^
        T3[b & 0xff]! ^ T2[(b >>> 8) & 0xff]! ^ T1[(b >>> 16) & 0xff]! ^ T0[b >>> 24]!;
    }
    i += words << 2;
  }
  for (; i < n; i++) crc = (crc >>> 8) ^ T0[(crc ^ data[i]!) & 0xff]!;
  return ~crc >>> 0;
}

function uint32Base64(value: number): string {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value >>> 0);
  return out.toString('base64');
}

class Crc32Checksum implements StreamingChecksum {
  private crc = 0;
  constructor(private readonly fn: (data: Uint8Array, previous: number) => number) {}
  update(data: Uint8Array): void {
    this.crc = this.fn(data, this.crc);
  }
  digestBase64(): Promise<string> {
    return Promise.resolve(uint32Base64(this.crc));
  }
}

class HashChecksum implements StreamingChecksum {
  private readonly hash: Hash;
  constructor(algorithm: 'sha1' | 'sha256') {
    this.hash = createHash(algorithm);
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  digestBase64(): Promise<string> {
    return Promise.resolve(this.hash.digest('base64'));
  }
}

// @aws-sdk/crc64-nvme is the SDK's pure-JS slicing-by-8 CRC64-NVME (~215 MB/s, ~4.6 ms/MiB here):
// the slowest of the five, paid only by uploads that ask for it.
class Crc64NvmeChecksum implements StreamingChecksum {
  private readonly crc = new Crc64Nvme();
  update(data: Uint8Array): void {
    this.crc.update(data);
  }
  async digestBase64(): Promise<string> {
    return Buffer.from(await this.crc.digest()).toString('base64');
  }
}

export function createChecksum(algorithm: ChecksumAlgorithm): StreamingChecksum {
  switch (algorithm) {
    case 'CRC32':
      return new Crc32Checksum(zlibCrc32);
    case 'CRC32C':
      return new Crc32Checksum(crc32c);
    case 'CRC64NVME':
      return new Crc64NvmeChecksum();
    case 'SHA1':
      return new HashChecksum('sha1');
    case 'SHA256':
      return new HashChecksum('sha256');
  }
}

/** One-shot checksum of a buffer, in S3's base64 form. */
export async function computeChecksum(algorithm: ChecksumAlgorithm, data: Uint8Array): Promise<string> {
  const checksum = createChecksum(algorithm);
  checksum.update(data);
  return checksum.digestBase64();
}

/**
 * Content-MD5 as sent -> its base64, or InvalidDigest when it is not base64 of 16 bytes
 * (RFC 1864; https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
 */
export function parseContentMd5(value: string): string {
  const trimmed = value.trim();
  if (!isBase64OfLength(trimmed, 16)) {
    throw new AuthError('InvalidDigest', 'The Content-MD5 you specified is not valid.', { 'Content-MD5': value });
  }
  return trimmed;
}

export function md5Base64(data: Uint8Array | string): string {
  return createHash('md5').update(data).digest('base64');
}
