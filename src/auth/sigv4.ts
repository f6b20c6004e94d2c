import { timingSafeEqual } from 'node:crypto';
import {
  SigningKeyCache,
  buildCanonicalRequest,
  buildStringToSign,
  canonicalQueryString,
  canonicalUri,
  hmacSha256,
} from './canonical.js';
import { AuthError, MESSAGES, spacedHexBytes } from './errors.js';
import { parseSigV4, type ParseOptions, type ParsedSigV4, type SigV4Request } from './sigv4-parse.js';

/**
 * SigV4 verification for S3 requests signed in the Authorization header or as presigned URLs.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
 */

export {
  classifyPayloadHash,
  formatAmzDate,
  isStreamingPayload,
  parseAmzDate,
  parseSigV4,
  MAX_PRESIGNED_EXPIRES_SECONDS,
  type ParsedSigV4,
  type PayloadMode,
  type SigV4Request,
  type StreamingPayloadMode,
} from './sigv4-parse.js';

/** An account may hold two valid secrets while a rotation's grace period lasts; each is tried. */
export type SecretLookup = (accessKeyId: string) => Promise<readonly string[] | null>;

export interface VerifiedSigV4 extends ParsedSigV4 {
  /** Lower-case hex signature of the request: the seed of an aws-chunked signature chain. */
  seedSignature: string;
  /** kSigning for the credential scope, which chunk and trailer signatures are computed with. */
  signingKey: Buffer;
  /** Which of the looked-up secrets matched (0 = the current one). */
  secretIndex: number;
  /** Presigned only. */
  expiresAt?: Date;
}

/** What the aws-chunked decoder needs to continue the chain; VerifiedSigV4 satisfies it. */
export type ChunkSigningContext = Pick<VerifiedSigV4, 'signingKey' | 'seedSignature' | 'amzDate' | 'scope'>;

export interface SigV4VerifierOptions extends ParseOptions {
  lookupSecrets: SecretLookup;
  /** S3 allows 15 minutes between the request's time and ours. */
  maxClockSkewMs?: number;
  signingKeyCacheSize?: number;
}

export interface SigV4Verifier {
  /**
   * Authenticates the request or throws AuthError. Anonymous requests are refused (AccessDenied);
   * call parseSigV4 first to tell them apart.
   */
  verify(request: SigV4Request, now?: Date): Promise<VerifiedSigV4>;
  /** Drops every cached signing key (not needed for rotation: keys are cached per secret). */
  clearSigningKeys(): void;
}

export const DEFAULT_MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

function isoSeconds(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The request's time against ours: skew for header auth, validity window for presigned URLs. */
export function checkRequestTime(parsed: ParsedSigV4, now: Date, maxClockSkewMs = DEFAULT_MAX_CLOCK_SKEW_MS): Date | undefined {
  const requestMs = parsed.requestTime.getTime();
  if (parsed.authType === 'header') {
    if (Math.abs(now.getTime() - requestMs) > maxClockSkewMs) {
      throw new AuthError('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
        RequestTime: parsed.amzDate,
        ServerTime: isoSeconds(now),
        MaxAllowedSkewMilliseconds: String(maxClockSkewMs),
      });
    }
    return undefined;
  }
  const expiresAt = new Date(requestMs + (parsed.expiresInSeconds ?? 0) * 1000);
  if (requestMs - now.getTime() > maxClockSkewMs) {
    throw new AuthError('AccessDenied', 'Request is not yet valid', {
      'X-Amz-Date': parsed.amzDate,
      ServerTime: isoSeconds(now),
    });
  }
  if (now.getTime() > expiresAt.getTime()) {
    throw new AuthError('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(parsed.expiresInSeconds ?? 0),
      Expires: isoSeconds(expiresAt),
      ServerTime: isoSeconds(now),
    });
  }
  return expiresAt;
}

interface CanonicalCandidate {
  uri: string;
  query: string;
}

/**
 * The canonical URI and query to try, most likely first. Clients agree on UriEncode of the decoded
 * path, but not on what a raw `+` means, and a few sign the path exactly as they sent it; the extra
 * forms are only computed when the first one fails and only when they differ from it.
 */
function* canonicalCandidates(request: SigV4Request, omit: string | undefined): Generator<CanonicalCandidate> {
  const first = { uri: canonicalUri(request.path), query: canonicalQueryString(request.query, omit) };
  yield first;
  const seen = new Set([`${first.uri}?${first.query}`]);
  const others: (() => CanonicalCandidate)[] = [];
  if (request.path.includes('+')) others.push(() => ({ uri: canonicalUri(request.path, true), query: first.query }));
  others.push(() => ({ uri: request.path === '' ? '/' : request.path, query: canonicalQueryString(request.query, omit, false) }));
  for (const make of others) {
    const candidate = make();
    const id = `${candidate.uri}?${candidate.query}`;
    if (seen.has(id)) continue;
    seen.add(id);
    yield candidate;
  }
}

function signatureBytes(hex: string): Buffer | null {
  return /^[0-9a-fA-F]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : null;
}

export function createSigV4Verifier(options: SigV4VerifierOptions): SigV4Verifier {
  const signingKeys = new SigningKeyCache(options.signingKeyCacheSize);
  const maxClockSkewMs = options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;

  async function verify(request: SigV4Request, now: Date = new Date()): Promise<VerifiedSigV4> {
    const parsed = parseSigV4(request, options);
    if (parsed === null) throw new AuthError('AccessDenied', 'Access Denied');
    const expiresAt = checkRequestTime(parsed, now, maxClockSkewMs);

    const secrets = await options.lookupSecrets(parsed.accessKeyId);
    if (secrets === null || secrets.length === 0) {
      throw new AuthError('InvalidAccessKeyId', MESSAGES.invalidAccessKeyId, { AWSAccessKeyId: parsed.accessKeyId });
    }
    const provided = signatureBytes(parsed.signatureProvided);
    const omit = parsed.authType === 'presigned' ? 'X-Amz-Signature' : undefined;
    let firstAttempt: { canonicalRequest: string; stringToSign: string } | undefined;

    for (const candidate of canonicalCandidates(request, omit)) {
      const canonicalRequest = buildCanonicalRequest({
        method: request.method,
        uri: candidate.uri,
        query: candidate.query,
        headers: request.headers,
        signedHeaders: parsed.signedHeaders,
        payloadHash: parsed.payloadHash,
      });
      const stringToSign = buildStringToSign(parsed.amzDate, parsed.scope, canonicalRequest);
      firstAttempt ??= { canonicalRequest, stringToSign };
      if (provided === null) break;
      for (let secretIndex = 0; secretIndex < secrets.length; secretIndex++) {
        const signingKey = signingKeys.get(secrets[secretIndex]!, parsed.date, parsed.region, parsed.service);
        const expected = hmacSha256(signingKey, stringToSign);
        if (timingSafeEqual(expected, provided)) {
          return {
            ...parsed,
            seedSignature: expected.toString('hex'),
            signingKey,
            secretIndex,
            ...(expiresAt !== undefined && { expiresAt }),
          };
        }
      }
    }
    const { canonicalRequest, stringToSign } = firstAttempt!;
    throw new AuthError('SignatureDoesNotMatch', MESSAGES.signatureDoesNotMatch, {
      AWSAccessKeyId: parsed.accessKeyId,
      StringToSign: stringToSign,
      SignatureProvided: parsed.signatureProvided,
      StringToSignBytes: spacedHexBytes(stringToSign),
      CanonicalRequest: canonicalRequest,
      CanonicalRequestBytes: spacedHexBytes(canonicalRequest),
    });
  }

  return { verify, clearSigningKeys: () => signingKeys.clear() };
}

