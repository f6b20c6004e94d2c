import type { ChecksumAlgorithm } from './checksums.js';

/**
 * CRC of a concatenation from the CRCs of its pieces: crc(A ++ B) from crc(A), crc(B) and B's length,
 * without the bytes. S3's FULL_OBJECT checksum of a multipart upload is the CRC of the whole object,
 * which the gateway gets by combining the parts' CRCs in order
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html, "Full object checksums").
 *
 * The method is zlib's crc32_combine (multiplication by x^(8·len) modulo the polynomial, in the reflected
 * bit order these CRCs use), written once over BigInt for the 32- and 64-bit CRCs alike. It holds for CRCs
 * whose initial value and final XOR are both all ones, which CRC32, CRC32C and CRC64NVME all are.
 */

interface CrcSpec {
  width: bigint;
  /** The polynomial, bit-reflected. */
  poly: bigint;
  /** x^(2^k) mod poly for k = 0, 1, 2...; grown on demand. */
  powers: bigint[];
}

const SPECS: Partial<Record<ChecksumAlgorithm, CrcSpec>> = {
  CRC32: { width: 32n, poly: 0xedb88320n, powers: [] },
  CRC32C: { width: 32n, poly: 0x82f63b78n, powers: [] },
  CRC64NVME: { width: 64n, poly: 0x9a6c9329ac4bc9b5n, powers: [] },
};

export type CombinableAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME';

export function isCombinable(algorithm: ChecksumAlgorithm): algorithm is CombinableAlgorithm {
  return SPECS[algorithm] !== undefined;
}

/** a·b modulo the polynomial; bit width-1 holds x^0 in the reflected order. */
function multiplyModPoly(spec: CrcSpec, a: bigint, b: bigint): bigint {
  let mask = 1n << (spec.width - 1n);
  let product = 0n;
  for (;;) {
    if (a & mask) {
      product ^= b;
      if ((a & (mask - 1n)) === 0n) return product;
    }
    mask >>= 1n;
    b = b & 1n ? (b >> 1n) ^ spec.poly : b >> 1n;
  }
}

function powerOfTwoPower(spec: CrcSpec, k: number): bigint {
  // x^1 is the second-highest bit; each next entry squares the previous one.
  if (spec.powers.length === 0) spec.powers.push(1n << (spec.width - 2n));
  while (spec.powers.length <= k) {
    const last = spec.powers[spec.powers.length - 1]!;
    spec.powers.push(multiplyModPoly(spec, last, last));
  }
  return spec.powers[k]!;
}

/** x^(8·bytes) modulo the polynomial: the operator that appends `bytes` zero bytes to a CRC's register. */
function shiftOperator(spec: CrcSpec, bytes: number): bigint {
  let result = 1n << (spec.width - 1n);
  let n = BigInt(bytes);
  for (let k = 3; n > 0n; k++, n >>= 1n) {
    if (n & 1n) result = multiplyModPoly(spec, powerOfTwoPower(spec, k), result);
  }
  return result;
}

function toBigInt(base64: string): bigint {
  return BigInt(`0x${Buffer.from(base64, 'base64').toString('hex')}`);
}

function toBase64(value: bigint, width: bigint): string {
  return Buffer.from(value.toString(16).padStart(Number(width / 4n), '0'), 'hex').toString('base64');
}

/**
 * The CRC (S3's base64 form) of the pieces' concatenation, given each piece's CRC and length in order.
 * An empty list gives the CRC of nothing.
 */
export function combineCrcs(algorithm: CombinableAlgorithm, pieces: readonly { checksum: string; size: number }[]): string {
  const spec = SPECS[algorithm]!;
  let crc = 0n;
  for (const piece of pieces) crc = multiplyModPoly(spec, shiftOperator(spec, piece.size), crc) ^ toBigInt(piece.checksum);
  return toBase64(crc, spec.width);
}
