import { describe, expect, it } from 'vitest';
import { MAX_KEY_BYTES, assertValidBucketName, assertValidObjectKey, bucketNameProblem } from './bucket-name.js';

describe('bucket names', () => {
  // The valid examples of "General purpose bucket naming rules", plus edges.
  it.each([
    ['docexamplebucket1'],
    ['log-delivery-march-2020'],
    ['my-hosted-content'],
    ['docexamplewebsite.com'],
    ['www.docexamplewebsite.com'],
    ['my.example.s3.bucket'],
    ['abc'],
    ['a'.repeat(63)],
    ['1bucket9'],
    ['192.168.5'],
    ['apis'],
    ['my-api'],
  ])('accepts_%s', (name) => {
    expect(bucketNameProblem(name)).toBeNull();
    expect(() => assertValidBucketName(name)).not.toThrow();
  });

  it.each([
    ['doc_example_bucket', 'consist only of lowercase letters'],
    ['DocExampleBucket', 'consist only of lowercase letters'],
    ['doc-example-bucket-', 'begin and end'],
    ['-bucket', 'begin and end'],
    ['.bucket', 'begin and end'],
    ['ab', 'between 3 and 63'],
    ['a'.repeat(64), 'between 3 and 63'],
    ['', 'between 3 and 63'],
    ['my..bucket', 'two adjacent periods'],
    ['192.168.5.4', 'IP address'],
    ['xn--bucket', 'prefix xn--'],
    ['sthree-bucket', 'prefix sthree-'],
    ['sthree-configurator', 'prefix sthree-'],
    ['amzn-s3-demo-bucket', 'prefix amzn-s3-demo-'],
    ['bucket-s3alias', 'suffix -s3alias'],
    ['bucket--ol-s3', 'suffix --ol-s3'],
    ['bucket.mrap', 'suffix .mrap'],
    ['bucket--x-s3', 'suffix --x-s3'],
    ['bucket--table-s3', 'suffix --table-s3'],
    ['bücket', 'consist only of lowercase letters'],
    ['api', 'reserved'],
    ['healthz', 'reserved'],
  ])('refuses_%j_because_of_%s', (name, reason) => {
    expect(bucketNameProblem(name)).toContain(reason);
    expect(() => assertValidBucketName(name)).toThrow(
      expect.objectContaining({ code: 'InvalidBucketName', status: 400, extra: { BucketName: name } }),
    );
  });

  it('says_api_is_reserved', () => {
    expect(() => assertValidBucketName('api')).toThrow('The specified bucket is not valid. The bucket name api is reserved.');
  });
});

describe('object keys', () => {
  it('accepts_1_to_1024_bytes', () => {
    expect(() => assertValidObjectKey('a')).not.toThrow();
    expect(() => assertValidObjectKey('a'.repeat(MAX_KEY_BYTES))).not.toThrow();
    expect(() => assertValidObjectKey('日'.repeat(341))).not.toThrow(); // 1,023 bytes
    expect(() => assertValidObjectKey('😀'.repeat(256))).not.toThrow(); // 1,024 bytes in 512 code units
  });

  it('refuses_more_than_1024_bytes_with_key_too_long_error', () => {
    expect(() => assertValidObjectKey('a'.repeat(1025))).toThrow(
      expect.objectContaining({ code: 'KeyTooLongError', status: 400, extra: { MaxSizeAllowed: 1024, Size: 1025 } }),
    );
    expect(() => assertValidObjectKey('😀'.repeat(257))).toThrow(expect.objectContaining({ code: 'KeyTooLongError' }));
    expect(() => assertValidObjectKey('日'.repeat(342))).toThrow(expect.objectContaining({ extra: { MaxSizeAllowed: 1024, Size: 1026 } }));
  });

  it('refuses_an_empty_key', () => {
    expect(() => assertValidObjectKey('')).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});
