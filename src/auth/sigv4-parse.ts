import { parseQuery, type HeaderValue, type RequestHeaders } from './canonical.js';
import { AuthError, MESSAGES } from './errors.js';

/**
 * Reading SigV4 credentials out of a request, without any secret: the `Authorization` header
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html) or the
 * presigned-URL query parameters (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html).
 * Error codes and messages are the ones S3 answers with.
 */

export interface SigV4Request {
  method: string;
  /** The path exactly as received: still percent-encoded, without the query. */
  path: string;
  /** The raw query string, without `?`; '' when there is none. */
  query: string;
  /** Lower-case names. Pass Node's `req.headersDistinct` so repeated headers keep their own values. */
  headers: RequestHeaders;
}

/** The `x-amz-content-sha256` modes we accept; 'SHA256' is a hex digest of the whole body. */
export type PayloadMode =
  | 'UNSIGNED-PAYLOAD'
  | 'SHA256'
  | 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
  | 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
  | 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

export type StreamingPayloadMode = Extract<PayloadMode, `STREAMING-${string}`>;

export interface ParsedSigV4 {
  authType: 'header' | 'presigned';
  accessKeyId: string;
  /** YYYYMMDD from the credential scope. */
  date: string;
  region: string;
  service: string;
  /** `<date>/<region>/<service>/aws4_request`. */
  scope: string;
  /** The request timestamp as signed, ISO 8601 basic (`20130524T000000Z`). */
  amzDate: string;
  requestTime: Date;
  /** As listed by the client, lower-case. */
  signedHeaders: string[];
  signatureProvided: string;
  /** The last line of the canonical request. */
  payloadHash: string;
  payloadMode: PayloadMode;
  /** Lower-case hex, when payloadMode is 'SHA256'. */
  payloadSha256?: string;
  /** Presigned only: X-Amz-Expires in seconds. */
  expiresInSeconds?: number;
}

export const MAX_PRESIGNED_EXPIRES_SECONDS = 604_800;

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SIGV4A_ALGORITHM = 'AWS4-ECDSA-P256-SHA256';
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
const STREAMING_MODES: ReadonlySet<string> = new Set([
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
]);
const PRESIGNED_REQUIRED = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires'];

export function isStreamingPayload(mode: PayloadMode): mode is StreamingPayloadMode {
  return STREAMING_MODES.has(mode);
}

/** Node joins nothing for these, but a header sent twice arrives as an array from headersDistinct. */
export function singleHeader(value: HeaderValue): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  return value.length === 1 ? value[0] : value.join(',');
}

/** `20130524T000000Z` -> Date, or null when it is not a valid ISO 8601 basic timestamp. */
export function parseAmzDate(text: string): Date | null {
  const m = AMZ_DATE.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const time = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 20130231 over into March; a real timestamp survives the round trip.
  return time.getUTCMonth() === mo - 1 && time.getUTCDate() === d && h < 24 && mi < 60 && s < 60 ? time : null;
}

export function formatAmzDate(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** What `x-amz-content-sha256` (or X-Amz-Content-Sha256 on a presigned URL) asks for. */
export function classifyPayloadHash(value: string): { mode: PayloadMode; sha256?: string } {
  if (value === 'UNSIGNED-PAYLOAD') return { mode: 'UNSIGNED-PAYLOAD' };
  if (STREAMING_MODES.has(value)) return { mode: value as StreamingPayloadMode };
  if (HEX_SHA256.test(value)) return { mode: 'SHA256', sha256: value.toLowerCase() };
  if (value.startsWith('STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD')) {
    throw new AuthError('NotImplemented', `${MESSAGES.notImplemented} (SigV4a payload signing, ${value})`, { Header: 'x-amz-content-sha256' });
  }
  throw new AuthError(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
    { ArgumentName: 'x-amz-content-sha256', ArgumentValue: value },
  );
}

type CredentialErrorCode = 'AuthorizationHeaderMalformed' | 'AuthorizationQueryParametersError';

interface CredentialScope {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
}

function parseCredential(credential: string, code: CredentialErrorCode, allowedRegions: readonly string[] | undefined): CredentialScope {
  const prefix = code === 'AuthorizationHeaderMalformed' ? 'The authorization header is malformed;' : 'Error parsing the X-Amz-Credential parameter;';
  const parts = credential.split('/');
  // Taken from the right: the access key id is whatever precedes the four scope fields.
  if (parts.length < 5) {
    throw new AuthError(code, `${prefix} the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  const terminator = parts.pop()!;
  const service = parts.pop()!;
  const region = parts.pop()!;
  const date = parts.pop()!;
  const accessKeyId = parts.join('/');
  if (accessKeyId === '' || !/^\d{8}$/.test(date) || region === '') {
    throw new AuthError(code, `${prefix} the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  if (service !== 's3') throw new AuthError(code, `${prefix} incorrect service "${service}". This endpoint belongs to "s3".`);
  if (terminator !== 'aws4_request') {
    throw new AuthError(code, `${prefix} incorrect terminal "${terminator}". This endpoint uses "aws4_request".`);
  }
  if (allowedRegions !== undefined && !allowedRegions.includes(region)) {
    throw new AuthError(code, `${prefix} the region '${region}' is wrong; expecting '${allowedRegions[0] ?? ''}'`, {
      Region: allowedRegions[0] ?? '',
    });
  }
  return { accessKeyId, date, region, service };
}

function parseSignedHeaders(value: string, code: CredentialErrorCode): string[] {
  const names = value.split(';');
  if (value === '' || names.some((name) => name === '')) {
    throw new AuthError(code, code === 'AuthorizationHeaderMalformed' ? 'The authorization header is malformed; SignedHeaders is empty or malformed.' : 'X-Amz-SignedHeaders is empty or malformed.');
  }
  return names.map((name) => name.toLowerCase());
}

/** S3 refuses requests carrying x-amz-* headers the signature does not cover, and requires Host signed. */
function checkHeadersSigned(headers: RequestHeaders, signedHeaders: readonly string[]): void {
  const signed = new Set(signedHeaders);
  const unsigned: string[] = [];
  if (!signed.has('host')) unsigned.push('host');
  for (const name of Object.keys(headers)) {
    if (name.startsWith('x-amz-') && !signed.has(name) && headers[name] !== undefined) unsigned.push(name);
  }
  if (unsigned.length > 0) {
    throw new AuthError('AccessDenied', 'There were headers present in the request which were not signed', {
      HeadersNotSigned: unsigned.join(', '),
    });
  }
}

function unsupportedMechanism(): AuthError {
  return new AuthError('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
}

function parseAuthorizationHeader(request: SigV4Request, authorization: string, allowedRegions: readonly string[] | undefined): ParsedSigV4 {
  const space = authorization.indexOf(' ');
  const algorithm = space < 0 ? authorization : authorization.slice(0, space);
  if (algorithm === 'AWS') throw unsupportedMechanism(); // SigV2: `AWS AKID:signature`
  if (algorithm === SIGV4A_ALGORITHM) throw new AuthError('NotImplemented', `${MESSAGES.notImplemented} (SigV4a, ${SIGV4A_ALGORITHM})`, { Header: 'Authorization' });
  if (algorithm !== ALGORITHM) {
    throw new AuthError('InvalidArgument', 'Unsupported Authorization Type', { ArgumentName: 'Authorization', ArgumentValue: authorization });
  }
  const fields = new Map<string, string>();
  for (const part of authorization.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeadersField = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeadersField === undefined || signature === undefined) {
    throw new AuthError(
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.',
    );
  }
  const scope = parseCredential(credential, 'AuthorizationHeaderMalformed', allowedRegions);
  const signedHeaders = parseSignedHeaders(signedHeadersField, 'AuthorizationHeaderMalformed');

  const amzDateHeader = singleHeader(request.headers['x-amz-date']);
  const dateHeader = singleHeader(request.headers['date']);
  let requestTime: Date | null = null;
  let amzDate = '';
  if (amzDateHeader !== undefined) {
    requestTime = parseAmzDate(amzDateHeader);
    amzDate = amzDateHeader;
  } else if (dateHeader !== undefined && !Number.isNaN(Date.parse(dateHeader))) {
    requestTime = new Date(Date.parse(dateHeader));
    amzDate = formatAmzDate(requestTime);
  }
  if (requestTime === null) throw new AuthError('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  if (amzDate.slice(0, 8) !== scope.date) {
    throw new AuthError('AuthorizationHeaderMalformed', 'The authorization header is malformed; Invalid credential date. Date is not the same as X-Amz-Date.');
  }

  // S3 requires the payload hash header on every header-signed request, and requires it signed.
  const payloadHash = singleHeader(request.headers['x-amz-content-sha256']);
  if (payloadHash === undefined) throw new AuthError('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  if (!signedHeaders.includes('x-amz-content-sha256')) {
    throw new AuthError('InvalidRequest', "header 'x-amz-content-sha256' must be included in signature");
  }
  checkHeadersSigned(request.headers, signedHeaders);
  const payload = classifyPayloadHash(payloadHash);
  return {
    authType: 'header',
    ...scope,
    scope: `${scope.date}/${scope.region}/${scope.service}/aws4_request`,
    amzDate,
    requestTime,
    signedHeaders,
    signatureProvided: signature,
    payloadHash,
    payloadMode: payload.mode,
    ...(payload.sha256 !== undefined && { payloadSha256: payload.sha256 }),
  };
}

function parsePresigned(request: SigV4Request, params: Map<string, string>, allowedRegions: readonly string[] | undefined): ParsedSigV4 {
  const code = 'AuthorizationQueryParametersError';
  if (PRESIGNED_REQUIRED.some((name) => !params.has(name))) {
    throw new AuthError(
      code,
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  const algorithm = params.get('X-Amz-Algorithm')!;
  if (algorithm === SIGV4A_ALGORITHM) throw new AuthError('NotImplemented', `${MESSAGES.notImplemented} (SigV4a, ${SIGV4A_ALGORITHM})`);
  if (algorithm !== ALGORITHM) throw new AuthError(code, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  const scope = parseCredential(params.get('X-Amz-Credential')!, code, allowedRegions);
  const amzDate = params.get('X-Amz-Date')!;
  const requestTime = parseAmzDate(amzDate);
  if (requestTime === null) throw new AuthError(code, `X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  if (amzDate.slice(0, 8) !== scope.date) {
    throw new AuthError(code, 'Error parsing the X-Amz-Credential parameter; Invalid credential date. Date is not the same as X-Amz-Date.');
  }
  const expires = params.get('X-Amz-Expires')!;
  if (!/^-?\d+$/.test(expires)) throw new AuthError(code, 'X-Amz-Expires should be a number');
  const expiresInSeconds = Number(expires);
  if (expiresInSeconds < 0) throw new AuthError(code, 'X-Amz-Expires must be non-negative');
  if (expiresInSeconds > MAX_PRESIGNED_EXPIRES_SECONDS) {
    throw new AuthError(
      code,
      'X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds',
    );
  }
  const signedHeaders = parseSignedHeaders(params.get('X-Amz-SignedHeaders')!, code);
  checkHeadersSigned(request.headers, signedHeaders);
  // A presigned URL signs UNSIGNED-PAYLOAD unless the signer bound a hash: as a signed header, or as
  // the X-Amz-Content-Sha256 parameter the JS SDK's presigner hoists it into.
  const headerHash = signedHeaders.includes('x-amz-content-sha256') ? singleHeader(request.headers['x-amz-content-sha256']) : undefined;
  const payloadHash = headerHash ?? params.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD';
  const payload = classifyPayloadHash(payloadHash);
  return {
    authType: 'presigned',
    ...scope,
    scope: `${scope.date}/${scope.region}/${scope.service}/aws4_request`,
    amzDate,
    requestTime,
    signedHeaders,
    signatureProvided: params.get('X-Amz-Signature')!,
    payloadHash,
    payloadMode: payload.mode,
    ...(payload.sha256 !== undefined && { payloadSha256: payload.sha256 }),
    expiresInSeconds,
  };
}

export interface ParseOptions {
  /** Regions a credential scope may name; any region when undefined. */
  allowedRegions?: readonly string[];
}

/**
 * The request's SigV4 credentials, checked for form only (no secret, no clock), or null when the
 * request carries no credentials at all (anonymous). Throws AuthError for anything malformed or for a
 * mechanism we do not speak (SigV2, SigV4a, session tokens).
 */
export function parseSigV4(request: SigV4Request, options: ParseOptions = {}): ParsedSigV4 | null {
  const authorization = singleHeader(request.headers['authorization']);
  const maybePresigned = request.query.includes('X-Amz-') || request.query.includes('Signature=');
  const params = maybePresigned ? new Map(parseQuery(request.query).map((p) => [p.name, p.value] as const)) : new Map<string, string>();
  if (request.headers['x-amz-security-token'] !== undefined || params.has('X-Amz-Security-Token')) {
    // We issue no temporary credentials, so no session token can be one of ours.
    throw new AuthError('InvalidToken', 'The provided token is malformed or otherwise invalid.');
  }
  const presigned = params.has('X-Amz-Algorithm') || params.has('X-Amz-Credential') || params.has('X-Amz-Signature');
  if (authorization !== undefined && (presigned || params.has('Signature'))) {
    throw new AuthError(
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
      { ArgumentName: 'Authorization', ArgumentValue: authorization },
    );
  }
  if (authorization !== undefined) return parseAuthorizationHeader(request, authorization, options.allowedRegions);
  if (presigned) return parsePresigned(request, params, options.allowedRegions);
  if (params.has('AWSAccessKeyId') && params.has('Signature')) throw unsupportedMechanism(); // SigV2 presigned URL
  return null;
}
