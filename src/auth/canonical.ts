import { createHash, createHmac } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/**
 * The pieces of a SigV4 canonical request, computed the way S3 computes them on its side
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "Canonical request"):
 *
 *   <HTTPMethod>\n<CanonicalURI>\n<CanonicalQueryString>\n<CanonicalHeaders>\n<SignedHeaders>\n<HashedPayload>
 *
 * S3 differs from other AWS services in two ways that matter here: the path is URI-encoded once (not
 * twice), and it is not normalized (`//`, `.` and `..` stay as they are).
 */

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Header values as Node gives them; an array (req.headersDistinct) keeps repeated headers apart. */
export type HeaderValue = string | readonly string[] | undefined;
export type RequestHeaders = Readonly<Record<string, HeaderValue>>;

// RFC 3986 unreserved characters, the only bytes UriEncode leaves alone (A-Z a-z 0-9 - . _ ~).
const UNRESERVED = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;
const PERCENT_HEX: string[] = [];
for (let b = 0; b < 256; b++) PERCENT_HEX.push(`%${b.toString(16).toUpperCase().padStart(2, '0')}`);

const ALREADY_CANONICAL_PATH = /^[A-Za-z0-9\-._~/]*$/;
const ALREADY_CANONICAL_COMPONENT = /^[A-Za-z0-9\-._~]*$/;
const PERCENT_ESCAPE = /%[0-9A-Fa-f]{2}/g;

/**
 * Percent-decodes to bytes. A `%` not followed by two hex digits stays a literal `%` (it is then
 * re-encoded as `%25`), as lenient servers do; other characters are taken as UTF-8.
 */
export function percentDecode(text: string, plusIsSpace: boolean): Buffer {
  const source = plusIsSpace && text.includes('+') ? text.replace(/\+/g, ' ') : text;
  if (!source.includes('%')) return Buffer.from(source, 'utf8');
  const out = Buffer.allocUnsafe(Buffer.byteLength(source, 'utf8'));
  let length = 0;
  let last = 0;
  for (const match of source.matchAll(PERCENT_ESCAPE)) {
    const at = match.index;
    if (at > last) length += out.write(source.slice(last, at), length, 'utf8');
    out[length++] = parseInt(match[0].slice(1), 16);
    last = at + 3;
  }
  if (last < source.length) length += out.write(source.slice(last), length, 'utf8');
  return out.subarray(0, length);
}

/** AWS UriEncode over bytes: unreserved bytes as they are, every other byte as %XX (upper-case hex). */
export function uriEncodeBytes(bytes: Uint8Array, keepSlash: boolean): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out += UNRESERVED[b] === 1 || (keepSlash && b === 0x2f) ? String.fromCharCode(b) : PERCENT_HEX[b]!;
  }
  return out;
}

/** UriEncode of an unencoded string (a key, a query value) as the SDKs do before signing. */
export function uriEncode(text: string, keepSlash = false): string {
  return uriEncodeBytes(Buffer.from(text, 'utf8'), keepSlash);
}

/**
 * The canonical URI of a raw (still percent-encoded) request path: decode, then UriEncode each byte
 * with `/` kept. Clients differ in what they escape (`!*'()` by the JS SDK and botocore, not by Go's
 * PathEscape; `~` by some old clients), but each signs UriEncode of the decoded key, so decoding first
 * and re-encoding with the RFC 3986 unreserved set reproduces what any of them signed. `%2F` decodes to
 * a `/`, as S3 reads it. `plusIsSpace` reads `+` as a space, which aws4 and S3's legacy parsing do.
 */
export function canonicalUri(rawPath: string, plusIsSpace = false): string {
  if (rawPath === '') return '/';
  if (ALREADY_CANONICAL_PATH.test(rawPath)) return rawPath;
  return uriEncodeBytes(percentDecode(rawPath, plusIsSpace), true);
}

function canonicalComponent(raw: string, plusIsSpace: boolean): string {
  return ALREADY_CANONICAL_COMPONENT.test(raw) ? raw : uriEncodeBytes(percentDecode(raw, plusIsSpace), false);
}

export interface QueryParam {
  /** Decoded name. */
  name: string;
  /** Decoded value; '' for a parameter without `=`. */
  value: string;
}

/** Splits a raw query string into decoded parameters, in order; `+` is a space (form encoding). */
export function parseQuery(rawQuery: string): QueryParam[] {
  const params: QueryParam[] = [];
  if (rawQuery === '') return params;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    params.push({ name: percentDecode(name, true).toString('utf8'), value: percentDecode(value, true).toString('utf8') });
  }
  return params;
}

/**
 * CanonicalQueryString: each name and value UriEncoded (from their decoded form), sorted by encoded
 * name then value, `name=value` joined by `&`; a parameter without `=` gets an empty value.
 * `omit` drops a parameter by its name (X-Amz-Signature for presigned URLs). `+` is read as a space
 * (form encoding, as aws4 and Go's url.Query do) unless `plusIsSpace` is false.
 */
export function canonicalQueryString(rawQuery: string, omit?: string, plusIsSpace = true): string {
  if (rawQuery === '') return '';
  const pairs: [string, string][] = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = canonicalComponent(eq < 0 ? part : part.slice(0, eq), plusIsSpace);
    if (omit !== undefined && name === omit) continue;
    pairs.push([name, eq < 0 ? '' : canonicalComponent(part.slice(eq + 1), plusIsSpace)]);
  }
  // Encoded names and values are ASCII, so comparing UTF-16 code units is byte order.
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  let out = '';
  for (const [name, value] of pairs) out += `${out === '' ? '' : '&'}${name}=${value}`;
  return out;
}

/** Trimall: trim, and fold each run of inner whitespace into one space. */
function trimAll(value: string): string {
  const trimmed = value.trim();
  return /\s\s|[\t\n\r\f\v]/.test(trimmed) ? trimmed.replace(/\s+/g, ' ') : trimmed;
}

/** The header's canonical value: repeated headers' values, each trimmed, joined by ','. */
export function canonicalHeaderValue(value: HeaderValue): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return trimAll(value);
  return value.map(trimAll).join(',');
}

/** CanonicalHeaders: `name:value\n` for each signed header, in the order the client listed them. */
export function canonicalHeadersBlock(headers: RequestHeaders, signedHeaders: readonly string[]): string {
  let out = '';
  for (const name of signedHeaders) out += `${name}:${canonicalHeaderValue(headers[name])}\n`;
  return out;
}

export interface CanonicalRequestParts {
  method: string;
  uri: string;
  query: string;
  headers: RequestHeaders;
  signedHeaders: readonly string[];
  payloadHash: string;
}

export function buildCanonicalRequest(parts: CanonicalRequestParts): string {
  return `${parts.method}\n${parts.uri}\n${parts.query}\n${canonicalHeadersBlock(parts.headers, parts.signedHeaders)}\n${parts.signedHeaders.join(';')}\n${parts.payloadHash}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmacSha256(key: Uint8Array | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function buildStringToSign(amzDate: string, scope: string, canonicalRequest: string): string {
  return `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
}

/** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"). */
export function deriveSigningKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = hmacSha256(`AWS4${secret}`, date);
  const kRegion = hmacSha256(kDate, region);
  const kService = hmacSha256(kRegion, service);
  return hmacSha256(kService, 'aws4_request');
}

/**
 * Derived signing keys, so a busy key costs one HMAC chain per day and region rather than per request.
 * Entries are keyed by the secret itself: a rotated-out secret's key is never asked for again and ages
 * out of the LRU.
 */
export class SigningKeyCache {
  private readonly keys: LRUCache<string, Buffer>;

  constructor(max = 1024) {
    this.keys = new LRUCache<string, Buffer>({ max });
  }

  get(secret: string, date: string, region: string, service: string): Buffer {
    const cacheKey = `${date}/${region}/${service}/${secret}`;
    let key = this.keys.get(cacheKey);
    if (key === undefined) {
      key = deriveSigningKey(secret, date, region, service);
      this.keys.set(cacheKey, key);
    }
    return key;
  }

  clear(): void {
    this.keys.clear();
  }
}
