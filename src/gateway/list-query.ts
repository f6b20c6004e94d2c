/**
 * Query parameters ListObjects and ListObjectsV2 share, and the v2 continuation token.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
 */
import { createHash } from 'node:crypto';
import type { KeyRecord } from '../auth/key-store.js';
import { S3Error } from './errors.js';
import type { EncodingType, Owner } from './xml.js';

/** "Returns some or all (up to 1,000) of the objects in a bucket": larger values are served as 1,000. */
export const MAX_LIST_KEYS = 1000;

const INT32_MAX = 2 ** 31 - 1;

/**
 * `max-keys`: absent -> 1,000; 0 is a valid (empty, untruncated) page; above 1,000 clamps. S3 parses it
 * as a signed 32-bit integer and answers anything else, negatives included, with this InvalidArgument
 * (measured against S3: floci-io/floci#3510, brekkylab/backlot#192).
 */
export function parseMaxKeys(query: URLSearchParams): number {
  const text = query.get('max-keys');
  if (text === null) return MAX_LIST_KEYS;
  const value = /^[0-9]{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= 0 && value <= INT32_MAX)) {
    throw new S3Error('InvalidArgument', {
      message: 'Argument maxKeys must be an integer between 0 and 2147483647',
      extra: { ArgumentName: 'maxKeys', ArgumentValue: text },
    });
  }
  return Math.min(value, MAX_LIST_KEYS);
}

/** `encoding-type`: only `url` exists. */
export function parseEncodingType(query: URLSearchParams): EncodingType | undefined {
  const text = query.get('encoding-type');
  if (text === null) return undefined;
  if (text.toLowerCase() === 'url') return 'url';
  throw new S3Error('InvalidArgument', {
    message: 'Invalid Encoding Method specified in Request',
    extra: { ArgumentName: 'encoding-type', ArgumentValue: text },
  });
}

/** The owner S3 lists with buckets and objects: the account, named by its AgentCache user id. */
export function ownerOf(account: Pick<KeyRecord, 'accountId' | 'agentcacheUserId'>): Owner {
  return { id: account.accountId, displayName: account.agentcacheUserId };
}

// A continuation token is `<base64url of the last entry listed>.<check>`. The API reference calls it
// "obfuscated and not a real key"; ours is opaque to clients but carries the position itself, so any
// gateway process can resume any listing with no state kept between pages. The check catches tokens that
// were not ours (truncated, edited, from another service) so they fail instead of listing from a guess.
const TOKEN_CHECK_BYTES = 6;

function tokenCheck(position: string): string {
  return createHash('sha256').update('jt-list-v2\n').update(position, 'utf8').digest().subarray(0, TOKEN_CHECK_BYTES).toString('base64url');
}

export function encodeContinuationToken(position: string): string {
  return `${Buffer.from(position, 'utf8').toString('base64url')}.${tokenCheck(position)}`;
}

/** The position a token resumes after; InvalidArgument as S3 words it for a token that is not one of ours. */
export function decodeContinuationToken(token: string): string {
  const dot = token.indexOf('.');
  const encoded = token.slice(0, dot);
  const bytes = Buffer.from(encoded, 'base64url');
  let position: string | undefined;
  if (dot > 0 && bytes.toString('base64url') === encoded) {
    try {
      position = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      position = undefined;
    }
  }
  if (position === undefined || token.slice(dot + 1) !== tokenCheck(position)) {
    throw new S3Error('InvalidArgument', {
      message: 'The continuation token provided is incorrect',
      extra: { ArgumentName: 'continuation-token' },
    });
  }
  return position;
}
