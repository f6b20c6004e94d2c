import { buildCanonicalRequest, buildStringToSign, canonicalQueryString, deriveSigningKey, hmacSha256, uriEncode } from './canonical.js';
import { formatAmzDate, MAX_PRESIGNED_EXPIRES_SECONDS } from './sigv4-parse.js';

/**
 * A presigned GET URL, as the SDKs' presigners make them
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html): path-style
 * `/<bucket>/<key>`, only `host` signed, UNSIGNED-PAYLOAD. The gateway's own SigV4 verifier accepts it
 * like any client's.
 */

export interface PresignGetInput {
  /** Scheme, host and port the client will use, e.g. `https://s3.example.com`; the host is signed. */
  origin: string;
  bucket: string;
  key: string;
  accessKeyId: string;
  secret: string;
  expiresInSeconds: number;
  now?: Date;
  region?: string;
}

export interface PresignedUrl {
  url: string;
  expiresAt: Date;
}

export function presignGetUrl(input: PresignGetInput): PresignedUrl {
  if (!Number.isInteger(input.expiresInSeconds) || input.expiresInSeconds < 1 || input.expiresInSeconds > MAX_PRESIGNED_EXPIRES_SECONDS) {
    throw new RangeError(`expiresInSeconds must be a whole number from 1 to ${MAX_PRESIGNED_EXPIRES_SECONDS}`);
  }
  const origin = new URL(input.origin);
  const now = input.now ?? new Date();
  // The signature covers whole seconds; the date it names must be the one the expiry counts from.
  const signedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const amzDate = formatAmzDate(signedAt);
  const date = amzDate.slice(0, 8);
  const region = input.region ?? 'us-east-1';
  const scope = `${date}/${region}/s3/aws4_request`;
  const path = `/${uriEncode(input.bucket)}/${uriEncode(input.key, true)}`;
  const query = [
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Credential', `${input.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(input.expiresInSeconds)],
    ['X-Amz-SignedHeaders', 'host'],
  ]
    .map(([name, value]) => `${name}=${uriEncode(value!)}`)
    .join('&');
  const canonicalRequest = buildCanonicalRequest({
    method: 'GET',
    uri: path,
    query: canonicalQueryString(query),
    // URL.host leaves out a default port, as clients do in the Host header they send.
    headers: { host: origin.host },
    signedHeaders: ['host'],
    payloadHash: 'UNSIGNED-PAYLOAD',
  });
  const signature = hmacSha256(deriveSigningKey(input.secret, date, region, 's3'), buildStringToSign(amzDate, scope, canonicalRequest)).toString('hex');
  return {
    url: `${origin.protocol}//${origin.host}${path}?${query}&X-Amz-Signature=${signature}`,
    expiresAt: new Date(signedAt.getTime() + input.expiresInSeconds * 1000),
  };
}
