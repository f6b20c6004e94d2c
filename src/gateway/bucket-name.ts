/**
 * Names tenants may give buckets and objects.
 * Bucket rules: "General purpose bucket naming rules", Amazon S3 User Guide.
 * Key rules: "Naming Amazon S3 objects": 1 to 1,024 bytes of UTF-8.
 */
import { S3Error } from './errors.js';

/** `/api/...` on the gateway is the tenant REST API and `/healthz` its liveness probe: no bucket may take those names. */
export const RESERVED_BUCKET_NAMES: ReadonlySet<string> = new Set(['api', 'healthz']);

export const MAX_KEY_BYTES = 1024;

// Prefixes and suffixes S3 reserves for its own names (access point aliases, Multi-Region Access Points,
// directory and table buckets, documentation examples).
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'] as const;
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'] as const;

/** Why a name breaks S3's rules, or null when it follows them. Checked in the order the rules are listed. */
export function bucketNameProblem(name: string): string | null {
  if (name.length < 3 || name.length > 63) return 'Bucket names must be between 3 and 63 characters long.';
  if (!/^[a-z0-9.-]+$/.test(name)) {
    return 'Bucket names can consist only of lowercase letters, numbers, dots (.), and hyphens (-).';
  }
  if (!/^[a-z0-9](.*[a-z0-9])?$/.test(name)) return 'Bucket names must begin and end with a letter or number.';
  if (name.includes('..')) return 'Bucket names must not contain two adjacent periods.';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'Bucket names must not be formatted as an IP address.';
  const prefix = RESERVED_PREFIXES.find((reserved) => name.startsWith(reserved));
  if (prefix !== undefined) return `Bucket names must not start with the prefix ${prefix}.`;
  const suffix = RESERVED_SUFFIXES.find((reserved) => name.endsWith(reserved));
  if (suffix !== undefined) return `Bucket names must not end with the suffix ${suffix}.`;
  if (RESERVED_BUCKET_NAMES.has(name)) return `The bucket name ${name} is reserved.`;
  return null;
}

/** For CreateBucket: throws InvalidBucketName, with the broken rule in the message and BucketName as S3 adds it. */
export function assertValidBucketName(name: string): void {
  const problem = bucketNameProblem(name);
  if (problem === null) return;
  throw new S3Error('InvalidBucketName', {
    message: `The specified bucket is not valid. ${problem}`,
    extra: { BucketName: name },
  });
}

/**
 * For every request naming a key. Longer than 1,024 bytes -> KeyTooLongError; empty -> InvalidArgument
 * (an addressed object cannot have an empty key; a DeleteObjects entry can be sent with one).
 */
export function assertValidObjectKey(key: string): void {
  if (key.length === 0) {
    throw new S3Error('InvalidArgument', {
      message: 'Object keys must be at least 1 byte long.',
      extra: { ArgumentName: 'key', ArgumentValue: '' },
    });
  }
  // n UTF-16 code units take at most 3n UTF-8 bytes, so only long keys need counting.
  if (key.length * 3 <= MAX_KEY_BYTES) return;
  const size = Buffer.byteLength(key, 'utf8');
  if (size > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', { extra: { MaxSizeAllowed: MAX_KEY_BYTES, Size: size } });
  }
}
