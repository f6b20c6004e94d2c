import type { RequestHeaders } from '../auth/canonical.js';
import { contentEncodingWithoutAwsChunked } from '../auth/aws-chunked.js';
import type { ObjectHeaders, StoredObject } from '../store/objects.js';
import { header, type ResponseHeaders } from './context.js';
import { S3Error } from './errors.js';
import { quoteEtag, unquoteEtag } from './xml.js';

/** S3's limit on user-defined metadata: names and values of x-amz-meta-* together, in UTF-8 bytes. */
export const MAX_USER_METADATA_BYTES = 2048;

/** What S3 answers for an object stored without a Content-Type. */
export const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';

const USER_METADATA_PREFIX = 'x-amz-meta-';

/** The headers S3 stores with an object, taken from a PUT, CopyObject (REPLACE) or CreateMultipartUpload. */
export function readObjectHeaders(headers: RequestHeaders): ObjectHeaders {
  const userMetadata: Record<string, string> = {};
  let metadataBytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(USER_METADATA_PREFIX) || value === undefined) continue;
    const key = name.slice(USER_METADATA_PREFIX.length);
    const text = typeof value === 'string' ? value : value.join(',');
    userMetadata[key] = text;
    metadataBytes += Buffer.byteLength(key) + Buffer.byteLength(text);
  }
  if (metadataBytes > MAX_USER_METADATA_BYTES) {
    throw new S3Error('MetadataTooLarge', { extra: { Size: metadataBytes, MaxSizeAllowed: MAX_USER_METADATA_BYTES } });
  }
  return {
    contentType: header(headers, 'content-type') ?? null,
    // aws-chunked describes how this request's body was framed, not the object: S3 does not store it.
    contentEncoding: contentEncodingWithoutAwsChunked(header(headers, 'content-encoding')) ?? null,
    contentDisposition: header(headers, 'content-disposition') ?? null,
    contentLanguage: header(headers, 'content-language') ?? null,
    cacheControl: header(headers, 'cache-control') ?? null,
    expires: header(headers, 'expires') ?? null,
    userMetadata,
  };
}

/** HTTP dates carry whole seconds, so comparisons and Last-Modified use the time truncated to a second. */
function wholeSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/** The headers of a GET or HEAD answer, before any response-* override. */
export function objectResponseHeaders(object: StoredObject, options: { checksumMode: boolean }): ResponseHeaders {
  const headers: ResponseHeaders = {
    'content-type': object.contentType ?? DEFAULT_CONTENT_TYPE,
    'content-length': object.size,
    etag: quoteEtag(object.etag),
    'last-modified': object.lastModified.toUTCString(),
    'accept-ranges': 'bytes',
    'content-encoding': object.contentEncoding ?? undefined,
    'content-disposition': object.contentDisposition ?? undefined,
    'content-language': object.contentLanguage ?? undefined,
    'cache-control': object.cacheControl ?? undefined,
    expires: object.expires ?? undefined,
    'x-amz-mp-parts-count': object.partsCount ?? undefined,
    'x-amz-expiration': object.expiresAt ? `expiry-date="${object.expiresAt.toUTCString()}"` : undefined,
  };
  for (const [name, value] of Object.entries(object.userMetadata)) headers[`${USER_METADATA_PREFIX}${name}`] = value;
  if (options.checksumMode) {
    for (const [algorithm, value] of Object.entries(object.checksums)) headers[`x-amz-checksum-${algorithm.toLowerCase()}`] = value;
  }
  return headers;
}

const RESPONSE_OVERRIDES: Readonly<Record<string, string>> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

/** GetObject's response-* query parameters replace the stored headers in this one answer. */
export function applyResponseOverrides(headers: ResponseHeaders, query: URLSearchParams): void {
  for (const [parameter, name] of Object.entries(RESPONSE_OVERRIDES)) {
    const value = query.get(parameter);
    if (value !== null) headers[name] = value;
  }
}

function etagMatches(list: string, etag: string): boolean {
  return list.split(',').some((candidate) => {
    const trimmed = candidate.trim();
    return trimmed === '*' || unquoteEtag(trimmed.replace(/^W\//, '')) === etag;
  });
}

function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : Math.floor(time / 1000);
}

/**
 * Conditional GET/HEAD (RFC 9110 section 13.2.2 order, as S3 applies it): If-Match, else If-Unmodified-Since,
 * fail with 412; If-None-Match, else If-Modified-Since, answer 304. Returns 304 or null to proceed.
 */
export function evaluatePreconditions(headers: RequestHeaders, object: Pick<StoredObject, 'etag' | 'lastModified'>): 304 | null {
  const modified = wholeSeconds(object.lastModified);
  const ifMatch = header(headers, 'if-match');
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, object.etag)) throw new S3Error('PreconditionFailed', { extra: { Condition: 'If-Match' } });
  } else {
    const since = parseHttpDate(header(headers, 'if-unmodified-since'));
    if (since !== undefined && modified > since) throw new S3Error('PreconditionFailed', { extra: { Condition: 'If-Unmodified-Since' } });
  }
  const ifNoneMatch = header(headers, 'if-none-match');
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, object.etag)) return 304;
  } else {
    const since = parseHttpDate(header(headers, 'if-modified-since'));
    if (since !== undefined && modified <= since) return 304;
  }
  return null;
}

/**
 * CopyObject's `x-amz-copy-source-if-*`, evaluated on the source. Every failed condition is 412
 * PreconditionFailed (a copy has no 304). As the CopyObject reference states: if-match true and
 * if-unmodified-since false copies (if-match decides); if-none-match false and if-modified-since true
 * fails (if-none-match decides). That is RFC 9110's order, so each date condition is read only without
 * its ETag counterpart. An if-modified-since later than now is not a valid date and is ignored (RFC 9110
 * section 13.1.3), which is what S3 does (it copies).
 */
export function assertCopySourcePreconditions(headers: RequestHeaders, object: Pick<StoredObject, 'etag' | 'lastModified'>): void {
  const modified = wholeSeconds(object.lastModified);
  const failed = (condition: string) => new S3Error('PreconditionFailed', { extra: { Condition: condition } });
  const ifMatch = header(headers, 'x-amz-copy-source-if-match');
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, object.etag)) throw failed('x-amz-copy-source-If-Match');
  } else {
    const since = parseHttpDate(header(headers, 'x-amz-copy-source-if-unmodified-since'));
    if (since !== undefined && modified > since) throw failed('x-amz-copy-source-If-Unmodified-Since');
  }
  const ifNoneMatch = header(headers, 'x-amz-copy-source-if-none-match');
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, object.etag)) throw failed('x-amz-copy-source-If-None-Match');
  } else {
    const since = parseHttpDate(header(headers, 'x-amz-copy-source-if-modified-since'));
    if (since !== undefined && since <= wholeSeconds(new Date()) && modified <= since) throw failed('x-amz-copy-source-If-Modified-Since');
  }
}

/** A byte range with both ends known, inclusive. */
export interface ResolvedRange {
  start: number;
  end: number;
}

/**
 * A single byte range, as S3 serves them: `bytes=a-b`, `bytes=a-` and `bytes=-n`. A header S3 would ignore
 * (another unit, several ranges, bad syntax) yields null: the whole object. A range that starts past the
 * end is InvalidRange (416).
 */
export function parseRange(value: string | undefined, size: number): ResolvedRange | null {
  if (value === undefined) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  const invalid = () => new S3Error('InvalidRange', { extra: { RangeRequested: value, ActualObjectSize: size }, headers: { 'content-range': `bytes */${size}` } });
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) throw invalid();
    if (size === 0) return null;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (match[2] !== '' && Number(match[2]) < start) return null;
  if (start >= size) throw invalid();
  return { start, end };
}
