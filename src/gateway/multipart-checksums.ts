import { createHash } from 'node:crypto';
import type { RequestHeaders } from '../auth/canonical.js';
import { CHECKSUM_ALGORITHMS, checksumHeaderName, computeChecksum, parseChecksumAlgorithm, type ChecksumAlgorithm } from '../auth/checksums.js';
import { combineCrcs, isCombinable } from '../auth/crc-combine.js';
import type { ChecksumType, MultipartUpload } from '../store/multipart.js';
import type { StoredPart } from '../store/multipart-parts.js';
import { header } from './context.js';
import { S3Error } from './errors.js';
import type { CompletedPart } from './xml-input.js';
import { CHECKSUM_ELEMENTS, type Checksums } from './xml.js';

/**
 * ETags and checksums of multipart uploads, as S3 computes them
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html):
 * - the object's ETag is the MD5 of the parts' binary MD5s, a dash and the part count;
 * - a COMPOSITE checksum is the algorithm applied to the parts' binary checksums, a dash and the count;
 * - a FULL_OBJECT checksum is the CRC of the whole object, combined from the parts' CRCs.
 */

export interface UploadChecksum {
  algorithm: ChecksumAlgorithm;
  type: ChecksumType;
}

function invalidRequest(message: string): S3Error {
  return new S3Error('InvalidRequest', { message });
}

/** CreateMultipartUpload's `x-amz-checksum-algorithm` and `x-amz-checksum-type`; null when none is asked for. */
export function parseUploadChecksum(headers: RequestHeaders): UploadChecksum | null {
  const algorithmText = header(headers, 'x-amz-checksum-algorithm');
  const typeText = header(headers, 'x-amz-checksum-type');
  if (algorithmText === undefined) {
    if (typeText !== undefined) throw invalidRequest('The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.');
    return null;
  }
  const algorithm = parseChecksumAlgorithm(algorithmText);
  if (algorithm === undefined) {
    throw invalidRequest(`Checksum algorithm provided is unsupported. Please try again with any of the valid types: [${CHECKSUM_ALGORITHMS.join(', ')}]`);
  }
  // CRC64NVME exists only as a full-object checksum; the others default to COMPOSITE.
  let type: ChecksumType = algorithm === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE';
  if (typeText !== undefined) {
    const upper = typeText.trim().toUpperCase();
    if (upper !== 'COMPOSITE' && upper !== 'FULL_OBJECT') throw invalidRequest('Value for x-amz-checksum-type header is invalid.');
    type = upper;
  }
  if (type === 'FULL_OBJECT' && !isCombinable(algorithm)) {
    throw invalidRequest(`The FULL_OBJECT checksum type cannot be used with the ${algorithm.toLowerCase()} checksum algorithm.`);
  }
  if (type === 'COMPOSITE' && algorithm === 'CRC64NVME') {
    throw invalidRequest('The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.');
  }
  return { algorithm, type };
}

function mismatch(expected: ChecksumAlgorithm | null, actual: ChecksumAlgorithm | undefined): S3Error {
  return invalidRequest(`Checksum Type mismatch occurred, expected checksum Type: ${expected?.toLowerCase() ?? 'null'}, actual checksum Type: ${actual?.toLowerCase() ?? 'null'}`);
}

/**
 * UploadPart: a part of an upload created with an algorithm must carry that algorithm's checksum, except
 * under FULL_OBJECT, where S3 computes a missing one; another algorithm is refused. Parts of an upload
 * created without one may carry any checksum: it is verified and kept for Complete's check.
 */
export function assertPartChecksum(upload: MultipartUpload, declared: ChecksumAlgorithm | undefined): void {
  if (upload.checksumAlgorithm === null || declared === upload.checksumAlgorithm) return;
  if (declared === undefined && upload.checksumType === 'FULL_OBJECT') return;
  throw mismatch(upload.checksumAlgorithm, declared);
}

/** The checksum algorithms a part's checksums are kept for. */
export function partChecksumAlgorithms(upload: MultipartUpload, declared?: ChecksumAlgorithm): ChecksumAlgorithm[] {
  return [...new Set([upload.checksumAlgorithm, declared].filter((algorithm): algorithm is ChecksumAlgorithm => algorithm != null))];
}

/** `"<md5 of the parts' binary MD5s>-<count>"`, unquoted. */
export function multipartEtag(partMd5Hexes: readonly string[]): string {
  const hash = createHash('md5');
  for (const md5 of partMd5Hexes) hash.update(Buffer.from(md5, 'hex'));
  return `${hash.digest('hex')}-${partMd5Hexes.length}`;
}

/** Checksums keyed by algorithm ('CRC32') as stored, to the XML builders' lower-case fields. */
export function toXmlChecksums(checksums: Partial<Record<string, string>>): Checksums {
  const out: Checksums = {};
  for (const [field] of CHECKSUM_ELEMENTS) {
    const value = checksums[field.toUpperCase()];
    if (value !== undefined) out[field] = value;
  }
  return out;
}

/**
 * Checks the checksums a CompleteMultipartUpload lists against the stored parts (a wrong one is
 * InvalidPart, as a wrong ETag is), and that a COMPOSITE upload's request lists its algorithm's checksum
 * for every part, as S3 requires.
 */
export function assertListedChecksums(upload: MultipartUpload, listed: readonly CompletedPart[], stored: ReadonlyMap<number, StoredPart>): void {
  for (const part of listed) {
    const kept = stored.get(part.partNumber)!.checksums;
    for (const [field, value] of Object.entries(part.checksums) as [keyof Checksums, string][]) {
      if (kept[field.toUpperCase() as ChecksumAlgorithm] !== value) throw new S3Error('InvalidPart', { extra: { PartNumber: part.partNumber } });
    }
    const algorithm = upload.checksumAlgorithm;
    if (algorithm !== null && upload.checksumType === 'COMPOSITE' && part.checksums[algorithm.toLowerCase() as keyof Checksums] === undefined) {
      throw invalidRequest(
        `The upload was created using a ${algorithm.toLowerCase()} checksum. The complete request must include the checksum for each part. It was missing for part ${part.partNumber} in the request.`,
      );
    }
  }
}

/**
 * The completed object's checksum from its parts' (in order), or null for an upload created without an
 * algorithm. Every part of such an upload has that checksum: the part pipeline computes it when the
 * client did not send it.
 */
export async function objectChecksum(upload: MultipartUpload, parts: readonly StoredPart[]): Promise<{ algorithm: ChecksumAlgorithm; value: string; type: ChecksumType } | null> {
  const algorithm = upload.checksumAlgorithm;
  if (algorithm === null || upload.checksumType === null) return null;
  const values = parts.map((part) => part.checksums[algorithm]!);
  if (upload.checksumType === 'FULL_OBJECT' && isCombinable(algorithm)) {
    return { algorithm, type: 'FULL_OBJECT', value: combineCrcs(algorithm, parts.map((part, index) => ({ checksum: values[index]!, size: part.size }))) };
  }
  const checksumOfChecksums = await computeChecksum(algorithm, Buffer.concat(values.map((value) => Buffer.from(value, 'base64'))));
  return { algorithm, type: 'COMPOSITE', value: `${checksumOfChecksums}-${parts.length}` };
}

/**
 * A whole-object checksum or type sent with CompleteMultipartUpload (`x-amz-checksum-<algorithm>`,
 * `x-amz-checksum-type`) must agree with the upload's: BadDigest for another value, InvalidRequest for
 * another algorithm or type. A COMPOSITE value may be given with or without its "-N".
 */
export function assertDeclaredObjectChecksum(headers: RequestHeaders, upload: MultipartUpload, computed: { algorithm: ChecksumAlgorithm; value: string; type: ChecksumType } | null): void {
  const type = header(headers, 'x-amz-checksum-type');
  if (type !== undefined && type.trim().toUpperCase() !== (upload.checksumType ?? '')) {
    throw invalidRequest(`The upload was created using the ${upload.checksumType ?? 'null'} checksum mode. The complete request must use the same checksum mode.`);
  }
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const declared = header(headers, checksumHeaderName(algorithm))?.trim();
    if (declared === undefined) continue;
    if (computed === null || computed.algorithm !== algorithm) throw mismatch(upload.checksumAlgorithm, algorithm);
    const bare = computed.value.replace(/-\d+$/, '');
    if (declared !== computed.value && declared !== bare) throw new S3Error('BadDigest', { message: `The ${algorithm.toLowerCase()} you specified did not match the calculated checksum.` });
  }
}
