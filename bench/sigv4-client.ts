import { createHash, createHmac } from 'node:crypto';

/**
 * A small client-side SigV4 signer (header auth, path-style) for the load generator. It caches the
 * derived signing key per day, so a request costs one SHA-256 of the canonical request and one HMAC:
 * signing must not be what limits the client. Follows
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html and, for aws-chunked,
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 */

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Uint8Array | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** S3's URI encoding: RFC 3986 unreserved characters stay, everything else is %XX; '/' kept in paths. */
export function s3UriEncode(text: string, keepSlash: boolean): string {
  const encoded = encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded;
}

/** The path of an object (or, with key '', of a bucket), encoded once, as S3 canonicalizes it. */
export function objectPath(bucket: string, key: string): string {
  return key === '' ? `/${s3UriEncode(bucket, false)}` : `/${s3UriEncode(bucket, false)}/${s3UriEncode(key, true)}`;
}

/** Canonical query string: pairs sorted by encoded name, then value; a bare flag is `name=`. */
export function canonicalQuery(query: Readonly<Record<string, string>>): string {
  return Object.entries(query)
    .map(([name, value]) => [s3UriEncode(name, false), s3UriEncode(value, false)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

export interface SignInput {
  method: string;
  /** Already encoded (objectPath). */
  path: string;
  query?: Readonly<Record<string, string>>;
  /** host[:port] as the request will send it. */
  host: string;
  /** A hex SHA-256, UNSIGNED-PAYLOAD or a streaming mode. */
  payloadHash: string;
  /** Further headers to send and sign (lower-case names), e.g. content-encoding for aws-chunked. */
  headers?: Readonly<Record<string, string>>;
}

export interface SignedRequest {
  /** Every header to send, Authorization included (host excepted: node:http sets it). */
  headers: Record<string, string>;
  /** The full path with its query string. */
  pathWithQuery: string;
  /** The seed of an aws-chunked signature chain. */
  signature: string;
  signingKey: Buffer;
  amzDate: string;
  scope: string;
}

export class SigV4Signer {
  private cachedDate = '';
  private cachedKey: Buffer = Buffer.alloc(0);

  constructor(private readonly credentials: Credentials) {}

  private signingKey(date: string): Buffer {
    if (date !== this.cachedDate) {
      const kDate = hmac(`AWS4${this.credentials.secretAccessKey}`, date);
      this.cachedKey = hmac(hmac(hmac(kDate, this.credentials.region), 's3'), 'aws4_request');
      this.cachedDate = date;
    }
    return this.cachedKey;
  }

  sign(input: SignInput, now = new Date()): SignedRequest {
    const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const date = amzDate.slice(0, 8);
    const scope = `${date}/${this.credentials.region}/s3/aws4_request`;
    const toSign: Record<string, string> = {
      ...input.headers,
      host: input.host,
      'x-amz-content-sha256': input.payloadHash,
      'x-amz-date': amzDate,
    };
    const names = Object.keys(toSign).sort();
    const signedHeaders = names.join(';');
    const canonicalHeaders = names.map((name) => `${name}:${toSign[name]!.trim()}\n`).join('');
    const query = canonicalQuery(input.query ?? {});
    const canonicalRequest = `${input.method}\n${input.path}\n${query}\n${canonicalHeaders}\n${signedHeaders}\n${input.payloadHash}`;
    const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signingKey = this.signingKey(date);
    const signature = createHmac('sha256', signingKey).update(stringToSign).digest('hex');
    const { host: _host, ...headers } = toSign;
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${this.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return { headers, pathWithQuery: query === '' ? input.path : `${input.path}?${query}`, signature, signingKey, amzDate, scope };
  }
}

/** The signature of one aws-chunked chunk, chained from the previous one (the seed for the first). */
export function chunkSignature(signed: Pick<SignedRequest, 'signingKey' | 'amzDate' | 'scope'>, previous: string, chunkSha256: string): string {
  const stringToSign = `AWS4-HMAC-SHA256-PAYLOAD\n${signed.amzDate}\n${signed.scope}\n${previous}\n${EMPTY_SHA256}\n${chunkSha256}`;
  return createHmac('sha256', signed.signingKey).update(stringToSign).digest('hex');
}

/** Bytes on the wire of a signed aws-chunked body carrying `size` bytes in chunks of `chunkSize`. */
export function signedChunkedLength(size: number, chunkSize: number): number {
  const framing = (length: number): number => length.toString(16).length + ';chunk-signature='.length + 64 + 2 + length + 2;
  const fullChunks = Math.floor(size / chunkSize);
  const rest = size % chunkSize;
  return fullChunks * framing(chunkSize) + (rest > 0 ? framing(rest) : 0) + framing(0);
}
