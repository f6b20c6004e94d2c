import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { MultipartUpload } from '../store/multipart.js';
import { assertPartChecksum, multipartEtag, parseUploadChecksum } from './multipart-checksums.js';
import { parseCopySourceRange } from './ops/upload-part-copy.js';

const upload = (checksumAlgorithm: MultipartUpload['checksumAlgorithm'], checksumType: MultipartUpload['checksumType']) =>
  ({ checksumAlgorithm, checksumType }) as MultipartUpload;

describe('parseUploadChecksum', () => {
  it.each([
    [{}, null],
    [{ 'x-amz-checksum-algorithm': 'crc32' }, { algorithm: 'CRC32', type: 'COMPOSITE' }],
    [{ 'x-amz-checksum-algorithm': 'CRC32C', 'x-amz-checksum-type': 'FULL_OBJECT' }, { algorithm: 'CRC32C', type: 'FULL_OBJECT' }],
    [{ 'x-amz-checksum-algorithm': 'CRC64NVME' }, { algorithm: 'CRC64NVME', type: 'FULL_OBJECT' }],
    [{ 'x-amz-checksum-algorithm': 'SHA256', 'x-amz-checksum-type': 'composite' }, { algorithm: 'SHA256', type: 'COMPOSITE' }],
  ])('reads %j', (headers, expected) => {
    expect(parseUploadChecksum(headers)).toEqual(expected);
  });

  it.each([
    [{ 'x-amz-checksum-type': 'COMPOSITE' }, 'can only be used with the x-amz-checksum-algorithm header'],
    [{ 'x-amz-checksum-algorithm': 'MD5' }, 'Checksum algorithm provided is unsupported'],
    [{ 'x-amz-checksum-algorithm': 'SHA1', 'x-amz-checksum-type': 'FULL_OBJECT' }, 'FULL_OBJECT checksum type cannot be used with the sha1'],
    [{ 'x-amz-checksum-algorithm': 'CRC64NVME', 'x-amz-checksum-type': 'COMPOSITE' }, 'COMPOSITE checksum type cannot be used with the crc64nvme'],
    [{ 'x-amz-checksum-algorithm': 'CRC32', 'x-amz-checksum-type': 'PARTIAL' }, 'Value for x-amz-checksum-type header is invalid.'],
  ])('refuses %j with InvalidRequest', (headers, message) => {
    expect(() => parseUploadChecksum(headers)).toThrow(expect.objectContaining({ code: 'InvalidRequest', message: expect.stringContaining(message) }));
  });
});

describe('assertPartChecksum', () => {
  it('takes any checksum for an upload created without one, and only its own otherwise', () => {
    expect(() => assertPartChecksum(upload(null, null), 'SHA1')).not.toThrow();
    expect(() => assertPartChecksum(upload('CRC32', 'COMPOSITE'), 'CRC32')).not.toThrow();
    expect(() => assertPartChecksum(upload('CRC32', 'COMPOSITE'), 'CRC32C')).toThrow('expected checksum Type: crc32, actual checksum Type: crc32c');
  });

  it('requires the checksum of a COMPOSITE upload but computes a missing FULL_OBJECT one', () => {
    expect(() => assertPartChecksum(upload('SHA256', 'COMPOSITE'), undefined)).toThrow('expected checksum Type: sha256, actual checksum Type: null');
    expect(() => assertPartChecksum(upload('CRC64NVME', 'FULL_OBJECT'), undefined)).not.toThrow();
  });
});

describe('multipartEtag', () => {
  it("is the MD5 of the parts' binary MD5s and the part count", () => {
    const parts = ['a', 'b', 'c'].map((text) => createHash('md5').update(text).digest());
    expect(multipartEtag(parts.map((md5) => md5.toString('hex')))).toBe(`${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-3`);
  });
});

describe('parseCopySourceRange', () => {
  it('reads bytes=first-last inside the source', () => {
    expect(parseCopySourceRange(undefined, 10)).toBeNull();
    expect(parseCopySourceRange('bytes=0-9', 10)).toEqual({ start: 0, end: 9 });
    expect(parseCopySourceRange('bytes=3-3', 10)).toEqual({ start: 3, end: 3 });
  });

  it.each(['bytes=5-', 'bytes=-5', 'bytes=7-2', 'byte=0-1', 'bytes=a-b'])('refuses %s with InvalidArgument', (value) => {
    expect(() => parseCopySourceRange(value, 10)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });

  it('refuses a range past the end with InvalidRange', () => {
    expect(() => parseCopySourceRange('bytes=0-10', 10)).toThrow(expect.objectContaining({ code: 'InvalidRange' }));
  });
});
