import type { Transform } from 'node:stream';
import { AwsChunkedDecoder } from './aws-chunked.js';
import type { RequestHeaders } from './canonical.js';
import {
  CHECKSUM_ALGORITHMS,
  checksumAlgorithmOfHeader,
  isWellFormedChecksum,
  parseChecksumAlgorithm,
  parseContentMd5,
  type ChecksumAlgorithm,
} from './checksums.js';
import { AuthError } from './errors.js';
import { HashTap, type DeclaredDigests } from './hash-tap.js';
import { isStreamingPayload, singleHeader } from './sigv4-parse.js';
import type { VerifiedSigV4 } from './sigv4.js';

/**
 * Turns an authenticated PUT's headers into the streams that check its body on the way through:
 *
 *   pipeline(req, ...verifier.transforms, backendWrite)
 *
 * aws-chunked decoding (with chunk and trailer signatures) when x-amz-content-sha256 is a STREAMING
 * mode, then one HashTap that computes SHA-256, MD5 and the declared flexible checksum and, when the
 * body ends, fails the pipeline on XAmzContentSHA256Mismatch or BadDigest before the end reaches the
 * backend. Header rules follow https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html.
 */

export interface PayloadVerifier {
  /** In pipeline order: [AwsChunkedDecoder?, HashTap]. */
  transforms: Transform[];
  decoder?: AwsChunkedDecoder;
  tap: HashTap;
  /** x-amz-decoded-content-length for aws-chunked, else Content-Length; undefined when the client sent neither. */
  declaredLength?: number;
  /** The flexible checksum the client sent (header or trailer), to store and return with x-amz-checksum-mode. */
  checksumAlgorithm?: ChecksumAlgorithm;
}

export interface PayloadVerifierOptions {
  /** Checksums to compute whether or not the client declared one. */
  alsoCompute?: readonly ChecksumAlgorithm[];
  maxSignedChunkBytes?: number;
}

// Checksum headers that name a setting rather than carry a value.
const CHECKSUM_SETTING_HEADERS = new Set(['x-amz-checksum-mode', 'x-amz-checksum-type', 'x-amz-checksum-algorithm']);

function parseLength(value: string | undefined, header: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,16}$/.test(value.trim())) throw new AuthError('InvalidArgument', `${header} must be a non-negative integer`, { ArgumentName: header, ArgumentValue: value });
  return Number(value.trim());
}

function multipleChecksums(): AuthError {
  return new AuthError('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
}

interface DeclaredChecksum {
  algorithm: ChecksumAlgorithm;
  /** Undefined while it is still to come in a trailer. */
  value?: string;
  headerName: string;
}

function declaredChecksumHeader(headers: RequestHeaders): DeclaredChecksum | undefined {
  let found: DeclaredChecksum | undefined;
  for (const name of Object.keys(headers)) {
    if (!name.startsWith('x-amz-checksum-') || CHECKSUM_SETTING_HEADERS.has(name)) continue;
    const algorithm = checksumAlgorithmOfHeader(name);
    const value = singleHeader(headers[name]);
    if (algorithm === undefined || value === undefined) continue;
    if (found !== undefined) throw multipleChecksums();
    if (!isWellFormedChecksum(algorithm, value.trim())) throw new AuthError('InvalidRequest', `Value for ${name} header is invalid.`);
    found = { algorithm, value: value.trim(), headerName: name };
  }
  return found;
}

function declaredTrailers(headers: RequestHeaders, streamingWithTrailer: boolean): string[] {
  const header = singleHeader(headers['x-amz-trailer']);
  if (header === undefined || header.trim() === '') return [];
  if (!streamingWithTrailer) {
    throw new AuthError('InvalidRequest', 'x-amz-trailer requires x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.');
  }
  const names = header.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '');
  for (const name of names) {
    // S3 accepts only checksum trailers.
    if (checksumAlgorithmOfHeader(name) === undefined) throw new AuthError('InvalidRequest', 'The value specified in the x-amz-trailer header is not supported');
  }
  if (names.length > 1) throw multipleChecksums();
  return names;
}

export function createPayloadVerifier(
  auth: Pick<VerifiedSigV4, 'payloadMode' | 'payloadSha256' | 'signingKey' | 'seedSignature' | 'amzDate' | 'scope'>,
  headers: RequestHeaders,
  options: PayloadVerifierOptions = {},
): PayloadVerifier {
  const streaming = isStreamingPayload(auth.payloadMode);
  const trailerMode = streaming && auth.payloadMode !== 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';

  const headerChecksum = declaredChecksumHeader(headers);
  const trailerNames = declaredTrailers(headers, trailerMode);
  if (headerChecksum !== undefined && trailerNames.length > 0) throw multipleChecksums();
  const trailerChecksum: DeclaredChecksum | undefined =
    trailerNames[0] !== undefined ? { algorithm: checksumAlgorithmOfHeader(trailerNames[0])!, headerName: trailerNames[0] } : undefined;
  const declaredChecksum = headerChecksum ?? trailerChecksum;

  const sdkAlgorithmHeader = singleHeader(headers['x-amz-sdk-checksum-algorithm']);
  if (sdkAlgorithmHeader !== undefined) {
    const sdkAlgorithm = parseChecksumAlgorithm(sdkAlgorithmHeader);
    if (sdkAlgorithm === undefined) {
      throw new AuthError(
        'InvalidRequest',
        `Checksum algorithm provided is unsupported. Please try again with any of the valid types: [${CHECKSUM_ALGORITHMS.join(', ')}]`,
      );
    }
    if (declaredChecksum === undefined) {
      throw new AuthError('InvalidRequest', 'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.');
    }
    if (declaredChecksum.algorithm !== sdkAlgorithm) throw new AuthError('InvalidRequest', 'Value for x-amz-sdk-checksum-algorithm header is invalid.');
  }

  const contentMd5Header = singleHeader(headers['content-md5']);
  const contentMd5Base64 = contentMd5Header === undefined ? undefined : parseContentMd5(contentMd5Header);

  let decoder: AwsChunkedDecoder | undefined;
  let declaredLength: number | undefined;
  if (streaming) {
    declaredLength = parseLength(singleHeader(headers['x-amz-decoded-content-length']), 'x-amz-decoded-content-length');
    decoder = new AwsChunkedDecoder({
      mode: auth.payloadMode as Extract<typeof auth.payloadMode, `STREAMING-${string}`>,
      signing: auth,
      declaredTrailers: trailerNames,
      ...(declaredLength !== undefined && { decodedContentLength: declaredLength }),
      ...(options.maxSignedChunkBytes !== undefined && { maxSignedChunkBytes: options.maxSignedChunkBytes }),
    });
  } else {
    declaredLength = parseLength(singleHeader(headers['content-length']), 'Content-Length');
  }

  const staticDeclared: DeclaredDigests = {
    ...(auth.payloadSha256 !== undefined && { sha256Hex: auth.payloadSha256 }),
    ...(contentMd5Base64 !== undefined && { contentMd5Base64 }),
    ...(headerChecksum !== undefined && { checksums: { [headerChecksum.algorithm]: headerChecksum.value } }),
  };
  const algorithms = new Set<ChecksumAlgorithm>(options.alsoCompute);
  if (declaredChecksum !== undefined) algorithms.add(declaredChecksum.algorithm);

  const trailerDecoder = decoder;
  const declared =
    trailerChecksum === undefined || trailerDecoder === undefined
      ? staticDeclared
      : (): DeclaredDigests => {
          // Called when the body has ended, so the decoder has read (and verified) its trailers.
          const value = trailerDecoder.trailers.get(trailerChecksum.headerName)!;
          if (!isWellFormedChecksum(trailerChecksum.algorithm, value)) {
            throw new AuthError('InvalidRequest', `Value for ${trailerChecksum.headerName} trailing header is invalid.`);
          }
          return { ...staticDeclared, checksums: { [trailerChecksum.algorithm]: value } };
        };

  const tap = new HashTap({ checksumAlgorithms: [...algorithms], declared });
  return {
    transforms: decoder === undefined ? [tap] : [decoder, tap],
    ...(decoder !== undefined && { decoder }),
    tap,
    ...(declaredLength !== undefined && { declaredLength }),
    ...(declaredChecksum !== undefined && { checksumAlgorithm: declaredChecksum.algorithm }),
  };
}
